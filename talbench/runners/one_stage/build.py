"""The detector of a row from params.yaml ``one_stage``: an encoder, its neck and a decoder, any combination
(CLTDR-GMG tables 12 and 13 swap them; facts sec. 1-2).

* ``encoder``: ``gmg`` (CLTDR-GMG), ``transformer`` (ActionFormer), ``sgp`` (TriDet), ``maxpool``
  (TemporalMaxer); the neck goes with the encoder: a LayerNorm per level, or TemporalMaxer's affine-free
  GroupNorm after its max-pool encoder;
* ``decoder``: ``cltdr`` (CLTDR-GMG), ``actionformer`` (ActionFormer's and TemporalMaxer's heads), ``trident``
  (TriDet);
* drop-path comes with the training recipe of the row's ``method`` (``train_cfg.droppath`` of its config).

``width`` gives the feature sizes: the row's (``one_stage.dim`` / ``head_dim`` and the dataset's input and
classes) for training, or ``one_stage.paper`` (THUMOS14 I3D: input 2048, 20 classes, D 512) for the parameter
counts and timings the papers print.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from talbench.models.actionformer import ActionFormerDecoder
from talbench.models.cltdr_gmg.detector import CLTDRDecoder
from talbench.models.one_stage.detector import OneStageDetector
from talbench.models.one_stage.encoder import (
    PyramidEncoder,
    gmg_encoder,
    sgp_encoder,
    temporalmaxer_encoder,
    transformer_encoder,
)
from talbench.models.one_stage.neck import GroupNormNeck, LayerNormNeck
from talbench.models.tridet import TridentDecoder

ENCODERS = ("gmg", "transformer", "sgp", "maxpool")
DECODERS = ("cltdr", "actionformer", "trident")
METHODS = ("cltdr_gmg", "actionformer", "tridet", "temporalmaxer")


@dataclass(frozen=True)
class Width:
    """Feature sizes of a model: input channels, classes, embedding and head widths."""

    in_dim: int
    num_classes: int
    dim: int
    head_dim: int


def row_width(cfg: dict, in_dim: int, num_classes: int) -> Width:
    return Width(in_dim, num_classes, cfg["one_stage"]["dim"], cfg["one_stage"]["head_dim"])


def paper_width(cfg: dict) -> Width:
    paper = cfg["one_stage"]["paper"]
    return Width(paper["in_dim"], paper["num_classes"], paper["dim"], paper["head_dim"])


def recipe(cfg: dict) -> dict:
    """The training recipe of the row's ``method`` (``one_stage.recipes.<method>``)."""
    os_cfg = cfg["one_stage"]
    if os_cfg["method"] not in METHODS:
        raise ValueError(f"one_stage.method must be one of {METHODS}, got {os_cfg['method']!r}")
    return os_cfg["recipes"][os_cfg["method"]]


def max_div_factor(cfg: dict) -> int:
    """The largest pyramid stride ``2^(L-1)``: padded lengths are multiples of it."""
    return 2 ** (cfg["one_stage"]["num_levels"] - 1)


def build_encoder(cfg: dict, width: Width) -> PyramidEncoder:
    os_cfg = cfg["one_stage"]
    name, levels, drop_path = os_cfg["encoder"], os_cfg["num_levels"], recipe(cfg)["drop_path"]
    common = {"proj_layers": os_cfg["projection_layers"]}
    if name == "gmg":
        g = os_cfg["gmg"]
        return gmg_encoder(width.in_dim, width.dim, levels, os_cfg["stem_blocks"], g["local_kernel_size"],
                           round(g["mlp_ratio"] * width.dim), drop_path, g["init_conv_vars"], g["branches"],
                           g["gate"], g["global_extractor"], g["attention_heads"], **common)
    if name == "transformer":
        t = os_cfg["transformer"]
        return transformer_encoder(width.in_dim, width.dim, levels, os_cfg["stem_blocks"], t["num_heads"],
                                   t["window_size"], round(t["mlp_ratio"] * width.dim), drop_path, **common)
    if name == "sgp":
        s = os_cfg["sgp"]
        return sgp_encoder(width.in_dim, width.dim, levels, os_cfg["stem_blocks"], s["kernel_size"], s["k"],
                           round(s["mlp_ratio"] * width.dim), drop_path, s["init_conv_vars"], **common)
    if name == "maxpool":
        return temporalmaxer_encoder(width.in_dim, width.dim, levels, proj_layers=os_cfg["projection_layers"])
    raise ValueError(f"one_stage.encoder must be one of {ENCODERS}, got {name!r}")


def build_neck(cfg: dict, width: Width) -> nn.Module:
    os_cfg = cfg["one_stage"]
    if os_cfg["encoder"] == "maxpool":
        return GroupNormNeck(width.dim, os_cfg["maxpool_neck_groups"])
    return LayerNormNeck(width.dim, os_cfg["num_levels"])


def build_decoder(cfg: dict, width: Width) -> nn.Module:
    os_cfg = cfg["one_stage"]
    heads, levels = os_cfg["heads"], os_cfg["num_levels"]
    name = os_cfg["decoder"]
    if name == "cltdr":
        c, tri = os_cfg["cltdr"], os_cfg["trident"]
        return CLTDRDecoder(width.dim, width.head_dim, width.num_classes, levels, tri["num_bins"],
                            heads["num_layers"], heads["kernel_size"], tri["boundary_kernel_size"],
                            c["refine_offset_kernel_size"], heads["prior_prob"], cls_layers=c["cls_layers"],
                            reg_layers=c["reg_layers"], fusion=c["fusion"], refine=c["refine"],
                            refine_form=c["refine_form"])
    if name == "actionformer":
        return ActionFormerDecoder(width.dim, width.head_dim, width.num_classes, levels, heads["num_layers"],
                                   heads["kernel_size"], heads["prior_prob"])
    if name == "trident":
        tri = os_cfg["trident"]
        return TridentDecoder(width.dim, width.head_dim, width.num_classes, levels, tri["num_bins"],
                              heads["num_layers"], heads["kernel_size"], tri["boundary_kernel_size"],
                              heads["prior_prob"])
    raise ValueError(f"one_stage.decoder must be one of {DECODERS}, got {name!r}")


def build_detector(cfg: dict, width: Width) -> OneStageDetector:
    """Encoder -> neck -> decoder of the row at ``width``."""
    return OneStageDetector(build_encoder(cfg, width), build_neck(cfg, width), build_decoder(cfg, width))
