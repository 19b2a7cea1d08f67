"""Max-pool downsampling between pyramid levels: ``MaxPool1d(kernel stride+1, stride, padding (stride+1)//2)``
(kernel 3, stride 2, padding 1 at the usual factor 2), as in the branch blocks of ActionFormer (skip path),
TriDet / CLTDR-GMG (``downsample_type: max``) and TemporalMaxer. Output length ``ceil(T / stride)``.

:class:`TemporalMaxerBlock` is TemporalMaxer's whole pyramid block (Tang et al. 2023, sec. 3.2, ``TemporalMaxer``
in ``libs/modeling/blocks.py``): max-pool, then multiply by the downsampled mask; it has no parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from talbench.models.blocks.masked_conv import downsample_mask


def max_pool_downsample(x: torch.Tensor, stride: int) -> torch.Tensor:
    if stride == 1:
        return x
    return F.max_pool1d(x, kernel_size=stride + 1, stride=stride, padding=(stride + 1) // 2)


class TemporalMaxerBlock(nn.Module):
    def __init__(self, stride: int = 2):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_mask = downsample_mask(mask, self.stride)
        return max_pool_downsample(x, self.stride) * out_mask.to(x.dtype), out_mask
