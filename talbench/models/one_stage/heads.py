"""Convolutional heads shared by the one-stage detectors (ActionFormer ``PtTransformerClsHead`` /
``PtTransformerRegHead``, TriDet and CLTDR-GMG ``ClsHead`` / ``RegHead`` in ``libs/modeling/meta_archs.py``).

Each head runs the same weights on every pyramid level: ``num_layers - 1`` x [MaskedConv1D (kernel ``kernel_size``,
no bias when followed by LayerNorm) -> channel LayerNorm -> ReLU], then a final MaskedConv1D.

* :class:`ClassificationHead`: final conv to ``num_classes`` logits, bias initialised to
  ``-log((1 - prior) / prior)`` (prior 0.01, the focal-loss prior). ``detach_input`` stops the gradient into the
  features (TriDet's boundary heads, ``detach_feat=True``).
* :class:`RegressionHead`: final conv to ``num_outputs`` channels, then ``ReLU(Scale_l(.))`` with one learnable
  scalar per level (init 1). ActionFormer's head has 2 outputs (distances to start and end in units of the level
  stride); the Trident offset head (:mod:`talbench.models.one_stage.trident`) has ``2 (bins + 1)``.

Outputs are per-level lists of ``(B, channels, T_l)``; positions outside the mask are exactly 0 (the final conv
output, bias included, is multiplied by the mask).

The levels are run together (:func:`pack_levels`): concatenated along time with ``kernel_size // 2`` zero columns
between consecutive levels, zeroed again after every layer, so that each conv reads at a level's ends exactly the
zeros its own padding would give, and the head's convolutions run once per layer instead of once per level and
layer (the same outputs, about a third of the time on CPU at small sizes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.masked_conv import MaskedConv1d
from talbench.models.blocks.scale import Scale


@dataclass(frozen=True)
class PackedLevels:
    """Pyramid levels side by side: ``x`` ``(B, C, S)``, the valid ``mask`` ``(B, 1, S)``, ``present`` ``(1, 1, S)``
    (False on the ``gap`` columns between levels), the level ``lengths``."""

    x: torch.Tensor
    mask: torch.Tensor
    present: torch.Tensor
    lengths: tuple[int, ...]
    gap: int

    def unpack(self, packed: torch.Tensor) -> list[torch.Tensor]:
        """``(B, K, S)`` -> per-level ``(B, K, T_l)`` (views)."""
        out, start = [], 0
        for length in self.lengths:
            out.append(packed[..., start:start + length])
            start += length + self.gap
        return out

    def per_level(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        """One scalar per level -> ``(1, 1, S)`` holding each level's value on its columns (0 on the gaps)."""
        parts = []
        for level, (value, length) in enumerate(zip(values, self.lengths, strict=True)):
            if level:
                parts.append(value.new_zeros(self.gap))
            parts.append(value.expand(length))
        return torch.cat(parts)[None, None]


def pack_levels(feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], gap: int) -> PackedLevels:
    """Concatenate the levels along time with ``gap`` zero columns between them (see the module docstring)."""
    batch, channels = feats[0].shape[:2]
    xs, ms, ps = [], [], []
    for level, (f, m) in enumerate(zip(feats, masks, strict=True)):
        if level and gap:
            xs.append(f.new_zeros(batch, channels, gap))
            ms.append(m.new_zeros(batch, 1, gap))
            ps.append(torch.zeros(gap, dtype=torch.bool, device=f.device))
        xs.append(f)
        ms.append(m)
        ps.append(torch.ones(f.shape[-1], dtype=torch.bool, device=f.device))
    return PackedLevels(torch.cat(xs, dim=-1), torch.cat(ms, dim=-1), torch.cat(ps)[None, None],
                        tuple(f.shape[-1] for f in feats), gap)


class ConvTrunk(nn.Module):
    """``num_convs`` x [MaskedConv1d -> LayerNorm (or identity) -> ReLU]; with ``present`` (packed levels) the
    gap columns are zeroed after each layer."""

    def __init__(self, in_dim: int, feat_dim: int, num_convs: int, kernel_size: int, with_ln: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv1d(in_dim if i == 0 else feat_dim, feat_dim, kernel_size, bias=not with_ln)
            for i in range(num_convs)
        )
        self.norms = nn.ModuleList(
            ChannelLayerNorm(feat_dim) if with_ln else nn.Identity() for _ in range(num_convs)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x, _ = conv(x, mask)
            x = torch.relu(norm(x))
            if present is not None:
                x = x * present.to(x.dtype)
        return x


class ClassificationHead(nn.Module):
    def __init__(
        self,
        in_dim: int = 512,
        feat_dim: int = 512,
        num_classes: int = 20,
        num_layers: int = 3,
        kernel_size: int = 3,
        prior_prob: float = 0.01,
        with_ln: bool = True,
        detach_input: bool = False,
    ):
        super().__init__()
        self.detach_input = detach_input
        self.gap = kernel_size // 2
        self.trunk = ConvTrunk(in_dim, feat_dim, num_layers - 1, kernel_size, with_ln)
        self.classifier = MaskedConv1d(feat_dim, num_classes, kernel_size)
        nn.init.constant_(self.classifier.conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        feats = [x.detach() for x in feats] if self.detach_input else feats
        packed = pack_levels(feats, masks, self.gap)
        return packed.unpack(self.classifier(self.trunk(packed.x, packed.mask, packed.present), packed.mask)[0])


class RegressionHead(nn.Module):
    def __init__(
        self,
        in_dim: int = 512,
        feat_dim: int = 512,
        num_levels: int = 6,
        num_outputs: int = 2,
        num_layers: int = 3,
        kernel_size: int = 3,
        with_ln: bool = True,
    ):
        super().__init__()
        self.gap = kernel_size // 2
        self.trunk = ConvTrunk(in_dim, feat_dim, num_layers - 1, kernel_size, with_ln)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        self.regressor = MaskedConv1d(feat_dim, num_outputs, kernel_size)

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.scales):
            raise ValueError(f"regression head built for {len(self.scales)} levels, got {len(feats)}")
        packed = pack_levels(feats, masks, self.gap)
        out = self.regressor(self.trunk(packed.x, packed.mask, packed.present), packed.mask)[0]
        return packed.unpack(torch.relu(out * packed.per_level([s.scale for s in self.scales])))
