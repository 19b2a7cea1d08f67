"""The Gated Multi-Granularity (GMG) block of CLTDR-GMG (sec. "Encoder with GMG", eqs. 1-4, fig. 3).

Default = the official code (``SGPBlock`` in ``libs/modeling/blocks.py`` of LiQiang0307/CLTDR-GMG, a TriDet fork;
it produced the published numbers). Input ``x`` ``(B, D, T)``, mask ``(B, 1, T)``:

1. ``x <- maxpool(x)`` in branch blocks (kernel 3, stride 2, padding 1; identity in the stem);
2. ``u = LN(x)`` (channel LayerNorm);
3. branches, all reading ``u``:
   * instant ``f = dwconv_1(u)`` — the paper's "FC"; the code uses a depth-wise 1x1 conv (per-channel scale + bias);
   * local ``c = dwconv_k(u)`` — depth-wise conv, kernel ``k`` = ``n_sgp_win_size`` (1 on THUMOS14; the stem
     always uses 1);
   * global ``g`` (eqs. 1-3): ``X = rfft_t(u)`` (orthonormal, in float32); the filter ``W = softshrink_0.001(
     A2(ReLU(A1(X))))`` where ``A1, A2`` are per-channel complex affine maps (parameters ``w1, b1, w2, b2`` of shape
     ``(2, D[, 1])``, real and imaginary parts, init ``0.02 * randn``) and ReLU acts on the real and imaginary parts
     separately; ``g = irfft(X * W, n=T)``. The paper's "Conv-ReLU-Conv, depth-wise, kernel 3" (eq. 2, Supp. C) is a
     kernel-1 complex conv in the code (AFNO-style, data-dependent filter);
4. gate (code): ``G = g; L = c * G; I = f * L; mixer = I + L + G + u``; the paper's eq. 4 has ReLUs and no
   ``u`` term: ``L = ReLU(G) * c; I = ReLU(L) * f; mixer = I + L + G`` (``gate="paper"``, diagnostic);
5. ``y = x * mask + DropPath(mixer)``; ``y = y + DropPath(MLP(GN_16(y)))``, ``MLP = 1x1 (D -> H) -> GELU -> 1x1``.

The instant and local depth-wise weights start from N(0, ``init_conv_vars``) (0 on THUMOS14: exact zeros) with zero
biases; the MLP biases start at 0. The mixer output is not masked (only the residual), as in the code.

Ablation switches:

* ``branches`` (table 6): any non-empty subset of ``("instant", "local", "global")``. Absent branches are not
  built. With the gate, each present branch is multiplied by the (gated) output of the next coarser present branch
  (instant <- local <- global) and the coarsest present branch is ungated, which is the code's chain with the
  missing links skipped;
* ``gate`` (table 7): ``"code"`` (default), ``"none"`` (``mixer = f + c + g + u``, the form left commented out next
  to the gated one in the official ``SGPBlock.forward``), ``"paper"`` (eq. 4, diagnostic);
* ``global_extractor`` (table 8): ``"fft"`` (default) or ``"attention"``: vanilla masked multi-head
  self-attention over the whole sequence on ``u`` (:class:`~talbench.models.blocks.self_attention.MaskedMHA`,
  ``attention_heads`` heads) in place of the FFT filter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.drop_path import residual_scaler
from talbench.models.blocks.masked_conv import downsample_mask
from talbench.models.blocks.max_downsample import max_pool_downsample
from talbench.models.blocks.self_attention import MaskedMHA
from talbench.models.blocks.sgp import depthwise_conv, feed_forward

BRANCHES = ("instant", "local", "global")  # finest to coarsest: the order of the gating chain
GATES = ("code", "none", "paper")
GLOBAL_EXTRACTORS = ("fft", "attention")


class FourierGlobalFilter(nn.Module):
    """Global branch, eqs. 1-3 as coded: ``irfft(X * softshrink(A2(ReLU(A1(X)))))`` with ``X = rfft(u)``.
    Computed in float32 with autocast off (the official forward is decorated the same way)."""

    def __init__(self, dim: int, shrink: float = 0.001):
        super().__init__()
        self.shrink = shrink
        self.w1 = nn.Parameter(0.02 * torch.randn(2, dim, 1))
        self.b1 = nn.Parameter(0.02 * torch.randn(2, dim))
        self.w2 = nn.Parameter(0.02 * torch.randn(2, dim, 1))
        self.b2 = nn.Parameter(0.02 * torch.randn(2, dim))

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=u.device.type, enabled=False):
            spectrum = torch.fft.rfft(u.float(), dim=-1, norm="ortho")
            w1 = torch.complex(self.w1[0].float(), self.w1[1].float())
            b1 = torch.complex(self.b1[0].float(), self.b1[1].float())[:, None]
            w2 = torch.complex(self.w2[0].float(), self.w2[1].float())
            b2 = torch.complex(self.b2[0].float(), self.b2[1].float())[:, None]
            hidden = spectrum * w1 + b1
            hidden = torch.complex(torch.relu(hidden.real), torch.relu(hidden.imag))
            filt = hidden * w2 + b2
            filt = torch.complex(F.softshrink(filt.real, self.shrink), F.softshrink(filt.imag, self.shrink))
            out = torch.fft.irfft(spectrum * filt, n=u.shape[-1], dim=-1, norm="ortho")
        return out.to(u.dtype)


class AttentionGlobalExtractor(nn.Module):
    """Global branch of table 8's "Self-Attention" row: vanilla masked multi-head self-attention on ``u``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attn = MaskedMHA(dim, num_heads)

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.attn(u, mask)


def gated_mixture(terms: dict[str, torch.Tensor], u: torch.Tensor, gate: str) -> torch.Tensor:
    """Combine the present branch outputs (``terms``: raw ``f``, ``c``, ``g`` keyed by branch name) with ``u``."""
    if gate == "none":
        return sum(terms.values()) + u
    gated: list[torch.Tensor] = []
    coarser: torch.Tensor | None = None
    for name in reversed(BRANCHES):  # global, local, instant
        if name not in terms:
            continue
        if coarser is None:
            out = terms[name]
        elif gate == "code":
            out = terms[name] * coarser
        else:
            out = terms[name] * torch.relu(coarser)
        gated.append(out)
        coarser = out
    mixture = sum(gated)
    return mixture + u if gate == "code" else mixture


class GMGBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        local_kernel_size: int = 1,
        stride: int = 1,
        mlp_dim: int = 768,
        drop_path: float = 0.0,
        init_conv_vars: float = 0.0,
        branches: Sequence[str] = BRANCHES,
        gate: str = "code",
        global_extractor: str = "fft",
        attention_heads: int = 4,
        gn_groups: int = 16,
    ):
        super().__init__()
        branches = tuple(branches)
        if not branches or any(b not in BRANCHES for b in branches) or len(set(branches)) != len(branches):
            raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, got {branches}")
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        if global_extractor not in GLOBAL_EXTRACTORS:
            raise ValueError(f"global_extractor must be one of {GLOBAL_EXTRACTORS}, got {global_extractor!r}")
        if local_kernel_size % 2 != 1:
            raise ValueError(f"the local kernel must be odd, got {local_kernel_size}")
        self.stride = stride
        self.branches = branches
        self.gate = gate
        self.ln = ChannelLayerNorm(dim)
        self.gn = nn.GroupNorm(gn_groups, dim)
        self.instant = depthwise_conv(dim, 1, init_conv_vars) if "instant" in branches else None
        self.local = depthwise_conv(dim, local_kernel_size, init_conv_vars) if "local" in branches else None
        if "global" not in branches:
            self.global_branch = None
        elif global_extractor == "fft":
            self.global_branch = FourierGlobalFilter(dim)
        else:
            self.global_branch = AttentionGlobalExtractor(dim, attention_heads)
        self.mlp = feed_forward(dim, mlp_dim)
        self.drop_path_out = residual_scaler(dim, drop_path)
        self.drop_path_mlp = residual_scaler(dim, drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = max_pool_downsample(x, self.stride)
        out_mask = downsample_mask(mask, self.stride)
        u = self.ln(x)
        terms: dict[str, torch.Tensor] = {}
        if self.instant is not None:
            terms["instant"] = self.instant(u)
        if self.local is not None:
            terms["local"] = self.local(u)
        if self.global_branch is not None:
            terms["global"] = self.global_branch(u, out_mask)
        out = x * out_mask.to(x.dtype) + self.drop_path_out(gated_mixture(terms, u, self.gate))
        out = out + self.drop_path_mlp(self.mlp(self.gn(out)))
        return out, out_mask
