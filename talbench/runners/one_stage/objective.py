"""Training objectives of the one-stage decoders (``losses()`` of each method's ``libs/modeling/meta_archs.py``;
facts sec. 4), on the concatenated points of all levels: ``cls_targets`` ``(B, P, C)``, ``reg_targets``
``(B, P, 2)`` (distances / stride), ``valid`` ``(B, P)``; positives are valid points with a class.

* :func:`actionformer_loss` — ActionFormer and TemporalMaxer: sigmoid focal loss on the class logits of every
  valid point + DIoU on the (start, end) distances of the positives.
* :func:`trident_loss` — TriDet: the Trident head predicts distances per class, the DIoU of a positive point is
  taken at each of its ground-truth classes; the focal loss of those (point, class) entries is multiplied by
  ``IoU^p`` (``iou_weight_power``, 0.2) of the decoded segment with the ground truth.
* :func:`cltdr_loss` — CLTDR-GMG as coded: ``0.7 x refined + 0.3 x coarse``. Refined: varifocal loss on the
  refined logits (``iou_weighted``), the positive entries weighted by ``IoU^p`` of the *refined* distances, + DIoU
  on the refined distances; coarse: the TriDet objective without the IoU weighting (it is commented out in the
  official ``before_refine_losses``) on the DCM logits and the Trident distances before refinement. The paper's
  eq. 13 writes only the refined part, with separate ``1/N_pos`` and ``1/N_neg`` normalisers; the code divides
  both parts by the EMA of the positive count, updated once in each part (twice per step).

Each part is ``(cls + loss_weight x reg)`` divided by the :class:`PositiveCountNormalizer` value after its update;
label smoothing (0 on THUMOS14) maps a target ``y`` to ``y (1 - eps) + eps / (C + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from talbench.models.actionformer import ActionFormerOutputs
from talbench.models.cltdr_gmg.detector import CLTDROutputs
from talbench.models.one_stage.losses import (
    PositiveCountNormalizer,
    ctr_diou_loss_1d,
    iou_1d,
    sigmoid_focal_loss,
    varifocal_loss,
    weight_positives_by_iou,
)
from talbench.models.tridet import TridentOutputs


@dataclass
class LossTerms:
    cls: torch.Tensor
    reg: torch.Tensor
    total: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach()) for name in ("cls", "reg", "total")}


@dataclass(frozen=True)
class LossSettings:
    """``loss_weight`` on the regression term, focal / varifocal ``alpha`` and ``gamma``, ``iou_weight_power``,
    ``label_smoothing``, and CLTDR's ``refined_weight`` / ``coarse_weight`` (0.7 / 0.3)."""

    loss_weight: float = 1.0
    alpha: float = 0.25
    gamma: float = 2.0
    iou_weight_power: float = 0.2
    label_smoothing: float = 0.0
    refined_weight: float = 0.7
    coarse_weight: float = 0.3


def _points(per_level: list[torch.Tensor]) -> torch.Tensor:
    """Per-level ``(B, K, T_l)`` -> ``(B, P, K)`` (levels concatenated along the points)."""
    return torch.cat([x.transpose(1, 2) for x in per_level], dim=1)


def _smoothed(targets: torch.Tensor, eps: float) -> torch.Tensor:
    num_classes = targets.shape[-1]
    return targets * (1 - eps) + eps / (num_classes + 1)


def _regression(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return ctr_diou_loss_1d(pred, gt).sum() if pred.shape[0] else 0.0 * pred.sum()


def _per_class_part(logits, distances, cls_targets, reg_targets, valid, normalizer, settings, *, varifocal: bool,
                    iou_weighted: bool) -> LossTerms:
    """One Trident-style part: per-class ``distances`` ``(B, P, C, 2)``, ``logits`` ``(B, P, C)``."""
    positive = (cls_targets.sum(-1) > 0) & valid
    pos_classes = cls_targets[positive].bool()  # (N_pos, C)
    pred = distances[positive][pos_classes]  # (K, 2), points in order, classes ascending
    gt = reg_targets[positive][torch.where(pos_classes)[0]]
    norm = normalizer.update(int(positive.sum()))
    target = _smoothed(cls_targets[valid], settings.label_smoothing)
    if varifocal:
        cls = varifocal_loss(logits[valid], target, settings.alpha, settings.gamma)
    else:
        cls = sigmoid_focal_loss(logits[valid], target, settings.alpha, settings.gamma)
    if iou_weighted:
        rated = target > settings.label_smoothing / (target.shape[-1] + 1)
        cls = weight_positives_by_iou(cls, rated, iou_1d(pred, gt), settings.iou_weight_power)
    cls = cls.sum() / norm
    reg = _regression(pred, gt) / norm
    return LossTerms(cls, reg, cls + settings.loss_weight * reg)


def actionformer_loss(outputs: ActionFormerOutputs, cls_targets, reg_targets, valid,
                      normalizer: PositiveCountNormalizer, settings: LossSettings) -> LossTerms:
    positive = (cls_targets.sum(-1) > 0) & valid
    norm = normalizer.update(int(positive.sum()))
    target = _smoothed(cls_targets[valid], settings.label_smoothing)
    cls = sigmoid_focal_loss(_points(outputs.cls_logits)[valid], target, settings.alpha, settings.gamma).sum() / norm
    reg = _regression(_points(outputs.offsets)[positive], reg_targets[positive]) / norm
    return LossTerms(cls, reg, cls + settings.loss_weight * reg)


def trident_loss(outputs: TridentOutputs, cls_targets, reg_targets, valid, normalizer: PositiveCountNormalizer,
                 settings: LossSettings) -> LossTerms:
    distances = torch.cat(outputs.distances(), dim=1)
    return _per_class_part(_points(outputs.cls_logits), distances, cls_targets, reg_targets, valid, normalizer,
                           settings, varifocal=False, iou_weighted=True)


def cltdr_loss(outputs: CLTDROutputs, strides, cls_targets, reg_targets, valid,
               normalizer: PositiveCountNormalizer, settings: LossSettings) -> LossTerms:
    coarse_distances = outputs.coarse_distances()
    refined_distances = outputs.refined_distances(strides, coarse_distances)
    refined = _per_class_part(_points(outputs.cls_logits), torch.cat(refined_distances, dim=1),
                              cls_targets, reg_targets, valid, normalizer, settings, varifocal=True,
                              iou_weighted=True)
    coarse = _per_class_part(_points(outputs.coarse_cls_logits), torch.cat(coarse_distances, dim=1),
                             cls_targets, reg_targets, valid, normalizer, settings, varifocal=False,
                             iou_weighted=False)
    a, b = settings.refined_weight, settings.coarse_weight
    return LossTerms(a * refined.cls + b * coarse.cls, a * refined.reg + b * coarse.reg,
                     a * refined.total + b * coarse.total)
