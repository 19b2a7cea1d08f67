"""Inference of the proposal-level detector (D-Net AAAI 2022 sec. 3.6, eq. 16) and two-stream fusion.

* ``s^cls_{i,m}`` = softmax probability of class m (background removed), ``s^com_{i,m} = exp(z_{i,m})``,
  final score ``s_{i,m} = s^cls_{i,m} x s^com_{i,m}`` (eq. 16).
* Boundaries: the (centre, log-length) regression decoded on the proposal (SSN / P-GCN parameterisation).
* RGB and Flow are fused with the paper's ratio 5:6 (implementation details) on the final scores and on
  the regressed boundaries (weighted means), then per-class NMS gives the detections.
* Table 3 combines branches: the classification score of one model with the completeness and boundaries
  of another (:func:`combine_branches`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from talbench.models.proposal_detector import ProposalDetector
from talbench.runners.common.device import autocast, module_device
from talbench.runners.common.snippets import VideoSnippets
from talbench.runners.proposal_detector.regions import build_batch


@dataclass
class ProposalScores:
    """Per-video outputs on the proposals ``segments`` (N, 2): ``cls_prob`` (N, C) without background,
    ``completeness`` (N, C) raw ``z``, ``boundaries`` (N, 2) regressed start/end in seconds."""

    segments: np.ndarray
    cls_prob: np.ndarray
    completeness: np.ndarray
    boundaries: np.ndarray

    @property
    def scores(self) -> np.ndarray:
        return self.cls_prob * np.exp(self.completeness)  # eq. 16


def decode_boundaries(segments: np.ndarray, regression: np.ndarray) -> np.ndarray:
    """Inverse of the (centre offset / length, log length ratio) targets."""
    length = segments[:, 1] - segments[:, 0]
    center = (segments[:, 0] + segments[:, 1]) / 2 + regression[:, 0] * length
    new_length = length * np.exp(np.clip(regression[:, 1], -4.0, 4.0))
    return np.stack([center - new_length / 2, center + new_length / 2], axis=1)


@torch.no_grad()
def predict_stream(model: ProposalDetector, videos: dict[str, VideoSnippets], proposals: dict[str, np.ndarray],
                   cfg: dict, cls_feature: str = "F_cls", loc_feature: str = "F_loc") -> tuple[dict[str, ProposalScores], float]:
    """Outputs for every video's proposals (computed on the model's device, returned as float32 numpy arrays);
    returns them and the proposals per second."""
    model.eval()
    device = module_device(model)
    chunk, max_snippets = cfg["detector"]["inference_chunk"], cfg["detector"]["max_snippets"]
    outputs, total, start = {}, 0, time.perf_counter()
    for vid, segments in proposals.items():
        cls_parts, comp_parts, reg_parts = [], [], []
        for first in range(0, len(segments), chunk):
            batch = build_batch([videos[vid]], [segments[first:first + chunk]], max_snippets)
            with autocast(cfg, device):
                out = model(batch, cls_feature=cls_feature, loc_feature=loc_feature)
            cls_parts.append(torch.softmax(out["cls_logits"].float(), dim=-1)[:, 1:].cpu().numpy())
            comp_parts.append(out["completeness"].float().cpu().numpy())
            reg_parts.append(out["regression"].float().cpu().numpy())
        outputs[vid] = ProposalScores(segments, np.concatenate(cls_parts), np.concatenate(comp_parts),
                                      decode_boundaries(segments, np.concatenate(reg_parts)))
        total += len(segments)
    return outputs, total / max(time.perf_counter() - start, 1e-9)


def combine_branches(cls_from: dict[str, ProposalScores], loc_from: dict[str, ProposalScores]) -> dict[str, ProposalScores]:
    """Classification probabilities of ``cls_from`` with completeness and boundaries of ``loc_from``
    (table 3: a branch on the original features combined with a disentangled branch)."""
    return {v: ProposalScores(o.segments, cls_from[v].cls_prob, o.completeness, o.boundaries)
            for v, o in loc_from.items()}


def labelled_proposals(outputs: dict[str, ProposalScores], classes: list[str]) -> pd.DataFrame:
    """Every proposal after boundary regression with its top-1 class: ``video_id, label, start, end`` (the
    input of RefactorNet's table-3 metrics, :func:`talbench.eval.classification.high_quality_proposal_metrics`)."""
    names = np.asarray(classes, dtype=object)
    if not outputs:
        return pd.DataFrame({"video_id": [], "label": [], "start": [], "end": []})
    return pd.DataFrame({
        "video_id": np.concatenate([np.full(len(o.boundaries), v, dtype=object) for v, o in outputs.items()]),
        "label": np.concatenate([names[o.cls_prob.argmax(axis=1)] for o in outputs.values()]),
        "start": np.concatenate([o.boundaries[:, 0] for o in outputs.values()]),
        "end": np.concatenate([o.boundaries[:, 1] for o in outputs.values()]),
    })


@dataclass
class FusedScores:
    segments: np.ndarray
    scores: np.ndarray
    boundaries: np.ndarray


def fuse_streams(streams: list[dict[str, ProposalScores]], weights: list[float]) -> dict[str, FusedScores]:
    """Weighted mean of the final scores and regressed boundaries over streams (D-Net: RGB:Flow = 5:6)."""
    w = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    fused = {}
    for vid in streams[0]:
        parts = [s[vid] for s in streams]
        fused[vid] = FusedScores(parts[0].segments, sum(wi * p.scores for wi, p in zip(w, parts)),
                                 sum(wi * p.boundaries for wi, p in zip(w, parts)))
    return fused


def single_stream(stream: dict[str, ProposalScores]) -> dict[str, FusedScores]:
    return {v: FusedScores(o.segments, o.scores, o.boundaries) for v, o in stream.items()}


def to_detections(fused: dict[str, FusedScores], classes: list[str], test_time: dict,
                  video_scores: dict[str, np.ndarray] | None = None, soft_nms: dict | None = None) -> pd.DataFrame:
    """Per-class NMS over every video's (proposal, class) candidates -> ``video_id, label, start, end, score``.

    ``video_scores`` (video -> (C,) class probabilities) applies video-level classification fusion as
    P-GCN / ContextLoc: only the video's top-k classes are kept and each detection score is multiplied by
    that class's video-level probability."""
    from talbench.ops.nms import nms_per_class

    frames = []
    top = test_time["pre_nms_per_class"]
    for vid, out in fused.items():
        scores = out.scores
        if video_scores is not None:
            keep = np.zeros(scores.shape[1], dtype=bool)
            keep[np.argsort(-video_scores[vid], kind="stable")[: test_time["video_cls_top_k"]]] = True
            scores = np.where(keep[None, :], scores * video_scores[vid][None, :], 0.0)
        c = scores.shape[1]
        order = np.argsort(-scores, axis=0, kind="stable")[:top]  # (top, C) best proposals of each class
        rows, cols = order.reshape(-1), np.tile(np.arange(c), order.shape[0])
        sel = scores[rows, cols] > test_time["min_score"]
        rows, cols = rows[sel], cols[sel]
        frames.append(pd.DataFrame({
            "video_id": vid, "label_id": cols, "start": out.boundaries[rows, 0], "end": out.boundaries[rows, 1],
            "score": scores[rows, cols],
        }))
    candidates = pd.concat(frames, ignore_index=True)
    candidates["start"] = candidates["start"].clip(lower=0.0)
    candidates = candidates[candidates["end"] > candidates["start"]]
    if soft_nms is None:
        kept = nms_per_class(candidates, iou_threshold=test_time["nms_threshold"],
                             max_per_video=test_time["max_per_video"])
    else:  # RefactorNet sec. 3.6: Soft-NMS per class ({"method": "gaussian" | "linear", "sigma": s})
        from talbench.ops.nms import nms_per_video

        kept = nms_per_video(candidates, soft_nms["method"], iou_threshold=test_time["nms_threshold"],
                             sigma=soft_nms["sigma"], per_class=True, max_per_video=test_time["max_per_video"],
                             min_score=test_time["min_score"])
    kept = kept.assign(label=np.asarray(classes, dtype=object)[kept["label_id"].to_numpy()])
    return kept[["video_id", "label", "start", "end", "score"]].reset_index(drop=True)
