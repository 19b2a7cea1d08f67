"""Label assignment of the one-stage detectors (ActionFormer, TriDet, CLTDR-GMG): which pyramid points are
positive for which ground-truth action, and their regression targets (``label_points_single_video`` in
``libs/modeling/meta_archs.py`` and ``PointGenerator`` in ``libs/modeling/loc_generators.py`` of the official code;
shared/notes/cltdr-gmg-facts.md sec. 3). Vectorised over the videos of a batch (ground truth padded per video).

* points: level ``l`` has points ``t = i * s_l`` (``i < T_l``, no half-stride offset), each with the level's
  regression range ``[lo_l, hi_l]`` and stride ``s_l``; everything is in units of the input feature grid;
* a point is inside a ground truth ``[gs, ge]`` when, with centre sampling (``radius`` 1.5), it lies strictly inside
  ``[max(c - r s_l, gs), min(c + r s_l, ge)]`` (``c`` the centre), without it strictly inside ``[gs, ge]``;
* and its regression distance ``max(t - gs, ge - t)`` lies in ``[lo_l, hi_l]`` (both ends inclusive);
* among the ground truths that pass both tests, the shortest is taken; those within 1e-3 of its length all give
  their class (multi-label one-hot, clamped to 1); the regression target is ``(t - gs, ge - t) / s_l`` of the
  shortest (the first one on ties). Points with no match are negatives: zero class target (their regression target
  is that of the first ground truth, as in the code, and is not used).

THUMOS14 regression ranges: ``(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)``; for another number of
levels (CLTDR-GMG table 14) :func:`regression_ranges` continues the doubling and leaves the last level open, as
the official HACS config does for its 7 levels (``..., (64, 128), (128, 10000)``).

TemporalMaxer's assignment (``libs/modeling/simota_assigner.py``, config ``temporalmaxer_thumos_i3d.yaml``) is a
SimOTA assigner whose THUMOS14 settings (``keep_percent`` 1.0, ``confuse_weight`` 0, ``center_radius`` 1.5) keep
every candidate of the centre-sampling assignment above with weight 1, so its class targets are the ones above;
what differs is the regression target of a point inside several ground truths: the one of least cost
``cls_weight x focal(logits, one-hot class) + iou_weight x DIoU(predicted, ground-truth offsets)`` among those
containing it, instead of the shortest (:func:`min_cost_regression_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from talbench.models.one_stage.losses import ctr_diou_loss_1d, sigmoid_focal_loss

THUMOS14_REGRESSION_RANGES = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000))
OPEN_END = 10000  # the official upper bound of the last level


def regression_ranges(num_levels: int, first: float = 4.0) -> list[tuple[float, float]]:
    """``(0, first), (first, 2 first), ...`` doubling per level, the last one open (``OPEN_END``)."""
    bounds = [0.0] + [first * 2**level for level in range(num_levels - 1)] + [float(OPEN_END)]
    return [(bounds[i], bounds[i + 1]) for i in range(num_levels)]


@dataclass
class PointGrid:
    """The concatenated points of all levels, each ``(P,)``: position ``t``, regression range, stride."""

    positions: torch.Tensor
    range_low: torch.Tensor
    range_high: torch.Tensor
    strides: torch.Tensor


def point_grid(
    level_lengths: Sequence[int],
    strides: Sequence[int],
    regression_ranges: Sequence[tuple[float, float]],
    device: torch.device | str | None = None,
) -> PointGrid:
    if not len(level_lengths) == len(strides) == len(regression_ranges):
        raise ValueError("one length, stride and regression range per level")
    parts = []
    for length, stride, (low, high) in zip(level_lengths, strides, regression_ranges, strict=True):
        t = torch.arange(length, device=device, dtype=torch.float32) * stride
        parts.append(
            torch.stack([t, torch.full_like(t, low), torch.full_like(t, high), torch.full_like(t, stride)])
        )
    grid = torch.cat(parts, dim=1)
    return PointGrid(grid[0], grid[1], grid[2], grid[3])


def assign_targets(
    grid: PointGrid,
    segments: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    num_classes: int,
    center_sample_radius: float | None = 1.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video ``segments`` ``(N_i, 2)`` (start, end on the feature grid) and ``labels`` ``(N_i,)`` ->
    class targets ``(B, P, num_classes)`` and regression targets ``(B, P, 2)`` (distances / stride).
    ``center_sample_radius=None`` disables centre sampling (``center_sample: none``)."""
    batch = len(segments)
    t = grid.positions
    num_points = t.shape[0]
    gt, gt_labels, gt_valid = _padded_ground_truth(segments, labels, t)
    max_gt = gt.shape[1]
    if max_gt == 0:
        return t.new_zeros(batch, num_points, num_classes), t.new_zeros(batch, num_points, 2)
    starts, ends = gt[..., 0][:, None, :], gt[..., 1][:, None, :]  # (B, 1, N)
    tp, stride = t[None, :, None], grid.strides[None, :, None]  # (1, P, 1)
    left, right = tp - starts, ends - tp  # (B, P, N)
    if center_sample_radius is None:
        inside = torch.minimum(left, right) > 0
    else:
        centre = 0.5 * (starts + ends)
        inner_left = tp - torch.maximum(centre - stride * center_sample_radius, starts)
        inner_right = torch.minimum(centre + stride * center_sample_radius, ends) - tp
        inside = torch.minimum(inner_left, inner_right) > 0
    reach = torch.maximum(left, right)
    in_range = (reach >= grid.range_low[None, :, None]) & (reach <= grid.range_high[None, :, None])
    lengths = (ends - starts).expand(batch, num_points, max_gt)
    lengths = lengths.masked_fill(~(inside & in_range & gt_valid[:, None, :]), float("inf"))
    shortest, shortest_idx = lengths.min(dim=-1)  # (B, P)
    chosen = (lengths <= shortest[..., None] + 1e-3) & torch.isfinite(lengths)
    one_hot = F.one_hot(gt_labels, num_classes).to(t.dtype) * gt_valid[..., None].to(t.dtype)  # (B, N, C)
    cls_targets = (chosen.to(t.dtype) @ one_hot).clamp(max=1.0)
    offsets = torch.stack([left, right], dim=-1)  # (B, P, N, 2)
    reg_targets = offsets.gather(2, shortest_idx[..., None, None].expand(batch, num_points, 1, 2)).squeeze(2)
    return cls_targets, reg_targets / grid.strides[None, :, None]


def _padded_ground_truth(segments, labels, like: torch.Tensor):
    """Per-video ground truth padded to the largest count: ``(B, N, 2)``, labels ``(B, N)``, valid ``(B, N)``."""
    batch = len(segments)
    max_gt = max((s.shape[0] for s in segments), default=0)
    gt = like.new_zeros(batch, max_gt, 2)
    gt_labels = torch.zeros(batch, max_gt, dtype=torch.long, device=like.device)
    gt_valid = torch.zeros(batch, max_gt, dtype=torch.bool, device=like.device)
    for b, (seg, lab) in enumerate(zip(segments, labels, strict=True)):
        gt[b, : seg.shape[0]] = seg.to(like)
        gt_labels[b, : seg.shape[0]] = lab
        gt_valid[b, : seg.shape[0]] = True
    return gt, gt_labels, gt_valid


@torch.no_grad()
def min_cost_regression_targets(
    grid: PointGrid,
    segments: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    cls_logits: torch.Tensor,
    offsets: torch.Tensor,
    cls_weight: float = 1.0,
    iou_weight: float = 2.0,
) -> torch.Tensor:
    """TemporalMaxer's regression targets ``(B, P, 2)`` (distances / stride): for each point, the ground truth of
    least cost among those containing it (module docstring); ``cls_logits`` ``(B, P, C)`` and predicted
    ``offsets`` ``(B, P, 2)`` are the model's outputs at the points. Points inside no ground truth get the first
    one's distances (unused, as in the official code)."""
    t = grid.positions
    gt, gt_labels, gt_valid = _padded_ground_truth(segments, labels, t)
    batch, num_points, num_classes = cls_logits.shape
    if gt.shape[1] == 0:
        return t.new_zeros(batch, num_points, 2)
    num_gt = gt.shape[1]
    stride = grid.strides[None, :, None]
    gt_offsets = torch.stack([t[None, :, None] - gt[..., 0][:, None, :], gt[..., 1][:, None, :] - t[None, :, None]],
                             dim=-1) / stride[..., None]  # (B, P, N, 2)
    outside = (gt_offsets < 0).any(-1) | ~gt_valid[:, None, :]
    safe_gt = gt_offsets.masked_fill(outside[..., None], 0.0)
    pred = offsets[:, :, None, :].expand(-1, -1, num_gt, -1).masked_fill(outside[..., None], 0.0)
    iou_cost = ctr_diou_loss_1d(pred.reshape(-1, 2), safe_gt.reshape(-1, 2)).view(batch, num_points, num_gt)
    one_hot = F.one_hot(gt_labels, num_classes).to(cls_logits.dtype)[:, None]  # (B, 1, N, C)
    logits = cls_logits[:, :, None, :].expand(-1, -1, num_gt, -1)
    cls_cost = sigmoid_focal_loss(logits, one_hot.expand_as(logits)).sum(-1)
    cost = (cls_weight * cls_cost + iou_weight * iou_cost).masked_fill(outside, float("inf"))
    chosen = cost.argmin(dim=-1)  # all-inf rows -> 0
    return gt_offsets.gather(2, chosen[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)
