"""Label assignment and per-video sampling of training proposals for the proposal-level detector (D-Net AAAI 2022
implementation details; sampling as SSN / P-GCN / ContextLoc).

* Labels (P-GCN / SSN ``get_fg``/``get_negatives``): foreground tIoU > 0.7 with the best ground truth (the
  ground-truth segments are added as foreground proposals); incomplete tIoU < 0.3 and overlap with the
  ground truth > 0.7 of the proposal's own length; background tIoU < 0.01 and duration > 1% of the video.
* Per video and epoch 8 proposals at fg : incomplete : bg = 1 : 6 : 1 (P-GCN ``fg_ratio 1, incomplete 6,
  bg 1``). D-Net adds "some incomplete proposals as positive samples for classification": the first
  ``incomplete_cls_per_video`` sampled incomplete proposals are classification samples labelled with the
  class of the ground truth they overlap (they lie inside an action by construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from talbench.eval.tiou import intersection_over_first, pairwise_tiou

FOREGROUND, INCOMPLETE, BACKGROUND, IGNORED = 0, 1, 2, -1


@dataclass
class AssignedProposals:
    """One training video's proposals (ground truth appended) with their labels."""

    segments: np.ndarray  # (N, 2) seconds
    kind: np.ndarray  # FOREGROUND / INCOMPLETE / BACKGROUND / IGNORED
    label: np.ndarray  # 1..C class of the matched ground truth (0 for background / ignored)
    reg_target: np.ndarray  # (N, 2): (gt centre - centre) / length, log(gt length / length)


def assign_labels(proposals: np.ndarray, gt_segments: np.ndarray, gt_labels: np.ndarray, duration: float,
                  sampling: dict) -> AssignedProposals:
    """Label proposals against a video's ground truth (``gt_labels`` in 0..C-1), vectorized."""
    segments = np.concatenate([proposals.reshape(-1, 2), gt_segments.reshape(-1, 2)]).astype(np.float64)
    n = len(segments)
    kind = np.full(n, IGNORED, dtype=np.int64)
    label = np.zeros(n, dtype=np.int64)
    reg = np.zeros((n, 2), dtype=np.float32)
    length = segments[:, 1] - segments[:, 0]
    if len(gt_segments) == 0:
        kind[length > sampling["bg_min_coverage"] * duration] = BACKGROUND
        return AssignedProposals(segments, kind, label, reg)
    iou = pairwise_tiou(segments, gt_segments)
    overlap = intersection_over_first(segments, gt_segments)
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(n), best]
    fg = best_iou > sampling["fg_iou"]
    incomplete = ~fg & (best_iou < sampling["incomplete_iou"]) & (overlap.max(axis=1) > sampling["incomplete_overlap"])
    bg = ~fg & ~incomplete & (best_iou < sampling["bg_iou"]) & (length > sampling["bg_min_coverage"] * duration)
    kind[fg], kind[incomplete], kind[bg] = FOREGROUND, INCOMPLETE, BACKGROUND
    matched = np.where(incomplete, overlap.argmax(axis=1), best)
    label[fg | incomplete] = gt_labels[matched[fg | incomplete]] + 1
    gt = gt_segments[best]
    gt_len = np.maximum(gt[:, 1] - gt[:, 0], 1e-6)
    safe_len = np.maximum(length, 1e-6)
    reg[:, 0] = ((gt[:, 0] + gt[:, 1]) / 2 - (segments[:, 0] + segments[:, 1]) / 2) / safe_len
    reg[:, 1] = np.log(gt_len / safe_len)
    reg[~fg] = 0.0
    return AssignedProposals(segments, kind, label, reg)


def sample_video(assigned: AssignedProposals, sampling: dict, rng: np.random.Generator) -> np.ndarray:
    """Indices of the proposals sampled from one video for one epoch (fg : incomplete : bg as configured).

    A type with no proposal in this video gives its slots to background, then incomplete, then foreground."""
    wanted = {FOREGROUND: sampling["fg_per_video"], INCOMPLETE: sampling["incomplete_per_video"],
              BACKGROUND: sampling["bg_per_video"]}
    pools = {k: np.flatnonzero(assigned.kind == k) for k in wanted}
    missing = sum(n for k, n in wanted.items() if len(pools[k]) == 0)
    chosen = []
    for k in (FOREGROUND, INCOMPLETE, BACKGROUND):
        if len(pools[k]) == 0:
            continue
        n = wanted[k]
        if missing and k in (BACKGROUND, INCOMPLETE):
            n, missing = n + missing, 0
        chosen.append(rng.choice(pools[k], size=n, replace=len(pools[k]) < n))
    if missing and chosen:  # only foreground exists
        chosen.append(rng.choice(pools[FOREGROUND], size=missing, replace=True))
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def training_targets(assigned: AssignedProposals, picked: np.ndarray, incomplete_cls: int) -> dict[str, np.ndarray]:
    """Targets of eq. 15 for the picked proposals of one video (see :func:`detection_loss`)."""
    kind, label = assigned.kind[picked], assigned.label[picked]
    cls_label = np.where(kind == FOREGROUND, label, np.where(kind == BACKGROUND, 0, -1))
    incomplete_rank = np.cumsum(kind == INCOMPLETE) - 1
    promote = (kind == INCOMPLETE) & (incomplete_rank < incomplete_cls)
    cls_label = np.where(promote, label, cls_label)
    comp_class = np.where(kind == BACKGROUND, -1, label - 1)
    return {
        "cls_label": cls_label.astype(np.int64),
        "comp_class": comp_class.astype(np.int64),
        "comp_sign": np.where(kind == FOREGROUND, 1.0, -1.0).astype(np.float32),
        "reg_target": assigned.reg_target[picked].astype(np.float32),
        "reg_mask": kind == FOREGROUND,
    }


def assign_training_proposals(dataset, video_ids: list[str], proposals: pd.DataFrame, gt: pd.DataFrame,
                              sampling: dict) -> dict[str, AssignedProposals]:
    """Label every training video's proposals (ground truth appended as foreground, P-GCN ``with_gt``)."""
    by_video = {k: g for k, g in proposals.groupby("video_id", sort=False)}
    gt_by_video = {k: g for k, g in gt.groupby("video_id", sort=False)}
    assigned = {}
    empty = pd.DataFrame({"start": [], "end": [], "label_id": []})
    for vid in video_ids:
        props = by_video.get(vid, empty)[["start", "end"]].to_numpy(dtype=np.float64)
        truth = gt_by_video.get(vid, empty)
        assigned[vid] = assign_labels(props, truth[["start", "end"]].to_numpy(dtype=np.float64),
                                      truth["label_id"].to_numpy(dtype=np.int64), dataset.duration(vid),
                                      sampling)
    return assigned
