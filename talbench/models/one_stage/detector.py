"""The composition every one-stage detector here follows: ``encoder -> neck -> decoder``.

``encoder`` is a :class:`~talbench.models.one_stage.encoder.PyramidEncoder` (``(x, mask) -> (feats, masks)``),
``neck`` maps the list of level features to normalised ones, ``decoder`` maps ``(feats, masks)`` to the method's
raw per-level outputs (a dataclass). Swapping encoders and decoders (CLTDR-GMG tables 12 and 13) is building the
same class from other parts.
"""

from __future__ import annotations

import torch
from torch import nn

from talbench.models.one_stage.encoder import PyramidEncoder


class OneStageDetector(nn.Module):
    def __init__(self, encoder: PyramidEncoder, neck: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.neck = neck
        self.decoder = decoder

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride of each pyramid level in input steps (1, 2, 4, ...)."""
        return self.encoder.strides

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        """``x`` ``(B, C_in, T)`` features, ``mask`` bool ``(B, 1, T)`` (True = valid) -> the decoder's outputs."""
        feats, masks = self.encoder(x, mask)
        return self.decoder(self.neck(feats), masks)
