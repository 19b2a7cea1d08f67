"""Decoupled Classification Module (DCM) of CLTDR (eqs. 5-6, fig. 4; official ``DeCLS`` in ``TSCODE.py``):
classification features that add to ``P^l`` the attention-selected, transposed-conv-upsampled coarser level
``P^{l+1}`` (semantically stronger): ``F_cls^l = P^l + W_{l+1} * ConvT(P^{l+1})``; the top level keeps ``P^{L-1}``.

``layers`` picks the neighbours that feed classification (table 9: ``()``, ``("upper",)`` = the paper's choice,
``("lower",)``, ``("upper", "lower")``) and ``fusion`` the strategy (table 11); see :mod:`.clff`.
With the defaults it holds ``ConvT 3 x D x D + D``, two 1x1 convs ``D x D + D``: 1,312,256 parameters at D = 512.
"""

from __future__ import annotations

from collections.abc import Sequence

from talbench.models.cltdr_gmg.clff import CrossLayerTaskFeatures


class DCM(CrossLayerTaskFeatures):
    def __init__(self, dim: int = 512, layers: Sequence[str] = ("upper",), fusion: str = "attention"):
        super().__init__(dim, layers, fusion)
