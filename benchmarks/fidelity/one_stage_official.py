"""CLTDR-GMG, TriDet, ActionFormer and TemporalMaxer against their official code: the same weights give the same
training loss and the same detections.

Builds the official model (``libs/modeling/meta_archs.py`` of a checkout of LiQiang0307/CLTDR-GMG, a TriDet fork,
of dingfengshi/TriDet, happyharrycn/actionformer_release or TuanTNG/TemporalMaxer; imported, not copied) and talbench's model at small
sizes (ActionFormer with a local attention window of 5 and 128-cell padding, which the official Longformer-style
attention allows), perturbs the official weights (its zero-initialised convs
would hide differences), loads them into talbench's model by name, then compares on two random videos (one
padded):

* the training loss (``0.7 x refined + 0.3 x coarse`` with the label assignment, on the official padded batch);
* the detections before NMS of one video (score threshold, top-k per level, decoding, duration filter,
  seconds), the official NMS extension being replaced by the identity.

Usage::

    git clone https://github.com/LiQiang0307/CLTDR-GMG /tmp/CLTDR-GMG
    python benchmarks/fidelity/one_stage_official.py --official /tmp/CLTDR-GMG
    git clone https://github.com/dingfengshi/TriDet /tmp/TriDet
    python benchmarks/fidelity/one_stage_official.py --official /tmp/TriDet --model tridet
    git clone https://github.com/happyharrycn/actionformer_release /tmp/AF
    python benchmarks/fidelity/one_stage_official.py --official /tmp/AF --model actionformer
    git clone https://github.com/TuanTNG/TemporalMaxer /tmp/TM
    python benchmarks/fidelity/one_stage_official.py --official /tmp/TM --model temporalmaxer

The first video holds two overlapping ground truths, so that the choice among several containing ones (shortest,
or TemporalMaxer's least cost) is exercised.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from pathlib import Path

import numpy as np
import torch

from talbench.config import deep_merge, load_params, resolve
from talbench.models.actionformer import build_actionformer
from talbench.models.cltdr_gmg.detector import build_cltdr_gmg
from talbench.models.one_stage.losses import PositiveCountNormalizer
from talbench.models.temporalmaxer import build_temporalmaxer
from talbench.models.tridet import build_tridet
from talbench.runners.one_stage.data import Crop, GridTimes, VideoSequence, padded_batch
from talbench.runners.one_stage.infer import decode_candidates
from talbench.runners.one_stage.train import loss_settings, step_loss

SIZES = {"in_dim": 12, "num_classes": 3, "dim": 32, "head_dim": 32, "mlp_dim": 48, "num_bins": 4}
MAX_SEQ_LEN = 64
AF_WINDOW = 5
AF_MAX_SEQ_LEN = 128  # the official local attention needs lengths divisible by 32 x 2 x (5 // 2)
RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]
# official parameter name -> talbench name (the official RefineHead's unused Scales have no counterpart)
RENAMES = [
    (r"^backbone\.embd\.(\d+)\.", r"encoder.projection.convs.\1."),
    (r"^backbone\.embd_norm\.(\d+)\.", r"encoder.projection.norms.\1."),
    (r"^backbone\.(stem|branch)\.(\d+)\.(w1|b1|w2|b2)$", r"encoder.\1.\2.global_branch.\3"),
    (r"^backbone\.(stem|branch)\.(\d+)\.fc\.", r"encoder.\1.\2.INSTANT."),
    (r"^backbone\.(stem|branch)\.(\d+)\.convw\.", r"encoder.\1.\2.LOCAL."),
    (r"^backbone\.(stem|branch)\.(\d+)\.mlp\.3\.", r"encoder.\1.\2.mlp.2."),  # ActionFormer: dropout at 1 and 2
    (r"^backbone\.(stem|branch)\.", r"encoder.\1."),
    (r"^neck\.fpn_norms\.", "neck.norms."),
    (r"^(cls_head|start_head|end_head|reg_head)\.head\.(\d+)\.", r"decoder.\1.trunk.convs.\2."),
    (r"^(cls_head|start_head|end_head|reg_head)\.norm\.(\d+)\.", r"decoder.\1.trunk.norms.\2."),
    (r"^refineHead\.head\.(\d+)\.", r"decoder.refine_head.trunk.convs.\1."),
    (r"^refineHead\.norm\.(\d+)\.", r"decoder.refine_head.trunk.norms.\1."),
    (r"^(cls_head|start_head|end_head)\.cls_head\.", r"decoder.\1.classifier."),
    (r"^reg_head\.scale\.", "decoder.reg_head.scales."),
    (r"^reg_head\.offset_head\.", "decoder.reg_head.regressor."),
    (r"^decls\.contrans\.", "decoder.dcm.upsample.conv."),
    (r"^decls\.conv_l\.", "decoder.dcm.fusion.attention.0.conv_l."),
    (r"^decls\.attn\.1\.", "decoder.dcm.fusion.attention.0.fc."),
    (r"^dereg\.down\.", "decoder.drm.downsample.conv."),
    (r"^dereg\.conv_l\.", "decoder.drm.fusion.attention.0.conv_l."),
    (r"^dereg\.attn\.1\.", "decoder.drm.fusion.attention.0.fc."),
    (r"^cross_level\.conv\.", "decoder.clff.downsample.conv."),
    (r"^cross_level\.convtrans\.", "decoder.clff.upsample.conv."),
    (r"^refineHead\.s_offset_head\.", "decoder.refine_head.start_offset."),
    (r"^refineHead\.e_offset_head\.", "decoder.refine_head.end_offset."),
    (r"^refineHead\.prob_head\.", "decoder.refine_head.classifier."),
]


def official_model(official: Path, model: str):
    sys.modules.setdefault("nms_1d_cpu", types.ModuleType("nms_1d_cpu"))  # the C++ NMS is not needed here
    sys.path.insert(0, str(official))
    from libs.modeling import meta_archs

    train_cfg = {"center_sample": "radius", "center_sample_radius": 1.5, "loss_weight": 1.0, "cls_prior_prob": 0.01,
                 "init_loss_norm": 100, "clip_grad_l2norm": 1.0, "head_empty_cls": [], "dropout": 0.0,
                 "droppath": 0.0, "label_smoothing": 0.0}
    test_cfg = {"pre_nms_thresh": 0.001, "pre_nms_topk": 2000, "iou_threshold": 0.1, "min_score": 0.001,
                "max_seg_num": 2000, "nms_method": "soft", "nms_sigma": 0.5, "duration_thresh": 0.05,
                "multiclass_nms": True, "ext_score_file": None, "voting_thresh": 0.7}
    if model == "actionformer":
        built = meta_archs.PtTransformer("convTransformer", "identity", (2, 2, 5), 2, SIZES["in_dim"],
                                         AF_MAX_SEQ_LEN, 6.0, 4, AF_WINDOW, 3, SIZES["dim"], True, SIZES["dim"], True, 0, SIZES["head_dim"],
                                         RANGES, 3, 3, True, False, False, SIZES["num_classes"], train_cfg, test_cfg)
    elif model == "temporalmaxer":
        train_cfg["center_sample"] = "none"
        assigner = {"iou_weight": 2, "cls_weight": 1.0, "center_radius": 1.5, "keep_percent": 1.0, "confuse_weight": 0.0}
        built = meta_archs.TemporalMaxerArchitecture("convPooler", "identity", (2, 5), 2, SIZES["in_dim"], MAX_SEQ_LEN,
                                                     6.0, 3, SIZES["dim"], True, SIZES["dim"], True, 0, SIZES["head_dim"],
                                                     RANGES, 3, 3, True, SIZES["num_classes"], train_cfg, test_cfg,
                                                     assigner)
    else:
        built = meta_archs.TriDet("SGP", "identity", (2, 2, 5), 2, SIZES["in_dim"], MAX_SEQ_LEN, 6.0, 1, 3,
                                  SIZES["dim"], True, SIZES["dim"], SIZES["mlp_dim"], True, SIZES["head_dim"], RANGES, 3,
                                  3, 3, True, False, SIZES["num_bins"], 0.2, "max", 0.0, 5, 0.0, True,
                                  SIZES["num_classes"], train_cfg, test_cfg)
    meta_archs.batched_nms = lambda segs, scores, labels, *args, **kwargs: (segs, scores, labels)
    return built


def renamed(state: dict, gmg: bool) -> dict:
    """Official names -> talbench's; the SGP block of TriDet keeps its names (``fc``, ``convw``, ...), CLTDR-GMG's
    fork reuses them for the GMG branches (``fc`` = instant, ``convw`` = local)."""
    out = {}
    for name, value in state.items():
        if name.startswith("refineHead.scale."):
            continue
        for pattern, replacement in RENAMES:
            name = re.sub(pattern, replacement, name)
        out[name.replace("INSTANT", "instant" if gmg else "fc").replace("LOCAL", "local" if gmg else "convw")] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of LiQiang0307/CLTDR-GMG or TriDet")
    parser.add_argument("--model", choices=("cltdr_gmg", "tridet", "actionformer", "temporalmaxer"), default="cltdr_gmg")
    args = parser.parse_args()
    torch.manual_seed(0)
    official = official_model(args.official, args.model)
    if args.model == "cltdr_gmg":
        ours = build_cltdr_gmg(**SIZES, drop_path=0.0)
        overrides = {}
    elif args.model == "tridet":
        ours = build_tridet(**SIZES, drop_path=0.0)
        overrides = {"one_stage": {"method": "tridet", "encoder": "sgp", "decoder": "trident"}}
    elif args.model == "temporalmaxer":
        ours = build_temporalmaxer(**{k: v for k, v in SIZES.items() if k not in ("mlp_dim", "num_bins")})
        overrides = {"one_stage": {"method": "temporalmaxer", "encoder": "maxpool", "decoder": "actionformer"}}
    else:
        sizes = {k: v for k, v in SIZES.items() if k not in ("mlp_dim", "num_bins")}
        ours = build_actionformer(**sizes, window_size=AF_WINDOW, drop_path=0.0)
        overrides = {"one_stage": {"method": "actionformer", "encoder": "transformer", "decoder": "actionformer"}}
    with torch.no_grad():
        for name, param in official.named_parameters():
            if "scale" not in name:
                param.add_(0.3 * torch.randn_like(param))
    ours.load_state_dict(renamed(official.state_dict(), args.model == "cltdr_gmg"))
    generator = torch.Generator().manual_seed(1)
    videos = [{"feats": torch.randn(SIZES["in_dim"], length, generator=generator), "segments": torch.tensor(segs),
               "labels": torch.tensor(labels), "video_id": f"v{length}", "fps": 30.0,
               "duration": (4 * length + 8) / 30, "feat_stride": 4, "feat_num_frames": 16}
              for length, segs, labels in ((64, [[3.0, 9.0], [20.0, 50.0], [25.0, 32.5]], [0, 2, 1]),
                                           (40, [[1.0, 30.0], [33.0, 38.5]], [1, 1]))]
    cfg = deep_merge(resolve(load_params(), "tiny", {}), overrides)
    official.train()
    ours.train()
    theirs = {k: float(v.detach()) for k, v in official(videos).items()}
    length = AF_MAX_SEQ_LEN if args.model == "actionformer" else MAX_SEQ_LEN
    x, mask = padded_batch([v["feats"] for v in videos], length)
    crops = [Crop(v["feats"], v["segments"].numpy().astype(np.float64), v["labels"].numpy()) for v in videos]
    mine = step_loss(ours, ours(x, mask), crops, cfg, SIZES["num_classes"], PositiveCountNormalizer(100, 0.9),
                     loss_settings(cfg)).as_floats()
    print(f"training loss  official {theirs['final_loss']:.7f} (cls {theirs['cls_loss']:.7f}, reg "
          f"{theirs['reg_loss']:.7f})  talbench {mine['total']:.7f} (cls {mine['cls']:.7f}, reg {mine['reg']:.7f})")
    official.eval()
    ours.eval()
    video = videos[1]
    with torch.no_grad():
        result = official([video])[0]
        x, mask = padded_batch([video["feats"]], length)
        sequence = VideoSequence(video["video_id"], video["feats"], video["segments"].numpy(), video["labels"].numpy(),
                                 GridTimes(30.0, 4, 16), video["duration"])
        candidates = decode_candidates(ours(x, mask), ours.strides, [sequence], cfg["test_time"]["one_stage"])
    their_segments, their_scores = result["segments"].numpy(), result["scores"].numpy()
    our_segments = np.clip(sequence.times.to_seconds(candidates[["start", "end"]].to_numpy()), 0, video["duration"])
    our_scores = candidates["score"].to_numpy()
    theirs_order = np.lexsort((their_segments[:, 0], -their_scores))
    ours_order = np.lexsort((our_segments[:, 0], -our_scores))
    print(f"detections before NMS  official {len(their_scores)}  talbench {len(our_scores)}")
    if len(their_scores) == len(our_scores):
        print(f"  max |score difference| {np.abs(their_scores[theirs_order] - our_scores[ours_order]).max():.2e}, "
              f"max |bound difference| {np.abs(their_segments[theirs_order] - our_segments[ours_order]).max():.2e} s")


if __name__ == "__main__":
    main()
