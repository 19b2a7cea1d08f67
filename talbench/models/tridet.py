"""TriDet (Shi et al., CVPR 2023), fig. 2 as code::

    X (B, C_in, T) --> projection: 2 x [conv k3 -> LN -> ReLU]
                   --> stem: 2 x SGP block (window 1), stride 1                          (level 0)
                   --> branch: 5 x SGP block, max-pool stride 2                          (levels 1..5)
                   --> neck: LayerNorm per level
                   --> Trident decoder, shared over levels:
                         classification head on P^l: 3 convs -> C logits
                         start / end boundary heads on detached P^l: 3 convs -> C logits each
                         centre-offset head on P^l: 3 convs -> ReLU(Scale_l(.)) -> 2 x (B + 1) bins
                   decoding (sec. 3.3): expected start / end distances from the boundary windows + offsets

Defaults = the official THUMOS14 I3D config (``configs/thumos_i3d.yaml``): input 2048, D 512, SGP ``k`` 5, window 1,
MLP 768, drop-path 0.1 (branch only), 16 bins, head dim 512, 3 head layers, kernel 3 (boundary heads 3), prior
0.01, 20 classes — 15,989,604 parameters (encoder 9,539,328).

The Trident decoder is also table 12's "GMG + Trident decoder". Training (runner side): sigmoid focal loss
weighted by ``IoU^p`` on positives (``iou_weight_power`` 0.2) + DIoU on the decoded distances, normalised by the
EMA positive count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from talbench.models.one_stage.detector import OneStageDetector
from talbench.models.one_stage.encoder import sgp_encoder
from talbench.models.one_stage.heads import ClassificationHead
from talbench.models.one_stage.neck import LayerNormNeck
from talbench.models.one_stage.trident import TridentOffsetHead, trident_distances


@dataclass
class TridentOutputs:
    """Per-level lists: ``cls_logits``, ``start_logits``, ``end_logits`` ``(B, C, T_l)``, ``offsets``
    ``(B, 2, bins + 1, T_l)``, ``masks`` bool ``(B, T_l)``."""

    cls_logits: list[torch.Tensor]
    start_logits: list[torch.Tensor]
    end_logits: list[torch.Tensor]
    offsets: list[torch.Tensor]
    masks: list[torch.Tensor]

    def distances(self) -> list[torch.Tensor]:
        """Decoded start / end distances per level, ``(B, T_l, C, 2)`` in units of the level stride."""
        return [
            trident_distances(s, e, o)
            for s, e, o in zip(self.start_logits, self.end_logits, self.offsets, strict=True)
        ]


class TridentDecoder(nn.Module):
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
        prior_prob: float = 0.01,
        with_ln: bool = True,
    ):
        super().__init__()
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

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> TridentOutputs:
        return TridentOutputs(
            cls_logits=self.cls_head(feats, masks),
            start_logits=self.start_head(feats, masks),
            end_logits=self.end_head(feats, masks),
            offsets=self.reg_head(feats, masks),
            masks=[m[:, 0] for m in masks],
        )


def trident_boundary_head(
    dim: int,
    head_dim: int,
    num_classes: int,
    num_layers: int,
    kernel_size: int,
    prior_prob: float,
    with_ln: bool,
) -> ClassificationHead:
    """A start or end boundary head: a classification head on the detached features (``detach_feat=True``)."""
    return ClassificationHead(
        dim, head_dim, num_classes, num_layers, kernel_size, prior_prob, with_ln, detach_input=True
    )


def build_tridet(
    in_dim: int = 2048,
    num_classes: int = 20,
    dim: int = 512,
    num_levels: int = 6,
    sgp_kernel_size: int | Sequence[int] = 1,
    sgp_k: float = 5.0,
    mlp_dim: int = 768,
    drop_path: float = 0.1,
    init_conv_vars: float = 0.0,
    num_bins: int = 16,
    head_dim: int = 512,
    head_num_layers: int = 3,
    head_kernel_size: int = 3,
    boundary_kernel_size: int = 3,
    prior_prob: float = 0.01,
    use_abs_pe: bool = False,
    max_seq_len: int = 2304,
) -> OneStageDetector:
    encoder = sgp_encoder(
        in_dim,
        dim,
        num_levels,
        kernel_size=sgp_kernel_size,
        k=sgp_k,
        mlp_dim=mlp_dim,
        drop_path=drop_path,
        init_conv_vars=init_conv_vars,
        use_abs_pe=use_abs_pe,
        max_seq_len=max_seq_len,
    )
    decoder = TridentDecoder(
        dim,
        head_dim,
        num_classes,
        num_levels,
        num_bins,
        head_num_layers,
        head_kernel_size,
        boundary_kernel_size,
        prior_prob,
    )
    return OneStageDetector(encoder, LayerNormNeck(dim, num_levels), decoder)
