"""Decoupled Regression Module (DRM) of CLTDR (eqs. 7-8, fig. 4; official ``DeReg`` in ``TSCODE.py``):
regression features that add to ``P^l`` the attention-selected, strided-conv-downsampled finer level ``P^{l-1}``
(more boundary detail): ``F_reg^l = P^l + W_{l-1} * Conv_s2(P^{l-1})``; the bottom level keeps ``P^0``.
They feed the Trident centre-offset head; the Trident boundary heads read the (detached) ``P^l`` as in TriDet,
not ``F_reg`` (official ``start_head`` / ``end_head`` on ``fpn_feats``).

``layers`` picks the neighbours that feed regression (table 9: ``()``, ``("lower",)`` = the paper's choice,
``("upper",)``, ``("upper", "lower")``) and ``fusion`` the strategy (table 11); see :mod:`.clff`.
With the defaults it holds 1,312,256 parameters at D = 512 (dense 3-tap strided conv + two 1x1 convs).
"""

from __future__ import annotations

from collections.abc import Sequence

from talbench.models.cltdr_gmg.clff import CrossLayerTaskFeatures


class DRM(CrossLayerTaskFeatures):
    def __init__(self, dim: int = 512, layers: Sequence[str] = ("lower",), fusion: str = "attention"):
        super().__init__(dim, layers, fusion)
