"""Inference of the one-stage detectors (``inference_single_video`` and ``postprocessing`` of ``meta_archs.py``,
``batched_nms`` of ``libs/utils/nms.py``; facts sec. 5), settings in ``test_time.one_stage``:

1. per video and level, the score of every (point, class) is ``sigmoid(logit) x mask`` (CLTDR: the refined logit);
   entries above ``pre_nms_thresh`` (0.001, the paper's lambda) are kept, at most ``pre_nms_topk`` (2000) of the
   best per level;
2. each kept entry becomes the segment ``(t - d_start s, t + d_end s)`` on the feature grid (``t`` the point,
   ``s`` its stride, ``d`` the decoded distances: the class's Trident distances, refined by CLTDR; ActionFormer's
   per-point distances), kept when longer than ``duration_thresh`` (0.05 cells);
3. Gaussian Soft-NMS per video and class (``multiclass_nms``), ``score x exp(-tIoU^2 / sigma)`` with ``sigma`` 0.5,
   segments falling under ``min_score`` (0.001) dropped, the best ``max_seg_num`` (2000) of a video kept
   (:func:`talbench.ops.nms.nms_per_video`);
4. segments to seconds ``(x stride + clip_frames / 2) / fps``, clipped to ``[0, duration]``.

The official code runs NMS on the grid and converts afterwards; tIoU does not change under the (affine)
conversion, the clipping comes last as there. Videos of a batch are decoded together per level.

The model runs on its own device (the row's), autocast by ``run.mixed_precision``: batches are padded on the host
and moved, steps 1-2 run there in float32, the kept candidates come back with ``.cpu()`` for the NMS (numpy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from talbench.models.actionformer import ActionFormerOutputs
from talbench.models.cltdr_gmg.detector import CLTDROutputs
from talbench.models.tridet import TridentOutputs
from talbench.ops.nms import nms_per_video
from talbench.runners.common.device import autocast, module_device
from talbench.runners.one_stage.build import max_div_factor
from talbench.runners.one_stage.data import VideoSequence, inference_batches

CANDIDATE_COLUMNS = ("video_id", "label_id", "start", "end", "score")


def level_distances(outputs, strides) -> list[torch.Tensor]:
    """Decoded distances per level: ``(B, T_l, C, 2)`` per class (Trident, CLTDR) or ``(B, T_l, 1, 2)`` per
    point (ActionFormer), in units of the level stride."""
    if isinstance(outputs, CLTDROutputs):
        return outputs.refined_distances(strides)
    if isinstance(outputs, TridentOutputs):
        return outputs.distances()
    if isinstance(outputs, ActionFormerOutputs):
        return [o.transpose(1, 2)[:, :, None, :] for o in outputs.offsets]
    raise TypeError(f"no decoding for {type(outputs).__name__}")


def decode_candidates(outputs, strides, videos: list[VideoSequence], test_time: dict) -> pd.DataFrame:
    """Steps 1-2 for the videos of one batch: ``video_id, label_id, start, end, score`` on the feature grid."""
    parts: dict[str, list] = {name: [] for name in CANDIDATE_COLUMNS}
    distances = level_distances(outputs, strides)
    for logits, dist, mask, stride in zip(outputs.cls_logits, distances, outputs.masks, strides, strict=True):
        probs = torch.sigmoid(logits.float()).transpose(1, 2) * mask[..., None]  # (B, T_l, C)
        num_classes = probs.shape[-1]
        for b, video in enumerate(videos):
            flat = probs[b].reshape(-1)
            keep = torch.nonzero(flat > test_time["pre_nms_thresh"]).flatten()
            scores, order = torch.sort(flat[keep], descending=True, stable=True)
            top = keep[order[: test_time["pre_nms_topk"]]]
            scores = scores[: test_time["pre_nms_topk"]]
            point, label = top // num_classes, top % num_classes
            d = dist[b, point, label if dist.shape[2] > 1 else 0].float()  # (K, 2)
            t = point.to(d.dtype) * stride
            start, end = t - d[:, 0] * stride, t + d[:, 1] * stride
            long_enough = (end - start) > test_time["duration_thresh"]
            parts["video_id"].append(np.full(int(long_enough.sum()), video.video_id, dtype=object))
            parts["label_id"].append(label[long_enough].cpu().numpy())
            for name, values in (("start", start), ("end", end), ("score", scores)):
                parts[name].append(values[long_enough].double().cpu().numpy())
    return pd.DataFrame({name: np.concatenate(values) if values else [] for name, values in parts.items()})


def to_detections(candidates: pd.DataFrame, videos: list[VideoSequence], classes: list[str],
                  test_time: dict) -> pd.DataFrame:
    """Steps 3-4: Soft-NMS per video and class, then seconds -> ``video_id, label, start, end, score``."""
    if candidates.empty:
        return pd.DataFrame({"video_id": [], "label": [], "start": [], "end": [], "score": []})
    kept = nms_per_video(candidates, "gaussian", iou_threshold=test_time["iou_threshold"],
                         sigma=test_time["nms_sigma"], per_class=True, label_column="label_id",
                         max_per_video=test_time["max_seg_num"], min_score=test_time["min_score"])
    info = pd.DataFrame([(v.video_id, v.times.fps, v.times.stride, v.times.clip_frames, v.duration) for v in videos],
                        columns=["video_id", "fps", "stride", "clip_frames", "duration"]).set_index("video_id")
    meta = info.loc[kept["video_id"].to_numpy()]
    fps, stride = meta["fps"].to_numpy(), meta["stride"].to_numpy()
    half_clip, duration = 0.5 * meta["clip_frames"].to_numpy(), meta["duration"].to_numpy()
    bounds = {}
    for side in ("start", "end"):
        seconds = (kept[side].to_numpy() * stride + half_clip) / fps
        bounds[side] = np.clip(seconds, 0.0, duration)
    names = np.asarray(classes, dtype=object)
    return pd.DataFrame({"video_id": kept["video_id"].to_numpy(), "label": names[kept["label_id"].to_numpy()],
                         "start": bounds["start"], "end": bounds["end"], "score": kept["score"].to_numpy()})


@torch.no_grad()
def predict(model, videos: list[VideoSequence], classes: list[str], cfg: dict) -> pd.DataFrame:
    """Detections of ``model`` (in eval mode, on its device) on ``videos``: steps 1-4 (module docstring)."""
    model.eval()
    device = module_device(model)
    test_time = cfg["test_time"]["one_stage"]
    frames = []
    for batch_videos, features, mask in inference_batches(videos, cfg["one_stage"]["data"]["max_seq_len"],
                                                          max_div_factor(cfg), test_time["batch_size"]):
        with autocast(cfg, device):
            outputs = model(features.to(device), mask.to(device))
        frames.append(decode_candidates(outputs, model.strides, batch_videos, test_time))
    candidates = pd.concat(frames, ignore_index=True)
    return to_detections(candidates, videos, classes, test_time)
