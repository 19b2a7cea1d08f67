"""Stochastic depth with a learnable per-channel scale (``AffineDropPath`` of ActionFormer / TriDet /
CLTDR-GMG ``libs/modeling/blocks.py``, after LayerScale, Touvron et al. 2021).

``AffineDropPath(x) = drop_path(scale * x)``: the residual branch is multiplied by a per-channel scale
initialised to 1e-4, then, in training, zeroed for a random subset of samples (probability ``drop_prob``)
and divided by ``1 - drop_prob`` for the others. In evaluation only the scale applies.
The official blocks build it only when the drop rate is positive (otherwise the branch is left unscaled),
so the scale parameters exist only then; :func:`residual_scaler` reproduces that.
"""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Zero whole samples (first axis) with probability ``drop_prob`` and rescale the kept ones."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device) < keep_prob
    return x * keep.to(x.dtype) / keep_prob


class AffineDropPath(nn.Module):
    def __init__(self, num_channels: int, drop_prob: float, init_scale: float = 1e-4):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.scale = nn.Parameter(torch.full((1, num_channels, 1), float(init_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(self.scale * x, self.drop_prob, self.training)


def residual_scaler(num_channels: int, drop_prob: float) -> nn.Module:
    """``AffineDropPath`` when ``drop_prob > 0``, else identity (as the official blocks build it)."""
    return AffineDropPath(num_channels, drop_prob) if drop_prob > 0.0 else nn.Identity()
