"""Temporal intersection over union (tIoU) of 1-D segments and the candidate pairs of a matching, vectorized.

The suite's one definition of tIoU (detection mAP, AR@AN, NMS, label assignment, table-3 metrics) and of the
intersection over the first segment's length (BSN's IoP, the incomplete-proposal overlap of SSN / P-GCN).

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

_MAX_PAIRS_PER_CHUNK = 4_000_000


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
    return segment_tiou(pred[:, 0], pred[:, 1], gt[:, 0], gt[:, 1])


def pairwise_tiou(pred_segments: np.ndarray, gt_segments: np.ndarray) -> np.ndarray:
    """tIoU matrix ``(N_pred, N_gt)`` between every prediction and every ground-truth segment."""
    pred = _as_segments(pred_segments, "pred_segments")
    gt = _as_segments(gt_segments, "gt_segments")
    return segment_tiou(pred[:, 0:1], pred[:, 1:2], gt[None, :, 0], gt[None, :, 1])


def segment_tiou(p_start, p_end, g_start, g_end) -> np.ndarray:
    """tIoU of segments given by broadcastable start / end arrays; the operation order equals the official
    code bit for bit where union > 0."""
    intersection = np.clip(np.minimum(p_end, g_end) - np.maximum(p_start, g_start), 0.0, None)
    return tiou_from_parts(intersection, g_end - g_start, p_end - p_start)


def tiou_from_parts(intersection, length_a, length_b) -> np.ndarray:
    """tIoU from the intersection and the two lengths: ``inter / ((len_a + len_b) - inter)``, 0 where that union
    is not positive (the one formula, for callers that keep lengths, such as NMS)."""
    union = (length_a + length_b) - intersection
    return np.divide(intersection, union, out=np.zeros(np.broadcast(intersection, union).shape), where=union > 0)


def intersection_over_first(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection of each segment of ``first`` (N, 2) with each of ``second`` (M, 2), over the
    length of the ``first`` segment (BSN's IoP; SSN's overlap of a proposal with a ground truth); 0 where the
    first segment has no positive length."""
    a = _as_segments(first, "first")
    b = _as_segments(second, "second")
    intersection = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None)
    length = np.broadcast_to((a[:, 1] - a[:, 0])[:, None], intersection.shape)
    return np.divide(intersection, length, out=np.zeros(intersection.shape), where=length > 0)


def _key_ranges(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``keys`` (integers), the range ``[lo, hi)`` of ``sorted_keys`` equal to it: two binary
    searches, or, when all keys are small non-negative integers (video x class codes), a lookup table of the
    range of every key value (a few times faster than searching 10^5 unsorted keys)."""
    top = int(max(sorted_keys[-1], keys.max(initial=0))) + 1
    if top > 4 * (keys.size + sorted_keys.size) or min(sorted_keys[0], keys.min(initial=0)) < 0:
        return np.searchsorted(sorted_keys, keys, side="left"), np.searchsorted(sorted_keys, keys, side="right")
    edges = np.searchsorted(sorted_keys, np.arange(top + 1), side="left")
    return edges[keys], edges[keys + 1]


def candidate_pairs(pred_key, pred_start, pred_end, gt_key, gt_start, gt_end, min_threshold):
    """All (prediction, GT) pairs of equal (video, label) key with tIoU >= min_threshold.

    The GT must be sorted by key, then start. Only GTs that can overlap a prediction are paired: with
    ``L`` the longest GT of the key, an overlapping GT starts in ``(start - L, end)``, a window found by
    binary search. Returns prediction index, GT index and tIoU, in prediction order then GT start order.
    """
    n, n_gt = len(pred_key), len(gt_key)
    if n == 0 or n_gt == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    key_lo, key_hi = _key_ranges(gt_key, pred_key)
    group_first = np.flatnonzero(np.r_[True, gt_key[1:] != gt_key[:-1]])
    group_longest = np.maximum.reduceat(np.maximum(gt_end - gt_start, 0.0), group_first)
    longest = np.zeros(n)
    has_gt = key_hi > key_lo
    longest[has_gt] = group_longest[np.searchsorted(group_first, key_lo[has_gt], side="right") - 1]
    # (key, start) folded into one sortable float; the window is a superset, tIoU is computed exactly.
    base = min(gt_start.min(), 0.0)
    span = max(gt_start.max(), 0.0) - base
    scale = span + 2.0
    margin = 1e-6 * scale
    folded_gt = gt_key * scale + (gt_start - base)
    lo_val = pred_key * scale + np.clip(pred_start - longest - base - margin, -0.5, span + 0.5)
    hi_val = pred_key * scale + np.clip(pred_end - base + margin, -0.5, span + 0.5)
    lo = np.maximum(np.searchsorted(folded_gt, lo_val, side="left"), key_lo)
    hi = np.minimum(np.searchsorted(folded_gt, hi_val, side="right"), key_hi)
    counts = np.maximum(hi - lo, 0)
    ends = np.cumsum(counts)
    out_pred, out_gt, out_tiou = [], [], []
    chunk_start = 0
    while chunk_start < n:
        base_count = ends[chunk_start - 1] if chunk_start else 0
        chunk_end = int(np.searchsorted(ends, base_count + _MAX_PAIRS_PER_CHUNK, side="right"))
        chunk_end = min(max(chunk_end, chunk_start + 1), n)
        c = counts[chunk_start:chunk_end]
        pair_pred = np.repeat(np.arange(chunk_start, chunk_end), c)
        first = np.cumsum(c) - c
        pair_gt = np.repeat(lo[chunk_start:chunk_end] - first, c) + np.arange(int(c.sum()))
        tiou = segment_tiou(pred_start[pair_pred], pred_end[pair_pred], gt_start[pair_gt], gt_end[pair_gt])
        keep = tiou >= min_threshold
        out_pred.append(pair_pred[keep])
        out_gt.append(pair_gt[keep])
        out_tiou.append(tiou[keep])
        chunk_start = chunk_end
    return np.concatenate(out_pred), np.concatenate(out_gt), np.concatenate(out_tiou)
