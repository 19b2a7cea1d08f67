"""TriDet's Trident head and its decoding (Shi et al., CVPR 2023, sec. 3.3, eqs. 3-5; ``meta_archs.py``
``decode_offset`` of TriDet and CLTDR-GMG, facts sec. 2).

Three branches per level: start and end boundary heads (classification heads on the *detached* pyramid features,
one logit per class and position) and a centre-offset head (regression head with ``2 (B + 1)`` outputs, ``B`` =
``num_bins``), returned as ``(B_batch, 2, B + 1, T)`` (row 0 start bins, row 1 end bins).

Decoding, per point ``t`` (level stride ``s``) and class ``c``:

* start window = start logits at ``t - B, ..., t`` (zero logits left of the sequence), end window = end logits at
  ``t, ..., t + B`` (zero logits right of it) — the official code pads with 0, not -inf;
* ``p_start = softmax_b(start_window[b] + offset[0, b])``, ``p_end = softmax_b(end_window[b] + offset[1, b])``;
* ``d_left = sum_b p_start[b] (B - b)``, ``d_right = sum_b p_end[b] b`` — expected distances in units of ``s``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from talbench.models.one_stage.heads import RegressionHead


class TridentOffsetHead(RegressionHead):
    """The centre-offset branch: a :class:`RegressionHead` with ``2 (num_bins + 1)`` outputs, reshaped to
    ``(B, 2, num_bins + 1, T)`` per level."""

    def __init__(
        self,
        in_dim: int = 512,
        feat_dim: int = 512,
        num_levels: int = 6,
        num_bins: int = 16,
        num_layers: int = 3,
        kernel_size: int = 3,
        with_ln: bool = True,
    ):
        super().__init__(in_dim, feat_dim, num_levels, 2 * (num_bins + 1), num_layers, kernel_size, with_ln)
        self.num_bins = num_bins

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [o.view(o.shape[0], 2, self.num_bins + 1, o.shape[-1]) for o in super().forward(feats, masks)]


def boundary_windows(logits: torch.Tensor, num_bins: int, side: str) -> torch.Tensor:
    """``(B, C, T)`` boundary logits -> ``(B, T, C, num_bins + 1)`` windows: ``side="start"`` gives positions
    ``t - num_bins .. t``, ``side="end"`` gives ``t .. t + num_bins``; outside the sequence the logit is 0."""
    if side == "start":
        padded = F.pad(logits, (num_bins, 0))
    elif side == "end":
        padded = F.pad(logits, (0, num_bins))
    else:
        raise ValueError(f"side must be 'start' or 'end', got {side!r}")
    return padded.unfold(2, num_bins + 1, 1).permute(0, 2, 1, 3)


def trident_distances(
    start_logits: torch.Tensor, end_logits: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """Expected start / end distances of one level, ``(B, T, C, 2)`` in units of the level stride, from the
    boundary logits ``(B, C, T)`` and the centre offsets ``(B, 2, num_bins + 1, T)``."""
    num_bins = offsets.shape[2] - 1
    bins = torch.arange(num_bins + 1, device=offsets.device, dtype=offsets.dtype)
    start_offsets = offsets[:, 0].transpose(1, 2)[:, :, None, :]  # (B, T, 1, bins + 1)
    end_offsets = offsets[:, 1].transpose(1, 2)[:, :, None, :]
    p_start = torch.softmax(boundary_windows(start_logits, num_bins, "start") + start_offsets, dim=-1)
    p_end = torch.softmax(boundary_windows(end_logits, num_bins, "end") + end_offsets, dim=-1)
    d_left = (p_start * (num_bins - bins)).sum(-1)
    d_right = (p_end * bins).sum(-1)
    return torch.stack([d_left, d_right], dim=-1)
