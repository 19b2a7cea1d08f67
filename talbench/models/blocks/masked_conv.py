"""Masked 1-D convolution over padded batches ``(B, C, T)`` with a boolean mask ``(B, 1, T)``.

The one-stage detectors (ActionFormer, TriDet, TemporalMaxer, CLTDR-GMG) share ActionFormer's ``MaskedConv1D``
(``libs/modeling/blocks.py`` in each repository): a "same" convolution with an odd kernel, whose output is
multiplied by the (downsampled) mask, and whose bias, if any, starts at zero. The input itself is not masked:
a kernel at the last valid position reads the first padded positions, as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn


def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """The mask of a length-``T`` sequence after a stride-``stride`` op: every ``stride``-th position,
    length ``ceil(T / stride)``.

    The official code resamples the mask by nearest interpolation to ``T // stride`` positions, which picks
    the same positions when ``stride`` divides ``T`` (the only case it supports: inputs are padded to a
    multiple of the largest stride). Taking every ``stride``-th position also gives the length of a
    ``kernel stride+1, padding (stride+1)//2`` max-pool or a ``kernel 3, padding 1`` strided conv when it
    does not divide ``T``, so odd lengths work too."""
    return mask if stride == 1 else mask[..., ::stride]


class MaskedConv1d(nn.Module):
    """``Conv1d`` with padding ``kernel_size // 2`` whose output is multiplied by the downsampled mask.

    ``forward(x, mask) -> (y, out_mask)``, ``x`` ``(B, C_in, T)``, ``mask`` bool ``(B, 1, T)``,
    ``y`` ``(B, C_out, ceil(T / stride))``. The bias (when present) is initialised to 0 as in the official
    ``MaskedConv1D``; the weight keeps PyTorch's default initialisation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"MaskedConv1d needs an odd kernel (centred output), got {kernel_size}")
        self.stride = stride
        self.conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=bias,
        )
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_mask = downsample_mask(mask, self.stride)
        return self.conv(x) * out_mask.to(x.dtype), out_mask
