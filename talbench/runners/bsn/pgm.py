"""BSN's temporal evaluation windows and proposal generation module (Lin et al., ECCV 2018, sec. 3.3-3.4).

* TEM targets (sec. 3.3): the match scores ``g`` of every cell with the instances (actionness) and their start
  and end regions (``boundary_ratio`` x duration), as BSN's reference code computes them.
* Windows: BSN processes THUMOS14 in sliding observation windows of ``bsn.window`` cells; the TEM runs on each
  window and overlapping outputs are averaged into one actionness / start / end curve per video.
* PGM (sec. 3.4): boundary candidates are locations whose start (end) probability is a local peak or above
  ``peak_threshold`` x the window's maximum; every start/end pair with ``start < end`` and
  ``end - start <= max_duration`` inside one window is a candidate proposal. The boundary-sensitive proposal
  (BSP) feature samples the actionness curve at ``N_a = 16`` points inside the proposal and ``N_b = 8`` points
  in its start and end regions (each ``[t - d/5, t + d/5]``, d the duration), each point the mean of linear
  interpolations (``num_sample_interp = 3`` as the reference code).

Everything works in *cell coordinates*: cell ``i`` of a feature sequence is centred at ``i`` and spans
``[i - 0.5, i + 0.5]``; :func:`seconds_to_cells` / :func:`cells_to_seconds` convert with the dataset's cell
centres (``FeatureDataset.snippet_centers``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from talbench.eval.tiou import intersection_over_first
from talbench.models.bsn import TEM
from talbench.runners.common.device import autocast, module_device


def tem_targets(length: int, segments: np.ndarray, boundary_ratio: float = 0.1) -> np.ndarray:
    """Match scores ``g`` of BSN section 3.3 for one sequence: ``(3, length)`` actionness, start, end.

    ``segments`` are ground-truth ``(G, 2)`` in cell coordinates. The start (end) region of an instance is
    ``[t_s - d_g/2, t_s + d_g/2]`` with ``d_g = boundary_ratio x duration`` (at least one cell, as the
    reference code); ``g`` is the maximum IoP of the cell's span with the regions (actionness: the instances).
    """
    targets = np.zeros((3, length), dtype=np.float32)
    if len(segments) == 0:
        return targets
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    centers = np.arange(length, dtype=np.float64)
    anchors = np.stack([centers - 0.5, centers + 0.5], axis=1)
    pad = np.maximum(1.0, boundary_ratio * (segments[:, 1] - segments[:, 0]))
    starts = np.stack([segments[:, 0] - pad / 2, segments[:, 0] + pad / 2], axis=1)
    ends = np.stack([segments[:, 1] - pad / 2, segments[:, 1] + pad / 2], axis=1)
    for row, regions in enumerate((segments, starts, ends)):
        targets[row] = intersection_over_first(anchors, regions).max(axis=1)
    return targets


def boundary_candidates(prob: np.ndarray, peak_threshold: float = 0.5) -> np.ndarray:
    """BSN section 3.4: a location is a boundary candidate if its probability is a local peak
    (``p_t > p_{t-1}`` and ``p_t > p_{t+1}``) or above ``peak_threshold x max(p)``; the first and last
    locations are always candidates (reference code). Works on ``(..., L)`` arrays, returns a boolean mask."""
    prob = np.asarray(prob)
    mask = prob > peak_threshold * prob.max(axis=-1, keepdims=True)
    peak = (prob[..., 1:-1] > prob[..., :-2]) & (prob[..., 1:-1] > prob[..., 2:])
    mask[..., 1:-1] |= peak
    mask[..., 0] = True
    mask[..., -1] = True
    return mask


def candidate_proposals(
    start_prob: np.ndarray,
    end_prob: np.ndarray,
    window: int,
    stride: int,
    peak_threshold: float = 0.5,
    max_duration: int | None = None,
) -> np.ndarray:
    """Candidate proposals ``(P, 2)`` of cell indices ``(start, end)`` from one video's boundary curves.

    The video is covered by observation windows of ``window`` cells every ``stride`` cells (BSN processes
    THUMOS14 in sliding windows); boundary candidates are found inside each window (peaks, or above the
    threshold of that window's maximum) and paired inside the same window with numpy broadcasting
    (``start < end <= start + max_duration``). The union over windows is returned, sorted and unique.
    """
    length = len(start_prob)
    window = min(window, length)
    offsets = window_offsets(length, window, stride)
    index = offsets[:, None] + np.arange(window)[None, :]
    starts = boundary_candidates(start_prob[index], peak_threshold)
    ends = boundary_candidates(end_prob[index], peak_threshold)
    span = np.arange(window)[None, :] - np.arange(window)[:, None]  # end - start within a window
    allowed = span > 0
    if max_duration is not None:
        allowed &= span <= max_duration
    pairs = starts[:, :, None] & ends[:, None, :] & allowed[None]
    w, i, j = np.nonzero(pairs)
    cells = np.stack([offsets[w] + i, offsets[w] + j], axis=1)
    return np.unique(cells, axis=0) if len(cells) else cells.reshape(0, 2)


def window_offsets(length: int, window: int, stride: int) -> np.ndarray:
    """Start offsets of sliding windows of ``window`` cells every ``stride`` cells; the last window is
    aligned with the end of the sequence so that every cell is covered."""
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    offsets = np.arange(0, length - window + 1, max(1, stride), dtype=np.int64)
    if offsets[-1] != length - window:
        offsets = np.append(offsets, length - window)
    return offsets


def bsp_features(
    actionness: np.ndarray,
    proposals: np.ndarray,
    boundary_ratio: float = 0.2,
    num_action: int = 16,
    num_boundary: int = 8,
    num_interp: int = 3,
) -> np.ndarray:
    """Boundary-sensitive proposal features (BSN section 3.4), ``(P, num_action + 2 num_boundary)``.

    ``proposals`` are ``(P, 2)`` in cell coordinates. For a region ``[a, b]`` sampled at ``n`` points the
    reference code places ``n x num_interp + 1`` linear-interpolation points from ``a - g/2`` with step
    ``g / num_interp`` (``g = (b - a) / (n - 1)``) and averages each run of ``num_interp + 1`` of them.
    Actionness outside the video is 0 (the reference code pads with zeros). Feature order:
    action, start region, end region.
    """
    proposals = np.asarray(proposals, dtype=np.float64).reshape(-1, 2)
    curve = np.concatenate([[0.0], np.asarray(actionness, dtype=np.float64), [0.0]])
    grid = np.arange(-1, len(actionness) + 1, dtype=np.float64)
    tmin, tmax = proposals[:, 0], proposals[:, 1]
    extent = (tmax - tmin) * boundary_ratio
    regions = [
        (tmin, tmax, num_action),
        (tmin - extent, tmin + extent, num_boundary),
        (tmax - extent, tmax + extent, num_boundary),
    ]
    parts = []
    for begin, end, count in regions:
        gap = (end - begin) / (count - 1)
        steps = np.arange(count * num_interp + 1)
        points = (begin - gap / 2)[:, None] + (gap / num_interp)[:, None] * steps[None, :]
        values = np.interp(points, grid, curve, left=0.0, right=0.0)
        runs = np.arange(count)[:, None] * num_interp + np.arange(num_interp + 1)[None, :]
        parts.append(values[:, runs].mean(axis=2))
    return np.concatenate(parts, axis=1).astype(np.float32)


def window_stride(settings: dict[str, Any]) -> int:
    return max(1, round(settings["window"] * (1.0 - settings["window_overlap"])))


def seconds_to_cells(times: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Map seconds onto the (linear) cell grid: cell ``i`` is centred at ``centers[i]``."""
    step = centers[1] - centers[0] if len(centers) > 1 else 1.0
    return (np.asarray(times, dtype=np.float64) - centers[0]) / step


def cells_to_seconds(cells: np.ndarray, centers: np.ndarray) -> np.ndarray:
    step = centers[1] - centers[0] if len(centers) > 1 else 1.0
    return centers[0] + np.asarray(cells, dtype=np.float64) * step


def windows(features: np.ndarray, targets: np.ndarray, window: int, stride: int):
    """Slice one video into ``(N, D, window)`` feature windows, ``(N, 3, window)`` targets and a validity
    mask; a video shorter than the window is zero-padded and the padding masked out of the loss."""
    length = len(features)
    padded_len = max(length, window)
    offsets = window_offsets(padded_len, window, stride)
    feats = np.zeros((padded_len, features.shape[1]), dtype=np.float32)
    feats[:length] = features
    tgts = np.zeros((3, padded_len), dtype=np.float32)
    tgts[:, :length] = targets
    valid = np.zeros(padded_len, dtype=np.float32)
    valid[:length] = 1.0
    index = offsets[:, None] + np.arange(window)[None, :]
    return feats[index].transpose(0, 2, 1), tgts[:, index].transpose(1, 0, 2), valid[index]


@torch.no_grad()
def tem_curves(tem: TEM, features: np.ndarray, window: int, stride: int,
               run: dict[str, Any] | None = None) -> np.ndarray:
    """``(3, T)`` actionness / start / end of one video: TEM on the sliding windows (on the TEM's device,
    autocast by ``run.mixed_precision``), overlaps averaged."""
    length = len(features)
    targets = np.zeros((3, length), dtype=np.float32)
    x, _, _ = windows(np.asarray(features, dtype=np.float32), targets, window, stride)
    device = module_device(tem)
    with autocast({"run": run or {}}, device):
        out = tem(torch.from_numpy(x).to(device))
    out = out.float().cpu().numpy()  # (N, 3, window)
    padded_len = max(length, window)
    offsets = window_offsets(padded_len, window, stride)
    index = (offsets[:, None] + np.arange(window)[None, :]).ravel()
    sums = np.zeros((3, padded_len))
    counts = np.zeros(padded_len)
    np.add.at(sums.T, index, out.transpose(0, 2, 1).reshape(-1, 3))
    np.add.at(counts, index, 1.0)
    return (sums / np.maximum(counts, 1.0))[:, :length].astype(np.float32)


def video_candidates(curves: np.ndarray, settings: dict[str, Any],
                     top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PGM for one video: candidate proposals (cells), their boundary probabilities and BSP features,
    the ``top_k`` by ``p_start x p_end``."""
    actionness, start, end = curves
    cells = candidate_proposals(
        start, end, settings["window"], window_stride(settings), settings["peak_threshold"], settings["max_duration"]
    )
    start_score = start[cells[:, 0]]
    end_score = end[cells[:, 1]]
    order = np.argsort(-(start_score * end_score), kind="stable")[:top_k]
    cells = cells[order]
    bsp = bsp_features(
        actionness,
        cells,
        settings["bsp_boundary_ratio"],
        settings["bsp_action_points"],
        settings["bsp_boundary_points"],
        settings["bsp_interp_points"],
    )
    return cells, start_score[order], end_score[order], bsp
