"""LayerNorm over the channels of ``(B, C, T)`` features (ActionFormer's ``LayerNorm``, reused by TriDet,
TemporalMaxer and CLTDR-GMG in ``libs/modeling/blocks.py``): each time step is normalised over its ``C`` channels
(mean, biased variance, eps 1e-5), then scaled and shifted per channel (weight 1, bias 0 at init). Computed by
PyTorch's fused ``layer_norm`` on the channels-last view (half the time of the written-out formula on CPU)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ChannelLayerNorm(nn.Module):
    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, num_channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"ChannelLayerNorm({self.num_channels}) expects (B, {self.num_channels}, T), got {tuple(x.shape)}"
            )
        out = F.layer_norm(x.transpose(1, 2), (self.num_channels,), self.weight.view(-1), self.bias.view(-1),
                           self.eps)
        return out.transpose(1, 2)
