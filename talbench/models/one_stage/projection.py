"""The convolutional projection that opens every one-stage pyramid encoder ("two consecutive 1D CNNs followed by
ReLU", CLTDR-GMG sec. "Encoder with GMG"; ActionFormer sec. 3.2 "projection"), and the optional absolute
position encoding.

Official code (``backbones.py`` of ActionFormer, TriDet, TemporalMaxer and CLTDR-GMG): ``num_layers`` x
[MaskedConv1D (kernel 3, no bias when followed by LayerNorm) -> channel LayerNorm -> ReLU], the first
``C_in -> D`` and the others ``D -> D``. The paper does not mention the LayerNorm; it follows the code
(``embd_with_ln: True``).

Absolute position encoding (``use_abs_pe``, ActivityNet and HACS configs only): the sinusoid table of Vaswani
et al. divided by ``sqrt(D)``, added at the valid positions after the projection; in evaluation a sequence
longer than ``max_len`` gets the table linearly interpolated to its length, as the official backbones do.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.masked_conv import MaskedConv1d


class ConvProjection(nn.Module):
    def __init__(
        self, in_dim: int, dim: int, num_layers: int = 2, kernel_size: int = 3, with_ln: bool = True
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the projection needs at least one conv, got {num_layers}")
        self.convs = nn.ModuleList(
            MaskedConv1d(in_dim if i == 0 else dim, dim, kernel_size, bias=not with_ln)
            for i in range(num_layers)
        )
        self.norms = nn.ModuleList(
            ChannelLayerNorm(dim) if with_ln else nn.Identity() for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x, _ = conv(x, mask)
            x = torch.relu(norm(x))
        return x


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """``(1, dim, length)``: ``sin(t / 10000^(2i/dim))`` on channel ``2i`` and ``cos`` on ``2i + 1``."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    exponent = 2.0 * (torch.arange(dim) // 2).to(torch.float64) / dim
    angle = position / torch.pow(10000.0, exponent)[None, :]
    table = torch.where(torch.arange(dim)[None, :] % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(torch.float32).T.unsqueeze(0)


class SinusoidPositionEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoid_table(max_len, dim) / math.sqrt(dim), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        table = self.table.to(x.dtype)
        if t > self.max_len:
            if self.training:
                raise ValueError(f"training sequence of length {t} exceeds max_len {self.max_len}")
            table = F.interpolate(table, size=t, mode="linear", align_corners=False)
        return x + table[..., :t] * mask.to(x.dtype)
