"""Vanilla masked multi-head self-attention over the whole sequence (Vaswani et al. 2017; ActionFormer's
``MaskedMHA`` in ``libs/modeling/blocks.py``): 1x1 query / key / value projections, softmax over the valid keys,
heads concatenated and projected (1x1), output multiplied by the mask. No convolution, no window.

Used as the "Self-Attention" global extractor of the GMG ablation (CLTDR-GMG table 8, "vanilla self-attention
used by Transformer"); the paper does not give its number of heads: ActionFormer's 4 is the default here.
"""

from __future__ import annotations

import torch
from torch import nn

from talbench.models.blocks.local_attention import windowed_attention


class MaskedMHA(nn.Module):
    def __init__(self, dim: int, num_heads: int = 4):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.query = nn.Conv1d(dim, dim, 1)
        self.key = nn.Conv1d(dim, dim, 1)
        self.value = nn.Conv1d(dim, dim, 1)
        self.proj = nn.Conv1d(dim, dim, 1)
        for conv in (self.query, self.key, self.value, self.proj):
            nn.init.zeros_(conv.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        return x.view(b, self.num_heads, c // self.num_heads, t).transpose(2, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, D, T)``, ``mask`` bool ``(B, 1, T)`` -> ``(B, D, T)``."""
        out = windowed_attention(
            self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x)), mask[:, 0], None
        )
        b, h, t, d = out.shape
        return self.proj(out.transpose(2, 3).reshape(b, h * d, t)) * mask.to(x.dtype)
