"""CLTDR-GMG (Li et al., AAAI 2025), fig. 2 as code::

    X (B, C_in, T) --> projection: 2 x [conv k3 -> LN -> ReLU]
                   --> stem: 2 x GMG block, stride 1                                   (P^0)
                   --> branch: (L - 1) x GMG block, max-pool stride 2                   (P^1 .. P^{L-1})
                   --> neck: LayerNorm per level
                   --> CLTDR decoder, every module shared over levels:
                         DCM:  F_cls^l = P^l + W * ConvT(P^{l+1})           -> cls head -> coarse logits a^l
                         DRM:  F_reg^l = P^l + W * Conv_s2(P^{l-1})         -> Trident centre-offset head
                         Trident start / end boundary heads on detached P^l
                         CLFF: F_c^l = Conv_s2(P^{l-1}) + P^l + ConvT(P^{l+1}) -> RefineHead -> R_co, R_so, R_eo
                         refined logits a^l x R_co (eq. 10, code form); refined bounds (eqs. 11-12)

Defaults = the official THUMOS14 I3D config (LiQiang0307/CLTDR-GMG ``configs/thumos_i3d_focalloss.yaml`` and
``libs/core/config.py``): input 2048, D 512, L 6, GMG local kernel 1, MLP 768, drop-path 0.1 (branch blocks), FFT
init std 0.02, ``init_conv_vars`` 0, 16 bins, head dim 512, 3 head layers, head kernel 3, boundary kernel 3,
RefineHead offset kernel 7, prior 0.01, 20 classes: 21,908,384 parameters, i.e. the official 21,908,390 less the
6 unused ``Scale`` parameters of its RefineHead (:mod:`.refine_head`). The paper's Table 15 says 17.6M, which no
released config gives.

Ablation switches (passed to the encoder or decoder): ``branches`` / ``gate`` / ``global_extractor`` (tables 6-8,
:mod:`.gmg`), ``cls_layers`` / ``reg_layers`` (table 9) and ``fusion`` (table 11, :mod:`.clff`), ``refine``
(table 10) and ``refine_form`` (eq. 10 code vs paper, :mod:`.refine_head`), ``num_levels`` (table 14).

Training (runner side, facts sec. 4): ``0.7 x refined + 0.3 x coarse``; refined = varifocal on ``cls_logits``
weighted by ``IoU^0.2`` on positives + DIoU on :meth:`CLTDROutputs.refined_distances`; coarse = sigmoid focal on
``coarse_cls_logits`` + DIoU on :meth:`CLTDROutputs.coarse_distances`; each normalised by the EMA positive count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from talbench.models.cltdr_gmg.clff import CrossLayerFeatureFusion
from talbench.models.cltdr_gmg.dcm import DCM
from talbench.models.cltdr_gmg.drm import DRM
from talbench.models.cltdr_gmg.gmg import BRANCHES
from talbench.models.cltdr_gmg.refine_head import (
    REFINE_FORMS,
    REFINE_TARGETS,
    RefineHead,
    refine_class_logits,
    refine_distances,
)
from talbench.models.one_stage.detector import OneStageDetector
from talbench.models.one_stage.encoder import gmg_encoder
from talbench.models.one_stage.heads import ClassificationHead
from talbench.models.one_stage.neck import LayerNormNeck
from talbench.models.one_stage.trident import TridentOffsetHead, trident_distances
from talbench.models.tridet import trident_boundary_head


@dataclass
class CLTDROutputs:
    """Per-level lists. ``cls_logits`` ``(B, C, T_l)``: the final (refined, when classification is refined)
    logits, whose sigmoid is the score; ``coarse_cls_logits``: the DCM classification head's; ``start_logits`` /
    ``end_logits`` ``(B, C, T_l)``: Trident boundary heads; ``offsets`` ``(B, 2, bins + 1, T_l)``: Trident
    centre-offset head on the DRM features; ``refine_start`` / ``refine_end`` ``(B, C, T_l)`` (``R_so``, ``R_eo``, in
    input steps) or ``None`` when regression is not refined; ``masks`` bool ``(B, T_l)``."""

    cls_logits: list[torch.Tensor]
    coarse_cls_logits: list[torch.Tensor]
    start_logits: list[torch.Tensor]
    end_logits: list[torch.Tensor]
    offsets: list[torch.Tensor]
    refine_start: list[torch.Tensor] | None
    refine_end: list[torch.Tensor] | None
    masks: list[torch.Tensor]

    def coarse_distances(self) -> list[torch.Tensor]:
        """Trident distances per level, ``(B, T_l, C, 2)`` in units of the level stride (no refinement)."""
        return [
            trident_distances(s, e, o)
            for s, e, o in zip(self.start_logits, self.end_logits, self.offsets, strict=True)
        ]

    def refined_distances(
        self, strides: Sequence[int], coarse: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """Distances after eqs. 11-12 (the coarse ones when regression is not refined), ``(B, T_l, C, 2)``;
        ``coarse`` = :meth:`coarse_distances` when already computed."""
        coarse = self.coarse_distances() if coarse is None else coarse
        if self.refine_start is None:
            return coarse
        return [
            refine_distances(d, rs, re, s)
            for d, rs, re, s in zip(coarse, self.refine_start, self.refine_end, strides, strict=True)
        ]


class CLTDRDecoder(nn.Module):
    def __init__(
        self,
        dim: int = 512,
        head_dim: int = 512,
        num_classes: int = 20,
        num_levels: int = 6,
        num_bins: int = 16,
        num_layers: int = 3,
        kernel_size: int = 3,
        boundary_kernel_size: int = 3,
        refine_offset_kernel_size: int = 7,
        prior_prob: float = 0.01,
        with_ln: bool = True,
        cls_layers: Sequence[str] = ("upper",),
        reg_layers: Sequence[str] = ("lower",),
        fusion: str = "attention",
        refine: Sequence[str] = REFINE_TARGETS,
        refine_form: str = "code",
    ):
        super().__init__()
        if refine_form not in REFINE_FORMS:
            raise ValueError(f"refine_form must be one of {REFINE_FORMS}, got {refine_form!r}")
        self.refine_form = refine_form
        self.dcm = DCM(dim, cls_layers, fusion)
        self.drm = DRM(dim, reg_layers, fusion)
        self.cls_head = ClassificationHead(
            dim, head_dim, num_classes, num_layers, kernel_size, prior_prob, with_ln
        )
        self.start_head = trident_boundary_head(
            dim, head_dim, num_classes, num_layers, boundary_kernel_size, prior_prob, with_ln
        )
        self.end_head = trident_boundary_head(
            dim, head_dim, num_classes, num_layers, boundary_kernel_size, prior_prob, with_ln
        )
        self.reg_head = TridentOffsetHead(
            dim, head_dim, num_levels, num_bins, num_layers, kernel_size, with_ln
        )
        if refine:
            self.clff = CrossLayerFeatureFusion(dim)
            self.refine_head = RefineHead(
                dim,
                head_dim,
                num_classes,
                num_layers,
                kernel_size,
                refine_offset_kernel_size,
                with_ln,
                refine,
            )
        else:
            self.clff = None
            self.refine_head = None

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> CLTDROutputs:
        coarse = self.cls_head(self.dcm(feats), masks)
        cls_logits = coarse
        refine_start = refine_end = None
        if self.refine_head is not None:
            refined = self.refine_head(self.clff(feats), masks)
            refine_start, refine_end = refined.start_offsets, refined.end_offsets
            if refined.class_logits is not None:
                cls_logits = [
                    refine_class_logits(a, r, self.refine_form)
                    for a, r in zip(coarse, refined.class_logits, strict=True)
                ]
        return CLTDROutputs(
            cls_logits=cls_logits,
            coarse_cls_logits=coarse,
            start_logits=self.start_head(feats, masks),
            end_logits=self.end_head(feats, masks),
            offsets=self.reg_head(self.drm(feats), masks),
            refine_start=refine_start,
            refine_end=refine_end,
            masks=[m[:, 0] for m in masks],
        )


def build_cltdr_gmg(
    in_dim: int = 2048,
    num_classes: int = 20,
    dim: int = 512,
    num_levels: int = 6,
    local_kernel_size: int | Sequence[int] = 1,
    mlp_dim: int = 768,
    drop_path: float = 0.1,
    init_conv_vars: float = 0.0,
    branches: Sequence[str] = BRANCHES,
    gate: str = "code",
    global_extractor: str = "fft",
    attention_heads: int = 4,
    num_bins: int = 16,
    head_dim: int = 512,
    head_num_layers: int = 3,
    head_kernel_size: int = 3,
    boundary_kernel_size: int = 3,
    refine_offset_kernel_size: int = 7,
    prior_prob: float = 0.01,
    cls_layers: Sequence[str] = ("upper",),
    reg_layers: Sequence[str] = ("lower",),
    fusion: str = "attention",
    refine: Sequence[str] = REFINE_TARGETS,
    refine_form: str = "code",
    use_abs_pe: bool = False,
    max_seq_len: int = 2304,
) -> OneStageDetector:
    encoder = gmg_encoder(
        in_dim,
        dim,
        num_levels,
        local_kernel_size=local_kernel_size,
        mlp_dim=mlp_dim,
        drop_path=drop_path,
        init_conv_vars=init_conv_vars,
        branches=branches,
        gate=gate,
        global_extractor=global_extractor,
        attention_heads=attention_heads,
        use_abs_pe=use_abs_pe,
        max_seq_len=max_seq_len,
    )
    decoder = CLTDRDecoder(
        dim,
        head_dim,
        num_classes,
        num_levels,
        num_bins,
        head_num_layers,
        head_kernel_size,
        boundary_kernel_size,
        refine_offset_kernel_size,
        prior_prob,
        cls_layers=cls_layers,
        reg_layers=reg_layers,
        fusion=fusion,
        refine=refine,
        refine_form=refine_form,
    )
    return OneStageDetector(encoder, LayerNormNeck(dim, num_levels), decoder)
