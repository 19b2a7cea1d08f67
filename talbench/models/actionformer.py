"""ActionFormer (Zhang, Wu and Li, ECCV 2022), fig. 2 as code::

    X (B, C_in, T) --> projection: 2 x [conv k3 -> LN -> ReLU]                         (sec. 3.2)
                   --> stem: 2 x transformer block (local MHCA, window 19), stride 1   (level 0)
                   --> branch: 5 x transformer block, stride 2                         (levels 1..5)
                   --> neck: LayerNorm per level
                   --> decoder, shared over levels:
                         classification head: 3 convs -> C logits                      (p(a_t))
                         regression head: 3 convs -> ReLU(Scale_l(.)) -> (d_s, d_e)    (distances / stride)

Defaults = the official THUMOS14 I3D config (``configs/thumos_i3d.yaml`` + ``libs/core/config.py``): input 2048,
D 512, 4 heads, window 19 on every level, MLP 4D, drop-path 0.1 (on all blocks), head dim 512, 3 head layers,
kernel 3, prior 0.01, 20 classes — 29,251,612 parameters (encoder 26,061,824).

The same decoder is TemporalMaxer's (its heads are ActionFormer's) and table 12's "GMG + ActionFormer decoder".
Training (runner side): sigmoid focal loss on the logits + DIoU on the offsets of positive points, both divided by
the EMA positive count (``talbench.models.one_stage.losses``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from talbench.models.one_stage.detector import OneStageDetector
from talbench.models.one_stage.encoder import transformer_encoder
from talbench.models.one_stage.heads import ClassificationHead, RegressionHead
from talbench.models.one_stage.neck import LayerNormNeck


@dataclass
class ActionFormerOutputs:
    """Per-level lists: ``cls_logits`` ``(B, C, T_l)``, ``offsets`` ``(B, 2, T_l)`` (distances to start and end in
    units of the level stride, >= 0), ``masks`` bool ``(B, T_l)``."""

    cls_logits: list[torch.Tensor]
    offsets: list[torch.Tensor]
    masks: list[torch.Tensor]


class ActionFormerDecoder(nn.Module):
    def __init__(
        self,
        dim: int = 512,
        head_dim: int = 512,
        num_classes: int = 20,
        num_levels: int = 6,
        num_layers: int = 3,
        kernel_size: int = 3,
        prior_prob: float = 0.01,
        with_ln: bool = True,
    ):
        super().__init__()
        self.cls_head = ClassificationHead(
            dim, head_dim, num_classes, num_layers, kernel_size, prior_prob, with_ln
        )
        self.reg_head = RegressionHead(dim, head_dim, num_levels, 2, num_layers, kernel_size, with_ln)

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> ActionFormerOutputs:
        return ActionFormerOutputs(
            cls_logits=self.cls_head(feats, masks),
            offsets=self.reg_head(feats, masks),
            masks=[m[:, 0] for m in masks],
        )


def build_actionformer(
    in_dim: int = 2048,
    num_classes: int = 20,
    dim: int = 512,
    num_levels: int = 6,
    num_heads: int = 4,
    window_size: int | None | Sequence[int | None] = 19,
    mlp_dim: int | None = None,
    drop_path: float = 0.1,
    head_dim: int = 512,
    head_num_layers: int = 3,
    head_kernel_size: int = 3,
    prior_prob: float = 0.01,
    use_abs_pe: bool = False,
    max_seq_len: int = 2304,
) -> OneStageDetector:
    encoder = transformer_encoder(
        in_dim,
        dim,
        num_levels,
        num_heads=num_heads,
        window_size=window_size,
        mlp_dim=mlp_dim,
        drop_path=drop_path,
        use_abs_pe=use_abs_pe,
        max_seq_len=max_seq_len,
    )
    decoder = ActionFormerDecoder(
        dim, head_dim, num_classes, num_levels, head_num_layers, head_kernel_size, prior_prob
    )
    return OneStageDetector(encoder, LayerNormNeck(dim, num_levels), decoder)
