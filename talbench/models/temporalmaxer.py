"""TemporalMaxer (Tang, Kim and Sohn, arXiv 2303.09055), fig. 2 as code::

    X (B, C_in, T) --> projection: 2 x [conv k3 -> LN -> ReLU]                 (level 0, no stem)
                   --> 5 x TemporalMaxer block: max-pool k3 s2 p1, masked      (levels 1..5, no parameters)
                   --> neck: GroupNorm(4 groups, no affine) per level
                   --> ActionFormer's decoder: classification head + regression head

Defaults = the official THUMOS14 I3D config (``configs/temporalmaxer_thumos_i3d.yaml``, ``backbone_arch [2, 5]``,
``fpn_type identity``): 7,117,852 parameters. Its training differs from ActionFormer's in the label assignment
(SimOTA-style, ``center_sample: none``), which is runner side.
"""

from __future__ import annotations

from talbench.models.actionformer import ActionFormerDecoder
from talbench.models.one_stage.detector import OneStageDetector
from talbench.models.one_stage.encoder import temporalmaxer_encoder
from talbench.models.one_stage.neck import GroupNormNeck


def build_temporalmaxer(
    in_dim: int = 2048,
    num_classes: int = 20,
    dim: int = 512,
    num_levels: int = 6,
    neck_groups: int = 4,
    head_dim: int = 512,
    head_num_layers: int = 3,
    head_kernel_size: int = 3,
    prior_prob: float = 0.01,
) -> OneStageDetector:
    decoder = ActionFormerDecoder(
        dim, head_dim, num_classes, num_levels, head_num_layers, head_kernel_size, prior_prob
    )
    return OneStageDetector(
        temporalmaxer_encoder(in_dim, dim, num_levels), GroupNormNeck(dim, neck_groups), decoder
    )
