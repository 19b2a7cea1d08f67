"""Necks between the pyramid encoder and the heads (``fpn_type: identity``): no cross-level mixing, one
normalisation per level; the masks pass through unchanged.

* :class:`LayerNormNeck`: one channel LayerNorm per level (``FPNIdentity`` with ``fpn_with_ln``) — ActionFormer,
  TriDet and CLTDR-GMG (``libs/modeling/necks.py``).
* :class:`GroupNormNeck`: TemporalMaxer's ``FPNIdentity`` (its ``libs/modeling/necks.py``), a GroupNorm with 4
  groups and no affine parameters; the official loop reuses one such module for every level, which is the same
  as one per level since it has no parameters. Its statistics run over the padded length, as in the code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from talbench.models.blocks.channel_norm import ChannelLayerNorm


class LayerNormNeck(nn.Module):
    def __init__(self, dim: int, num_levels: int):
        super().__init__()
        self.norms = nn.ModuleList(ChannelLayerNorm(dim) for _ in range(num_levels))

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.norms):
            raise ValueError(f"neck built for {len(self.norms)} levels, got {len(feats)}")
        return [norm(f) for norm, f in zip(self.norms, feats, strict=True)]


class GroupNormNeck(nn.Module):
    def __init__(self, dim: int, num_groups: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, dim, affine=False)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [self.norm(f) for f in feats]
