"""A learnable scalar multiplier (ActionFormer's ``Scale``): one per pyramid level on the regression output,
so that each level can rescale its predicted distances (initialised to 1)."""

from __future__ import annotations

import torch
from torch import nn


class Scale(nn.Module):
    def __init__(self, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale
