"""A-Net, the context-based aggregation network (Zhu et al., ICCV 2021 "ContextLoc", as restated by
D-Net, AAAI 2022, sec. 3.3, eqs. 6-11).

A proposal's variable-length snippet features ``F_i`` (D x K_i) become one vector ``f_i`` (D):

* eq. 6  ``f_i^O = max_t F_i(t)``                                   (original proposal feature)
* eq. 7  ``a_i(t) = cos(f_i^O, F_i(t))``                            (query-and-retrieval attention)
* eq. 8  ``f_{i,a} = W_a^O f_i^O + W_a F_i a_i^T``                  (local context, D/2)
* eq. 9  ``f_g = max_t x_t`` over the whole video                   (global context)
* eq. 10 ``f_{i,g} = W_g f_g + AvgPool(W_l F_i)``                   (global context adapted to p_i, D/2)
* eq. 11 ``f_i = [f_{i,a}, f_{i,g}]``

Where the paper is silent we follow the ContextLoc reference code (``LGNet``): the attention weights are
passed through ReLU and normalised to sum to one over the proposal's snippets, so that the retrieved
context does not scale with the proposal length K_i (``anet.attention: relu_normalized``; ``raw`` uses
the cosines as they are), and each pair (W_a^O, W_a), (W_g, W_l) shares one bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talbench.models.blocks.masked_pooling import masked_max, masked_mean


class ContextAggregation(nn.Module):
    """A-Net: ``(N, K, D)`` snippet features + mask + ``(N, D)`` video max-pooled features -> ``(N, D)``."""

    def __init__(self, feature_dim: int, attention: str = "relu_normalized"):
        super().__init__()
        if attention not in ("relu_normalized", "raw"):
            raise ValueError(f"anet.attention must be 'relu_normalized' or 'raw', got {attention!r}")
        self.attention = attention
        if feature_dim % 2:
            raise ValueError(f"A-Net needs an even feature dimension (D/2 outputs per context), got {feature_dim}")
        half = feature_dim // 2
        self.proj_original = nn.Linear(feature_dim, half)  # W_a^O (eq. 8), with the shared bias
        self.proj_attended = nn.Linear(feature_dim, half, bias=False)  # W_a (eq. 8)
        self.proj_global = nn.Linear(feature_dim, half)  # W_g (eq. 10), with the shared bias
        self.proj_local = nn.Linear(feature_dim, half, bias=False)  # W_l (eq. 10)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, video_global: torch.Tensor) -> torch.Tensor:
        original = masked_max(features, mask)  # eq. 6
        attention = F.cosine_similarity(original.unsqueeze(1), features, dim=-1, eps=1e-6)  # eq. 7, (N, K)
        attention = attention * mask.to(attention.dtype)
        if self.attention == "relu_normalized":  # ContextLoc code; "raw" is eq. 8 to the letter
            attention = F.relu(attention)
            attention = attention / attention.sum(dim=1, keepdim=True).clamp_min(1e-6)
        attended = torch.einsum("nk,nkd->nd", attention, features)
        local_context = self.proj_original(original) + self.proj_attended(attended)  # eq. 8
        adapted_global = self.proj_global(video_global) + masked_mean(self.proj_local(features), mask)  # eq. 10
        return torch.cat([local_context, adapted_global], dim=-1)  # eq. 11
