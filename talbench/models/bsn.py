"""BSN: Boundary Sensitive Network (Lin et al., ECCV 2018), the proposal generator of D-Net and RefactorNet.

Three stages, mirroring Fig. 2 of the BSN paper:

* **TEM** (section 3.3, temporal evaluation module): three temporal convolutions
  ``conv1d(D, 512, k=3) -> ReLU -> conv1d(512, 512, k=3) -> ReLU -> conv1d(512, 3, k=1) -> sigmoid``
  predicting the actionness, starting and ending probability of every snippet of an observation window.
  As in the reference code (wzmsltw/BSN-boundary-sensitive-network) the last convolution is scaled by
  0.01 before the sigmoid (``tem_output_scale``).
* **PGM** (section 3.4, proposal generation module): boundary candidates are locations whose start (end)
  probability is a local peak or above ``peak_threshold`` x the maximum; every start/end pair with
  ``start < end`` and ``end - start <= max_duration`` is a candidate proposal. The boundary-sensitive
  proposal (BSP) feature samples the actionness curve at ``N_a = 16`` points inside the proposal and
  ``N_b = 8`` points in its start and end regions (each ``[t - d/5, t + d/5]``, d the duration),
  each point the mean of linear interpolations (``num_sample_interp = 3`` as the reference code).
* **PEM** (section 3.5, proposal evaluation module): a multilayer perceptron with one hidden layer
  (``fc(32, 512) -> ReLU -> fc(512, 1) -> sigmoid``) regressing the proposal's maximum tIoU with the
  ground truth. Final score (eq. 9): ``p_f = p_ts^s x p_te^e x p_conf``, followed by Soft-NMS.

Losses: the TEM loss (eq. 1-2) is ``L_TEM = lambda L_bl^action + L_bl^start + L_bl^end`` (lambda = 2) with the
weighted binary logistic loss ``L_bl``; the PEM loss (eq. 8) is the L2 regression loss on a tIoU-balanced
sample of proposals (reference code: all proposals with IoU > 0.6, 1x as many with 0.2-0.6, 2x below 0.2).

Everything here works in *cell coordinates*: cell ``i`` of a feature sequence is centred at ``i`` and spans
``[i - 0.5, i + 0.5]``; the engine converts to seconds with ``FeatureDataset.snippet_centers``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class TEM(nn.Module):
    """Temporal evaluation module (BSN section 3.3, Table 1 of the paper's supplementary architecture).

    Input ``(B, D, L)`` features, output ``(B, 3, L)`` probabilities: actionness, start, end.
    """

    def __init__(self, in_dim: int, hidden: int = 512, output_scale: float = 0.01) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, hidden, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.conv3 = nn.Conv1d(hidden, 3, kernel_size=1)
        self.output_scale = output_scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(features))
        x = F.relu(self.conv2(x))
        return torch.sigmoid(self.output_scale * self.conv3(x))


class PEM(nn.Module):
    """Proposal evaluation module (BSN section 3.5): MLP with one hidden layer on the 32-d BSP feature.

    The reference code scales both layers' outputs by 0.1 before the non-linearities (``output_scale``).
    """

    def __init__(self, in_dim: int = 32, hidden: int = 512, output_scale: float = 0.1) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.output_scale = output_scale

    def forward(self, bsp: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.output_scale * self.fc1(bsp))
        return torch.sigmoid(self.output_scale * self.fc2(x)).squeeze(-1)


# --------------------------------------------------------------------------------------------------- labels


def interval_iop(anchors: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Intersection over the anchor's length, ``(A, 2) x (G, 2) -> (A, G)`` (BSN's IoP)."""
    inter = np.clip(
        np.minimum(anchors[:, None, 1], segments[None, :, 1]) - np.maximum(anchors[:, None, 0], segments[None, :, 0]),
        0.0,
        None,
    )
    return inter / np.maximum(anchors[:, 1] - anchors[:, 0], 1e-8)[:, None]


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
        targets[row] = interval_iop(anchors, regions).max(axis=1)
    return targets


def weighted_binary_logistic_loss(prob: torch.Tensor, match: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """BSN eq. 2: ``L_bl = 1/l sum(alpha+ b log p + alpha- (1-b) log(1-p))`` with ``b = [g > threshold]``,
    ``alpha+ = l / l+`` and ``alpha- = l / l-`` counted over the batch (each count at least 1)."""
    positive = (match > threshold).to(prob.dtype)
    total = positive.numel()
    num_pos = positive.sum().clamp(min=1.0)
    num_neg = (total - positive.sum()).clamp(min=1.0)
    eps = 1e-6
    log_pos = torch.log(prob.clamp(min=eps))
    log_neg = torch.log((1.0 - prob).clamp(min=eps))
    loss = (total / num_pos) * positive * log_pos + (total / num_neg) * (1.0 - positive) * log_neg
    return -loss.mean()


def tem_loss(
    output: torch.Tensor, targets: torch.Tensor, action_weight: float = 2.0, threshold: float = 0.5,
    end_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """BSN eq. 1: ``L_TEM = lambda L_bl^action + L_bl^start + gamma L_bl^end`` over ``(B, 3, L)`` tensors;
    ``L_bl^start + gamma L_bl^end`` is RefactorNet's boundary loss L_P (eq. 6, gamma = 1 as BSN)."""
    parts = [weighted_binary_logistic_loss(output[:, k], targets[:, k], threshold) for k in range(3)]
    total = action_weight * parts[0] + parts[1] + end_weight * parts[2]
    return total, {name: part.detach().item() for name, part in zip(("action", "start", "end"), parts, strict=True)}


def pem_loss(
    score: torch.Tensor,
    iou: torch.Tensor,
    generator: torch.Generator,
    high: float = 0.6,
    low: float = 0.2,
    ratio_medium: float = 1.0,
    ratio_low: float = 2.0,
) -> torch.Tensor:
    """BSN eq. 8 with the reference code's tIoU-balanced sampling: every proposal with IoU > ``high``,
    about ``ratio_medium`` x as many from ``(low, high]`` and ``ratio_low`` x as many from ``[0, low]``
    (random masks drawn from ``generator``); ``0.5 x`` weighted mean squared error."""
    is_high = iou > high
    is_medium = (iou <= high) & (iou > low)
    is_low = iou <= low
    num_high = is_high.sum().clamp(min=1).to(score.dtype)
    draw = torch.rand(iou.shape, generator=generator, dtype=score.dtype)
    keep_medium = is_medium & (draw < ratio_medium * num_high / is_medium.sum().clamp(min=1))
    keep_low = is_low & (draw < ratio_low * num_high / is_low.sum().clamp(min=1))
    weights = (is_high | keep_medium | keep_low).to(score.dtype)
    return 0.5 * (weights * (score - iou) ** 2).sum() / weights.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------- proposal generation


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


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
