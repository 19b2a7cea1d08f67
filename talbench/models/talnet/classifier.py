"""TAL-Net's action classifier (sec. 4.2, fig. 5): SoI pooling of each proposal on the feature map, a 1x1
reduction to 256 channels ("Implementation Details"), one FC layer, then a final FC layer that classifies
(C + 1 classes, background 0) and regresses the boundaries.

With context (table 3) "the extent of our SoI pooling covers not only the proposal segment, but also the two
segments of size s/2 immediately before and after the proposal" (:func:`context_extent`).

Where the paper is silent, as Faster R-CNN and the TF Object Detection API do: SoI output size 7 (fig. 5;
the API's 14-crop then 2x2 max-pool is 7 too) with Fast R-CNN RoI max pooling
(:mod:`talbench.models.blocks.soi_pooling`); ReLU after the reduction and the hidden FC layer; class-specific
boundary regression, ``C x 2`` offsets (Faster R-CNN's second stage); Glorot-uniform weights (the API's
second-stage FC initialiser, variance scaling factor 1, uniform, fan average), biases 0; no dropout by default
(the API's ``use_dropout: false``), ``dropout`` after the hidden FC layer otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talbench.models.blocks.soi_pooling import SoIPool1d


def context_extent(proposals: torch.Tensor) -> torch.Tensor:
    """Sec. 4.2, fig. 5 (bottom): the proposal and the two segments of half its length before and after."""
    half = 0.5 * (proposals[:, 1] - proposals[:, 0])
    return torch.stack([proposals[:, 0] - half, proposals[:, 1] + half], dim=1)


class ActionClassifier(nn.Module):
    """``(D, T)`` feature map + proposals ``(N, 2)`` (grid coordinates) -> class logits ``(N, C + 1)`` and
    class-specific offsets ``(N, C, 2)``."""

    def __init__(self, in_dim: int, num_classes: int, context: bool = True, bins: int = 7, width: int = 256,
                 dropout: float = 0.0, chunk: int = 256):
        super().__init__()
        self.context = bool(context)
        self.num_classes = int(num_classes)
        self.pool = SoIPool1d(bins, chunk)
        self.reduce = nn.Conv1d(in_dim, width, 1)
        self.fc = nn.Linear(width * bins, width)
        self.dropout = nn.Dropout(dropout)
        self.cls = nn.Linear(width, num_classes + 1)
        self.reg = nn.Linear(width, 2 * num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor, proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        extent = context_extent(proposals) if self.context else proposals
        pooled = self.pool(features, extent)  # (N, D, bins)
        hidden = F.relu(self.reduce(pooled)).flatten(1)
        hidden = self.dropout(F.relu(self.fc(hidden)))
        return self.cls(hidden), self.reg(hidden).view(-1, self.num_classes, 2)
