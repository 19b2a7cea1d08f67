"""A plain multilayer perceptron (Linear + ReLU stack), the "MLP" of D-Net sec. 3.4 and table 1."""

from __future__ import annotations

import itertools

import torch
from torch import nn


class MLP(nn.Module):
    """``len(widths) - 1`` Linear layers, each followed by ReLU (the last one too: the heads put a
    fully-connected layer on top, D-Net sec. 3.4 "an MLP followed by a fully-connected layer")."""

    def __init__(self, widths: list[int], dropout: float = 0.0):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"MLP needs at least an input and an output width, got {widths}")
        layers: list[nn.Module] = []
        for d_in, d_out in itertools.pairwise(widths):
            layers += [nn.Linear(d_in, d_out), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
