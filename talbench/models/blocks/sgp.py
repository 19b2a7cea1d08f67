"""TriDet's Scalable-Granularity Perception (SGP) block (Shi et al., CVPR 2023, sec. 3.2, eq. 2 and fig. 3;
``SGPBlock`` in ``libs/modeling/blocks.py`` of the official TriDet code).

Input ``x`` ``(B, D, T)``, optionally max-pool downsampled first (branch blocks, stride 2). With ``u = LN(x)``:

* instant level: ``fc = dwconv_1(u)`` gated by ``phi = ReLU(dwconv_1(mean_t(u)))`` (video-level mean over the
  padded length, as the code);
* window level: ``(dwconv_w(u) + dwconv_kw(u)) * psi`` with ``psi = dwconv_w(u)`` (a third depth-wise conv, same
  kernel ``w``) and ``kw = round((w + 1) * k)`` made odd (THUMOS14: ``w`` 1, ``k`` 5 -> 11);
* ``mixer = fc * phi + (conv_w + conv_kw) * psi + u`` (the code adds ``u``);
* ``y = x * mask + DropPath(mixer)``; ``y = y + DropPath(MLP(GN_16(y)))``, ``MLP = 1x1 (D -> H) -> GELU -> 1x1``.

The depth-wise conv weights start from N(0, ``init_conv_vars``) (0 on THUMOS14, so exactly zero) with zero biases;
the MLP biases start at 0 (the official backbone zeroes every ``Conv1d`` bias). The mixer output is not masked
(only the residual is), as in the code.
"""

from __future__ import annotations

import torch
from torch import nn

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.drop_path import residual_scaler
from talbench.models.blocks.masked_conv import downsample_mask
from talbench.models.blocks.max_downsample import max_pool_downsample


class DepthwiseConv1d(nn.Conv1d):
    """A depth-wise ``Conv1d`` (``groups = channels``, "same" padding). With kernel 1 it is a per-channel scale and
    shift, computed as such: the same function and parameters, without PyTorch's CPU grouped-convolution path,
    which runs one channel at a time (7x slower at D = 32, 2x at D = 512, forward and backward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size[0] != 1:
            return super().forward(x)
        out = x * self.weight[None, :, 0, 0, None]
        return out if self.bias is None else out + self.bias[None, :, None]


def depthwise_conv(dim: int, kernel_size: int, init_std: float) -> nn.Conv1d:
    """Depth-wise ``Conv1d`` with "same" padding, weight ~ N(0, init_std) (0 gives exact zeros), bias 0."""
    conv = DepthwiseConv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
    nn.init.normal_(conv.weight, 0.0, init_std)
    nn.init.zeros_(conv.bias)
    return conv


def feed_forward(dim: int, hidden_dim: int) -> nn.Sequential:
    """``1x1 conv (dim -> hidden) -> GELU -> 1x1 conv (hidden -> dim)`` with zero biases."""
    mlp = nn.Sequential(nn.Conv1d(dim, hidden_dim, 1), nn.GELU(), nn.Conv1d(hidden_dim, dim, 1))
    for layer in (mlp[0], mlp[2]):
        nn.init.zeros_(layer.bias)
    return mlp


def sgp_long_kernel(kernel_size: int, k: float) -> int:
    """``round((w + 1) * k)``, bumped to the next odd number (the window level's second, wider conv)."""
    size = round((kernel_size + 1) * k)
    return size + 1 if size % 2 == 0 else size


class SGPBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        kernel_size: int = 1,
        stride: int = 1,
        k: float = 5.0,
        mlp_dim: int = 768,
        drop_path: float = 0.0,
        init_conv_vars: float = 0.0,
        gn_groups: int = 16,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"SGP kernel size must be odd, got {kernel_size}")
        self.stride = stride
        self.ln = ChannelLayerNorm(dim)
        self.gn = nn.GroupNorm(gn_groups, dim)
        self.psi = depthwise_conv(dim, kernel_size, init_conv_vars)
        self.fc = depthwise_conv(dim, 1, init_conv_vars)
        self.convw = depthwise_conv(dim, kernel_size, init_conv_vars)
        self.convkw = depthwise_conv(dim, sgp_long_kernel(kernel_size, k), init_conv_vars)
        self.global_fc = depthwise_conv(dim, 1, init_conv_vars)
        self.mlp = feed_forward(dim, mlp_dim)
        self.drop_path_out = residual_scaler(dim, drop_path)
        self.drop_path_mlp = residual_scaler(dim, drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = max_pool_downsample(x, self.stride)
        out_mask = downsample_mask(mask, self.stride)
        u = self.ln(x)
        phi = torch.relu(self.global_fc(u.mean(dim=-1, keepdim=True)))
        mixer = self.fc(u) * phi + (self.convw(u) + self.convkw(u)) * self.psi(u) + u
        out = x * out_mask.to(x.dtype) + self.drop_path_out(mixer)
        out = out + self.drop_path_mlp(self.mlp(self.gn(out)))
        return out, out_mask
