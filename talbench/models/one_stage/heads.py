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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.masked_conv import MaskedConv1d
from talbench.models.blocks.scale import Scale


class ConvTrunk(nn.Module):
    """``num_convs`` x [MaskedConv1d -> LayerNorm (or identity) -> ReLU]."""

    def __init__(self, in_dim: int, feat_dim: int, num_convs: int, kernel_size: int, with_ln: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv1d(in_dim if i == 0 else feat_dim, feat_dim, kernel_size, bias=not with_ln)
            for i in range(num_convs)
        )
        self.norms = nn.ModuleList(
            ChannelLayerNorm(feat_dim) if with_ln else nn.Identity() for _ in range(num_convs)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x, _ = conv(x, mask)
            x = torch.relu(norm(x))
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
        self.trunk = ConvTrunk(in_dim, feat_dim, num_layers - 1, kernel_size, with_ln)
        self.classifier = MaskedConv1d(feat_dim, num_classes, kernel_size)
        nn.init.constant_(self.classifier.conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        logits = []
        for x, mask in zip(feats, masks, strict=True):
            x = x.detach() if self.detach_input else x
            logits.append(self.classifier(self.trunk(x, mask), mask)[0])
        return logits


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
        self.trunk = ConvTrunk(in_dim, feat_dim, num_layers - 1, kernel_size, with_ln)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        self.regressor = MaskedConv1d(feat_dim, num_outputs, kernel_size)

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.scales):
            raise ValueError(f"regression head built for {len(self.scales)} levels, got {len(feats)}")
        out = []
        for x, mask, scale in zip(feats, masks, self.scales, strict=True):
            out.append(torch.relu(scale(self.regressor(self.trunk(x, mask), mask)[0])))
        return out
