"""TAL-Net's anchors and box coding, in grid coordinates (:mod:`talbench.runners.talnet.grid`).

**Anchors** (sec. 4.1 and "Implementation Details"): one anchor of each scale ``s`` in
``{1, 2, 3, 4, 5, 6, 8, 11, 16}`` TAL-Net cells centred at every grid cell: ``[j + 0.5 - S/2, j + 0.5 + S/2]``
with ``S = s u`` grid cells (``u`` grid cells per TAL-Net cell: 12 on the native grid at 30 fps, 1 on the
pooled one). They are laid out scale-major, anchor ``k T + j`` = scale ``k`` at cell ``j``, as the SPN's
outputs ``(K, T, 2)`` are. Training uses the anchors inside the video only (Faster R-CNN ignores
cross-boundary anchors; the TF OD API prunes them), inference clips them to the video (the API's
``clip_to_window``).

**Box coding** (supplementary A.1, eq. 2): the TF Object Detection API's ``FasterRcnnBoxCoder`` with scale
factors 10 (centre) and 5 (length) in one dimension, ``t_c = 10 (c - c_a) / l_a``, ``t_l = 5 log(l / l_a)``,
with the API's ``EPSILON = 1e-8`` added to both lengths when encoding (our copy of [P] prints ``/ c_i`` in the
centre term, an extraction garble: the coder divides by the anchor's length).
"""

from __future__ import annotations

import numpy as np
import torch

CENTER_SCALE = 10.0  # FasterRcnnBoxCoder scale_factors [10, 10, 5, 5] (y, x, h, w)
LENGTH_SCALE = 5.0
EPSILON = 1e-8  # FasterRcnnBoxCoder: added to the anchor and box lengths when encoding


def anchor_lengths(scales, unit: int) -> np.ndarray:
    """Anchor spans in grid cells, ``s u`` for each scale."""
    return np.asarray(scales, dtype=np.float64) * unit


def make_anchors(cells: int, lengths: np.ndarray) -> np.ndarray:
    """``(K T, 2)`` float64 anchors ``[start, end]`` in grid coordinates, scale-major (anchor ``k T + j``)."""
    centers = np.arange(cells, dtype=np.float64) + 0.5
    half = 0.5 * np.asarray(lengths, dtype=np.float64)[:, None]
    return np.stack([(centers[None, :] - half).ravel(), (centers[None, :] + half).ravel()], axis=1)


def inside_window(segments: np.ndarray, cells: int) -> np.ndarray:
    """Segments entirely inside ``[0, cells]``: the anchors kept for training."""
    return (segments[:, 0] >= 0.0) & (segments[:, 1] <= float(cells))


def clip_segments(segments: torch.Tensor, cells: int) -> torch.Tensor:
    """Segments clipped to ``[0, cells]`` (anchors at inference, proposals and detections after decoding)."""
    return segments.clamp(0.0, float(cells))


def encode(segments: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Offsets ``(N, 2)`` = ``(t_c, t_l)`` of ``segments`` relative to ``references`` (eq. 2), ``[start, end]``."""
    ref_length = references[:, 1] - references[:, 0] + EPSILON
    ref_center = 0.5 * (references[:, 0] + references[:, 1])
    length = segments[:, 1] - segments[:, 0] + EPSILON
    center = 0.5 * (segments[:, 0] + segments[:, 1])
    return torch.stack([CENTER_SCALE * (center - ref_center) / ref_length,
                        LENGTH_SCALE * torch.log(length / ref_length)], dim=1)


def decode(offsets: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode`: ``[start, end]`` of the segments that ``offsets`` (``(..., 2)``) describe,
    references broadcast against them. As the API's ``decode``: without ``EPSILON`` and without clamping
    ``t_l`` (a too long segment is clipped to the video afterwards)."""
    ref_length = references[..., 1] - references[..., 0]
    ref_center = 0.5 * (references[..., 0] + references[..., 1])
    center = offsets[..., 0] / CENTER_SCALE * ref_length + ref_center
    length = torch.exp(offsets[..., 1] / LENGTH_SCALE) * ref_length
    return torch.stack([center - 0.5 * length, center + 0.5 * length], dim=-1)
