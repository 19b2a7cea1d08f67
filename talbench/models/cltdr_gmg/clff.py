"""Cross-layer fusion in CLTDR (sec. "Decoder with CLTDR", eqs. 5-9, fig. 4): the resampling of neighbouring
pyramid levels, the fusion strategies of DCM / DRM (table 11), the selection of the layers that feed each task
(table 9), and the Cross-Layer Feature Fusion (CLFF, eq. 9) that feeds the RefineHead.

Official code: ``libs/modeling/TSCODE.py`` of LiQiang0307/CLTDR-GMG (``DeCLS``, ``DeReg``, ``CrossLevel``). Each module
is one instance shared by all levels. Resampling (factor 2 between levels):

* from the coarser level ``P^{l+1}``: ``ConvTranspose1d(D, D, 3, stride 2, padding 1, output_padding 1)``, length
  ``2 T_{l+1}``, cropped to ``T_l`` when ``T_l`` is odd (the official code only sees even lengths);
* from the finer level ``P^{l-1}``: ``Conv1d(D, D, 3, stride 2, padding 1)`` (dense; the paper calls CLFF's a
  depth-wise conv), length ``ceil(T_{l-1} / 2) = T_l``.

Fusion strategies for a level ``P^l`` and its resampled neighbours ``f_n``:

* ``"attention"`` (eqs. 5-8, default): ``P^l + sum_n W_n * f_n``, ``W_n = Sigmoid(FC(GAP(ReLU(f_n + Conv(P^l)))))``,
  a per-channel weight ``(B, D, 1)``; FC and Conv are 1x1 convs (the paper's "1D conv to refine P^l" has kernel 3
  per Supp. C; the code uses 1). GAP runs over the whole padded length, unmasked, as in the code;
* ``"addition"``: ``P^l + sum_n f_n`` (parameter-free);
* ``"concatenation"``: ``Conv1x1([P^l, f_1, ...])`` back to ``D`` channels (a missing neighbour at a pyramid end
  contributes zeros). The paper names the two alternatives (after TSCODE) without giving their layers; these are
  the minimal forms.

A level with no neighbour to fuse (the top level for the coarser side, the bottom level for the finer side) keeps
``P^l`` unchanged, as the code does for DCM's top and DRM's bottom level (the paper applies CLTDR to intermediate
levels only; the code applies DCM to levels 0..L-2 and DRM to 1..L-1, and so does this module).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

NEIGHBOURS = ("upper", "lower")  # upper = P^{l+1} (coarser), lower = P^{l-1} (finer)


class UpsampleFromCoarser(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 3, stride=2, padding=1, output_padding=1)

    def forward(self, coarser: torch.Tensor, length: int) -> torch.Tensor:
        return self.conv(coarser)[..., :length]


class DownsampleFromFiner(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, stride=2, padding=1)

    def forward(self, finer: torch.Tensor, length: int) -> torch.Tensor:
        out = self.conv(finer)
        if out.shape[-1] != length:
            raise ValueError(f"level lengths {finer.shape[-1]} -> {length} are not a factor-2 pyramid")
        return out


class ChannelAttention(nn.Module):
    """``Sigmoid(FC(GAP(ReLU(f + Conv1x1(p)))))`` -> ``(B, D, 1)`` (eqs. 5 and 7)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_l = nn.Conv1d(dim, dim, 1)
        self.fc = nn.Conv1d(dim, dim, 1)

    def forward(self, p: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        pooled = F.relu(f + self.conv_l(p)).mean(dim=-1, keepdim=True)
        return torch.sigmoid(self.fc(pooled))


class AttentionFusion(nn.Module):
    def __init__(self, dim: int, num_neighbours: int):
        super().__init__()
        self.attention = nn.ModuleList(ChannelAttention(dim) for _ in range(num_neighbours))

    def forward(self, p: torch.Tensor, neighbours: Sequence[torch.Tensor | None]) -> torch.Tensor:
        out = p
        for attention, f in zip(self.attention, neighbours, strict=True):
            if f is not None:
                out = out + attention(p, f) * f
        return out


class AdditionFusion(nn.Module):
    def __init__(self, dim: int, num_neighbours: int):
        super().__init__()

    def forward(self, p: torch.Tensor, neighbours: Sequence[torch.Tensor | None]) -> torch.Tensor:
        return p + sum(f for f in neighbours if f is not None)


class ConcatenationFusion(nn.Module):
    def __init__(self, dim: int, num_neighbours: int):
        super().__init__()
        self.proj = nn.Conv1d((1 + num_neighbours) * dim, dim, 1)

    def forward(self, p: torch.Tensor, neighbours: Sequence[torch.Tensor | None]) -> torch.Tensor:
        parts = [p] + [torch.zeros_like(p) if f is None else f for f in neighbours]
        return self.proj(torch.cat(parts, dim=1))


FUSIONS = {"attention": AttentionFusion, "addition": AdditionFusion, "concatenation": ConcatenationFusion}


class CrossLayerTaskFeatures(nn.Module):
    """Task features ``F^l`` from ``P^l`` and the neighbouring levels named in ``layers`` (a subset of
    ``("upper", "lower")``; empty = ``P^l`` itself), fused by ``fusion``. :class:`~.dcm.DCM` and :class:`~.drm.DRM`
    are its two paper configurations."""

    def __init__(self, dim: int, layers: Sequence[str], fusion: str = "attention"):
        super().__init__()
        layers = tuple(layers)
        if any(name not in NEIGHBOURS for name in layers) or len(set(layers)) != len(layers):
            raise ValueError(f"layers must be a subset of {NEIGHBOURS}, got {layers}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {tuple(FUSIONS)}, got {fusion!r}")
        self.layers = tuple(name for name in NEIGHBOURS if name in layers)
        self.upsample = UpsampleFromCoarser(dim) if "upper" in self.layers else None
        self.downsample = DownsampleFromFiner(dim) if "lower" in self.layers else None
        self.fusion = FUSIONS[fusion](dim, len(self.layers)) if self.layers else None

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.fusion is None:
            return list(feats)
        out = []
        for level, p in enumerate(feats):
            neighbours: list[torch.Tensor | None] = []
            if self.upsample is not None:
                has_upper = level + 1 < len(feats)
                neighbours.append(self.upsample(feats[level + 1], p.shape[-1]) if has_upper else None)
            if self.downsample is not None:
                neighbours.append(self.downsample(feats[level - 1], p.shape[-1]) if level > 0 else None)
            out.append(p if all(f is None for f in neighbours) else self.fusion(p, neighbours))
        return out


class CrossLayerFeatureFusion(nn.Module):
    """CLFF, eq. 9: ``F_c^l = Conv(P^{l-1}) + P^l + ConvTranspose(P^{l+1})``, the end levels with the two available
    terms (official ``CrossLevel``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.downsample = DownsampleFromFiner(dim)
        self.upsample = UpsampleFromCoarser(dim)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for level, p in enumerate(feats):
            fused = p
            if level > 0:
                fused = fused + self.downsample(feats[level - 1], p.shape[-1])
            if level + 1 < len(feats):
                fused = fused + self.upsample(feats[level + 1], p.shape[-1])
            out.append(fused)
        return out
