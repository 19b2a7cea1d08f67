"""Temporal intersection over union (tIoU) of 1-D segments, vectorized with numpy.

The formula is the official ActivityNet ``segment_iou`` (``eval_detection.py``):
``inter = max(0, min(e1, e2) - max(s1, s2))``, ``union = (e2 - s2) + (e1 - s1) - inter``,
``tIoU = inter / union``; inverted segments (end < start) are scored as they stand.

One deliberate difference: where ``union <= 0`` (two zero-length segments, or an inverted segment as
long as the other is positive) the official code divides 0 by 0 (NaN, which its matching then
counts as a true positive at every threshold) or by a negative number (-0.0). Here the tIoU is 0:
segments without any overlap of positive length never match (see docs/evaluation.md).
"""

from __future__ import annotations

import numpy as np


def _as_segments(segments: np.ndarray, name: str) -> np.ndarray:
    segments = np.asarray(segments, dtype=np.float64)
    if segments.ndim != 2 or segments.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) of [start, end], got {segments.shape}")
    return segments


def paired_tiou(pred_segments: np.ndarray, gt_segments: np.ndarray) -> np.ndarray:
    """Element-wise tIoU of ``pred_segments[i]`` with ``gt_segments[i]`` (both ``(N, 2)``)."""
    pred = _as_segments(pred_segments, "pred_segments")
    gt = _as_segments(gt_segments, "gt_segments")
    if len(pred) != len(gt):
        raise ValueError(f"paired_tiou needs equal lengths, got {len(pred)} and {len(gt)}")
    return _tiou(pred[:, 0], pred[:, 1], gt[:, 0], gt[:, 1])


def pairwise_tiou(pred_segments: np.ndarray, gt_segments: np.ndarray) -> np.ndarray:
    """tIoU matrix ``(N_pred, N_gt)`` between every prediction and every ground-truth segment."""
    pred = _as_segments(pred_segments, "pred_segments")
    gt = _as_segments(gt_segments, "gt_segments")
    return _tiou(pred[:, 0:1], pred[:, 1:2], gt[None, :, 0], gt[None, :, 1])


def _tiou(p_start, p_end, g_start, g_end) -> np.ndarray:
    """Broadcasting core; the operation order equals the official code bit for bit where union > 0."""
    intersection = np.clip(np.minimum(p_end, g_end) - np.maximum(p_start, g_start), 0.0, None)
    union = (g_end - g_start) + (p_end - p_start) - intersection
    positive = union > 0
    return np.divide(intersection, union, out=np.zeros(np.broadcast(intersection, union).shape), where=positive)
