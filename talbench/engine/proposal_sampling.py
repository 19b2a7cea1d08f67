"""Snippets, proposal regions, label assignment and per-video sampling for the proposal-level detector
(D-Net AAAI 2022 sec. 3.1 and implementation details; sampling as SSN / P-GCN / ContextLoc).

* Snippets every 16 frames (D-Net "the interval between snippets is set to 16 frames"): the release has
  one feature cell every 4 frames, so each 4 consecutive cells are **average-pooled** into one snippet
  (every frame still contributes, unlike subsampling which would drop 3 of 4 cells); the snippet time is the
  mean of its cells' centres.
* A proposal's snippets are those whose centre lies in ``[start, end]`` (at least the nearest one); the
  extended regions are ``[start - L/2, start]`` and ``[end, end + L/2]`` (sec. 3.1, L = duration).
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
import torch

FOREGROUND, INCOMPLETE, BACKGROUND, IGNORED = 0, 1, 2, -1


def pool_snippets(features: np.ndarray, centers: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Average-pool each ``factor`` consecutive feature cells (the last group may be shorter)."""
    t = features.shape[0]
    groups = -(-t // factor)
    pad = groups * factor - t
    weights = np.ones(t, dtype=np.float32)
    if pad:
        features = np.concatenate([features, np.zeros((pad, features.shape[1]), features.dtype)])
        centers = np.concatenate([centers, np.zeros(pad, centers.dtype)])
        weights = np.concatenate([weights, np.zeros(pad, np.float32)])
    w = weights.reshape(groups, factor)
    counts = w.sum(axis=1)
    pooled = (features.reshape(groups, factor, -1) * w[..., None]).sum(axis=1) / counts[:, None]
    pooled_centers = (centers.reshape(groups, factor) * w).sum(axis=1) / counts
    return pooled.astype(np.float32), pooled_centers


def extended_regions(segments: np.ndarray, ratio: float = 0.5) -> dict[str, np.ndarray]:
    """``(N, 2)`` proposals -> left / center / right regions, each ``(N, 2)`` (sec. 3.1, 50% each side)."""
    length = segments[:, 1] - segments[:, 0]
    return {
        "left": np.stack([segments[:, 0] - ratio * length, segments[:, 0]], axis=1),
        "center": segments,
        "right": np.stack([segments[:, 1], segments[:, 1] + ratio * length], axis=1),
    }


def region_index(centers: np.ndarray, segments: np.ndarray, max_snippets: int) -> tuple[np.ndarray, np.ndarray]:
    """Snippet indices ``(N, K)`` and mask of the snippets whose centre lies in each segment.

    A segment holding no snippet centre takes its nearest snippet; one holding more than ``max_snippets``
    is sampled uniformly at ``max_snippets`` positions (bounds the padded batch on very long proposals)."""
    n_snip = len(centers)
    first = np.searchsorted(centers, segments[:, 0], side="left")
    count = np.searchsorted(centers, segments[:, 1], side="right") - first
    empty = count <= 0
    if empty.any():
        mid = segments[empty].mean(axis=1)
        nearest = np.clip(np.searchsorted(centers, mid), 1, max(n_snip - 1, 1))
        left_closer = np.abs(centers[nearest - 1] - mid) <= np.abs(centers[np.minimum(nearest, n_snip - 1)] - mid)
        first[empty] = np.where(left_closer, nearest - 1, np.minimum(nearest, n_snip - 1))
        count[empty] = 1
    kept = np.minimum(count, max_snippets)
    width = int(kept.max()) if len(kept) else 1
    slot = np.arange(width)[None, :]
    index = first[:, None] + (slot * count[:, None]) // np.maximum(kept[:, None], 1)
    mask = slot < kept[:, None]
    return np.where(mask, np.clip(index, 0, n_snip - 1), 0), mask


def tiou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Temporal IoU of every segment of ``a`` (N, 2) with every segment of ``b`` (M, 2)."""
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def overlap_self(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of each ``a`` segment with each ``b`` segment over the length of the ``a`` segment."""
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    return inter / np.maximum(a[:, 1] - a[:, 0], 1e-9)[:, None]


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
    iou = tiou_matrix(segments, gt_segments)
    overlap = overlap_self(segments, gt_segments)
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


@dataclass
class VideoSnippets:
    """One video's 16-frame snippet features for one stream, their times and the video max-pool (eq. 9)."""

    features: torch.Tensor  # (T', D)
    centers: np.ndarray  # (T',)
    video_global: torch.Tensor  # (D,)


def build_batch(videos: list[VideoSnippets], segments: list[np.ndarray], max_snippets: int) -> dict[str, torch.Tensor]:
    """Padded region features of every proposal of every listed video (one entry of ``segments`` per video)."""
    parts: dict[str, list] = {r: [] for r in ("left", "center", "right")}
    flat, offset, global_rows = [], 0, []
    indices: dict[str, list] = {r: [] for r in parts}
    for video, segs in zip(videos, segments):
        for region, bounds in extended_regions(segs).items():
            idx, mask = region_index(video.centers, bounds, max_snippets)
            indices[region].append((idx + offset, mask))
        flat.append(video.features)
        global_rows.append(video.video_global.expand(len(segs), -1))
        offset += len(video.features)
    snippets = torch.cat(flat)
    batch: dict[str, torch.Tensor] = {"video_global": torch.cat(global_rows)}
    for region, pieces in indices.items():
        width = max(idx.shape[1] for idx, _ in pieces)
        idx = np.concatenate([np.pad(i, ((0, 0), (0, width - i.shape[1]))) for i, _ in pieces])
        mask = np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for _, m in pieces])
        mask_t = torch.from_numpy(mask)
        batch[region] = snippets[torch.from_numpy(idx)] * mask_t.unsqueeze(-1)
        batch[f"{region}_mask"] = mask_t
    return batch
