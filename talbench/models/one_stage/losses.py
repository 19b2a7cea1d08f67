"""Losses of the one-stage detectors as pure tensor functions (``libs/modeling/losses.py`` and ``losses()`` in
``meta_archs.py`` of ActionFormer, TriDet, TemporalMaxer and CLTDR-GMG). Classification losses are element-wise
(the caller sums and normalises); the 1-D IoU losses take centre-offset pairs ``(N, 2)`` = distances from a point
to the start and to the end (``>= 0``), so that ``(t - o_1, t + o_2)`` is the segment.

* :func:`sigmoid_focal_loss` — Lin et al. 2017 (alpha 0.25, gamma 2): ActionFormer, TemporalMaxer, TriDet, and
  CLTDR-GMG's coarse (pre-refinement) term.
* :func:`varifocal_loss` — Zhang et al. 2021 as coded in CLTDR-GMG (``iou_weighted=True``): weight = target where
  ``target > 0``, ``alpha |p - target|^gamma`` elsewhere, times BCE-with-logits.
* :func:`weight_positives_by_iou` — TriDet / CLTDR-GMG multiply the classification loss of every positive
  (point, class) entry by ``IoU^p`` (``iou_weight_power``, 0.2 on THUMOS14 I3D), the IoU being that of the decoded
  prediction with the ground truth; this is CLTDR-GMG's ``sigma_IoU`` of eq. 13. The IoU is not detached in the
  official code, so the weighting also sends gradient to the regression outputs; same here.
* :func:`iou_1d`, :func:`ctr_iou_loss_1d` (the official ``ctr_giou_loss_1d``: for segments that share the point the
  enclosing segment equals the union, so GIoU reduces to IoU and the loss is ``1 - IoU``), :func:`ctr_diou_loss_1d`
  (Zheng et al. 2020: ``1 - IoU + (rho / enclosing length)^2``, ``rho`` the distance between centres) — the
  regression loss of all four methods (CLTDR-GMG's paper cites GIoU; the code uses DIoU).
* :class:`PositiveCountNormalizer` — the EMA of the number of positive points that divides both loss terms
  (momentum 0.9, initial value ``init_loss_norm``: 100 on THUMOS14); CLTDR-GMG updates it in both its refined and
  its coarse loss, i.e. twice per iteration.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise ``alpha_t (1 - p_t)^gamma BCE(logits, targets)``; ``alpha < 0`` disables alpha weighting."""
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def varifocal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    iou_weighted: bool = True,
) -> torch.Tensor:
    """Element-wise varifocal loss; positives (``target > 0``) are weighted by the target itself
    (``iou_weighted``) or by 1, negatives by ``alpha |sigmoid(logit) - target|^gamma``."""
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    positive = (targets > 0).float()
    positive_weight = targets * positive if iou_weighted else positive
    weight = positive_weight + alpha * (p - targets).abs().pow(gamma) * (1 - positive)
    return ce * weight


def weight_positives_by_iou(
    loss: torch.Tensor, positive: torch.Tensor, iou: torch.Tensor, power: float
) -> torch.Tensor:
    """``loss`` with its ``positive`` entries (bool, same shape) multiplied by ``iou ** power``, ``iou`` holding one
    value per positive entry in row-major order (``positive.sum()`` values)."""
    if iou.numel() != int(positive.sum()):
        raise ValueError(f"{iou.numel()} IoU values for {int(positive.sum())} positive entries")
    weights = torch.ones_like(loss)
    weights = weights.masked_scatter(positive, iou.to(loss.dtype) ** power)
    return loss * weights


def _centre_offsets(pred: torch.Tensor, target: torch.Tensor):
    pred, target = pred.float(), target.float()
    if (pred < 0).any() or (target < 0).any():
        raise ValueError("centre offsets must be non-negative")
    return pred[:, 0], pred[:, 1], target[:, 0], target[:, 1]


def iou_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """IoU of ``(t - p_1, t + p_2)`` and ``(t - g_1, t + g_2)`` for offset pairs ``(N, 2)`` -> ``(N,)``."""
    lp, rp, lg, rg = _centre_offsets(pred, target)
    intersection = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = (lp + rp) + (lg + rg) - intersection
    return intersection / union.clamp(min=eps)


def ctr_iou_loss_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 - IoU`` per pair (the official ``ctr_giou_loss_1d``)."""
    return 1.0 - iou_1d(pred, target, eps)


def ctr_diou_loss_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 - IoU + (rho / c)^2`` per pair: ``rho`` the distance between the two centres, ``c`` the length of the
    smallest segment enclosing both."""
    lp, rp, lg, rg = _centre_offsets(pred, target)
    enclosing = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    rho = 0.5 * (rp - lp - rg + lg)
    return 1.0 - iou_1d(pred, target, eps) + (rho / enclosing.clamp(min=eps)) ** 2


class PositiveCountNormalizer:
    """``value <- momentum * value + (1 - momentum) * max(num_positives, 1)`` at every :meth:`update`."""

    def __init__(self, init_value: float = 100.0, momentum: float = 0.9):
        self.value = float(init_value)
        self.momentum = momentum

    def update(self, num_positives: int) -> float:
        self.value = self.momentum * self.value + (1 - self.momentum) * max(int(num_positives), 1)
        return self.value
