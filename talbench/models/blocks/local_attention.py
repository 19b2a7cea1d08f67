"""ActionFormer's masked multi-head convolutional self-attention and its transformer block
(Zhang et al., ECCV 2022, sec. 3.2 and fig. 2; ``libs/modeling/blocks.py`` ``LocalMaskedMHCA``,
``MaskedMHCA``, ``TransformerBlock`` of the official release).

Attention (``MaskedMHCA``), input ``x`` ``(B, D, T)``:

* query, key and value each go through a depth-wise conv (kernel 3, or ``stride + 1`` when downsampling, no bias,
  masked) and a channel LayerNorm, then a 1x1 projection; with ``stride`` 2 the three convs also halve the length;
* each query attends to the valid keys within ``window_size // 2`` positions on either side (local window, the
  THUMOS14 setting is 19), or to every valid key when ``window_size`` is ``None`` (the global attention of the
  official ``MaskedMHCA``, used e.g. at the top ActivityNet level);
* the heads are concatenated, projected (1x1) and multiplied by the query mask.

The official local attention is the Longformer sliding-chunk implementation, which needs lengths divisible by
``window_size - 1``; the same band of scores is computed here with ``unfold``, for any length. Masked keys get an
additive -1e4 there and -inf here: both give them zero weight. Padded queries end at zero in both (the output is
multiplied by the query mask after the projection).

Block (``TransformerBlock``, pre-LN): ``y = pool(x) * mask + DropPath(MHCA(LN(x)))``,
``y = y + DropPath(MLP(LN(y)) * mask)`` with ``MLP = 1x1 conv (D -> 4D) -> GELU -> 1x1 conv (4D -> D)`` and
``pool`` the max-pool ``kernel stride+1, stride, padding (stride+1)//2`` (identity at stride 1). The official
config's dropout rates are 0, so no dropout layers are built; the 1x1 conv biases start at 0 (the official
backbone zeroes every ``Conv1d`` bias).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.drop_path import residual_scaler
from talbench.models.blocks.masked_conv import MaskedConv1d
from talbench.models.blocks.max_downsample import max_pool_downsample


def windowed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, window_size: int | None
) -> torch.Tensor:
    """Scaled dot-product attention of ``q`` ``(B, H, T, d)`` over ``k, v`` ``(B, H, T, d)`` restricted to valid
    keys (``key_mask`` bool ``(B, T)``) and, when ``window_size`` is given, to ``|i - j| <= window_size // 2``.
    Rows with no valid key (padded queries) get zero weights. Returns ``(B, H, T, d)``."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    if window_size is None:
        scores = (q * scale) @ k.transpose(-2, -1)  # (B, H, T, T)
        valid = key_mask[:, None, None, :]
        weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)
        weights = torch.nan_to_num(weights, nan=0.0)
        return weights @ v
    half = window_size // 2
    width = 2 * half + 1
    k_win = F.pad(k, (0, 0, half, half)).unfold(2, width, 1)  # (B, H, T, d, width)
    v_win = F.pad(v, (0, 0, half, half)).unfold(2, width, 1)
    valid = F.pad(key_mask, (half, half), value=False).unfold(1, width, 1)[:, None]  # (B, 1, T, width)
    scores = torch.einsum("bhtd,bhtdw->bhtw", q * scale, k_win)
    weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)
    return torch.einsum("bhtw,bhtdw->bhtd", weights, v_win)


class MaskedMHCA(nn.Module):
    """Multi-head convolutional self-attention, local (``window_size`` odd > 1) or global (``None``).
    ``forward(x, mask) -> (out, out_mask)``; with ``stride`` 2 the output has ``ceil(T / 2)`` steps."""

    def __init__(self, dim: int, num_heads: int, window_size: int | None, stride: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if window_size is not None and (window_size < 3 or window_size % 2 == 0):
            raise ValueError(f"window_size must be an odd number >= 3 or None (global), got {window_size}")
        if stride != 1 and stride % 2:
            raise ValueError(f"stride must be 1 or even, got {stride}")
        self.num_heads = num_heads
        self.window_size = window_size
        kernel = stride + 1 if stride > 1 else 3
        self.query_conv = MaskedConv1d(dim, dim, kernel, stride=stride, groups=dim, bias=False)
        self.key_conv = MaskedConv1d(dim, dim, kernel, stride=stride, groups=dim, bias=False)
        self.value_conv = MaskedConv1d(dim, dim, kernel, stride=stride, groups=dim, bias=False)
        self.query_norm = ChannelLayerNorm(dim)
        self.key_norm = ChannelLayerNorm(dim)
        self.value_norm = ChannelLayerNorm(dim)
        self.query = nn.Conv1d(dim, dim, 1)
        self.key = nn.Conv1d(dim, dim, 1)
        self.value = nn.Conv1d(dim, dim, 1)
        self.proj = nn.Conv1d(dim, dim, 1)
        for conv in (self.query, self.key, self.value, self.proj):
            nn.init.zeros_(conv.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        return x.view(b, self.num_heads, c // self.num_heads, t).transpose(2, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, out_mask = self.query_conv(x, mask)
        k, _ = self.key_conv(x, mask)
        v, _ = self.value_conv(x, mask)
        q = self._heads(self.query(self.query_norm(q)))
        k = self._heads(self.key(self.key_norm(k)))
        v = self._heads(self.value(self.value_norm(v)))
        out = windowed_attention(q, k, v, out_mask[:, 0], self.window_size)  # (B, H, T', d)
        b, h, t, d = out.shape
        out = out.transpose(2, 3).reshape(b, h * d, t)
        return self.proj(out) * out_mask.to(out.dtype), out_mask


class TransformerBlock(nn.Module):
    """ActionFormer's pre-LN transformer block with (local) MHCA; ``stride`` 2 downsamples by 2."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int | None,
        stride: int = 1,
        mlp_dim: int | None = None,
        drop_path: float = 0.0,
    ):
        super().__init__()
        mlp_dim = mlp_dim or 4 * dim
        self.stride = stride
        self.ln1 = ChannelLayerNorm(dim)
        self.ln2 = ChannelLayerNorm(dim)
        self.attn = MaskedMHCA(dim, num_heads, window_size, stride)
        self.mlp = nn.Sequential(nn.Conv1d(dim, mlp_dim, 1), nn.GELU(), nn.Conv1d(mlp_dim, dim, 1))
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.zeros_(layer.bias)
        self.drop_path_attn = residual_scaler(dim, drop_path)
        self.drop_path_mlp = residual_scaler(dim, drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, out_mask = self.attn(self.ln1(x), mask)
        m = out_mask.to(out.dtype)
        out = max_pool_downsample(x, self.stride) * m + self.drop_path_attn(out)
        out = out + self.drop_path_mlp(self.mlp(self.ln2(out)) * m)
        return out, out_mask
