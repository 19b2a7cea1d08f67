"""Temporal RoI pooling (Fast R-CNN RoI max pooling [Girshick 2015] in one dimension), the proposal feature of
RefactorNet (CVPR 2022, sec. 5.2) as in MUSES (CVPR 2021) and P-GCN.

A region's variable-length snippet set, stored padded ``(N, K, D)`` with its mask ``(N, K)`` (valid snippets
first, in temporal order, as :func:`talbench.runners.proposal_detector.regions.region_index` builds them), is cut into
``bins`` equal parts and each part is max-pooled: bin ``j`` of a region with ``K_i`` snippets covers the
snippets ``[floor(j K_i / bins), ceil((j + 1) K_i / bins))``, which is never empty (a short region repeats
snippets across bins, as RoIPool does).
"""

from __future__ import annotations

import torch
from torch import nn

from talbench.models.blocks.masked_pooling import masked_max


class TemporalRoIPool(nn.Module):
    """``(N, K, D)`` + mask ``(N, K)`` -> ``(N, bins * D)`` (bins in temporal order, flattened)."""

    def __init__(self, bins: int):
        super().__init__()
        if bins < 1:
            raise ValueError(f"TemporalRoIPool needs at least one bin, got {bins}")
        self.bins = bins

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = mask.sum(dim=1, keepdim=True)  # (N, 1)
        slot = torch.arange(features.shape[1], device=features.device)[None, :]  # (1, K)
        pooled = []
        for j in range(self.bins):
            first = torch.div(j * length, self.bins, rounding_mode="floor")
            last = -torch.div(-(j + 1) * length, self.bins, rounding_mode="floor")  # ceil
            pooled.append(masked_max(features, mask & (slot >= first) & (slot < last)))
        return torch.cat(pooled, dim=-1)

    def extra_repr(self) -> str:
        return f"bins={self.bins}"
