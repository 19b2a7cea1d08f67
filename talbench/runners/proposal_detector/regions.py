"""The detector's input batch: every proposal's snippets and its two extended regions (D-Net AAAI 2022 sec. 3.1).

A proposal's snippets are those whose centre lies in ``[start, end]`` (at least the nearest one); the extended
regions are ``[start - L/2, start]`` and ``[end, end + L/2]`` (L = duration). A region holding more than
``detector.max_snippets`` snippets is sampled uniformly (bounds the padded batch on very long proposals).
"""

from __future__ import annotations

import numpy as np
import torch

from talbench.models.proposal_detector import gather_regions
from talbench.runners.common.snippets import VideoSnippets


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


def build_batch(videos: list[VideoSnippets], segments: list[np.ndarray], max_snippets: int) -> dict[str, torch.Tensor]:
    """Padded region features of every proposal of every listed video (one entry of ``segments`` per video).

    Besides ``<region>`` ``(N, K, D)``, ``<region>_mask`` ``(N, K)`` and ``video_global`` ``(N, D)``, the batch
    holds the videos' whole snippet sequences, so that a module running over a video's sequence (RefactorNet's
    slot, sec. 3.5: F -> F') can encode them first and gather the regions afterwards: ``snippets`` ``(S, D)``
    (the videos' sequences one after the other), ``lengths`` ``(V,)`` (snippets per video), ``video_index``
    ``(N,)`` (each proposal's video) and ``<region>_index`` ``(N, K)`` (rows of ``snippets``). The indices are
    computed with numpy and moved to the device of the videos' snippets, where the regions are gathered."""
    parts: dict[str, list] = {r: [] for r in ("left", "center", "right")}
    flat, offset, global_rows, video_index = [], 0, [], []
    indices: dict[str, list] = {r: [] for r in parts}
    for k, (video, segs) in enumerate(zip(videos, segments)):
        for region, bounds in extended_regions(segs).items():
            idx, mask = region_index(video.centers, bounds, max_snippets)
            indices[region].append((idx + offset, mask))
        flat.append(video.features)
        global_rows.append(video.video_global.expand(len(segs), -1))
        video_index.append(np.full(len(segs), k, dtype=np.int64))
        offset += len(video.features)
    snippets = torch.cat(flat)
    device = snippets.device
    batch: dict[str, torch.Tensor] = {
        "video_global": torch.cat(global_rows), "snippets": snippets,
        "lengths": torch.tensor([len(f) for f in flat], dtype=torch.long).to(device),
        "video_index": torch.from_numpy(np.concatenate(video_index)).to(device),
    }
    for region, pieces in indices.items():
        width = max(idx.shape[1] for idx, _ in pieces)
        idx = torch.from_numpy(np.concatenate([np.pad(i, ((0, 0), (0, width - i.shape[1]))) for i, _ in pieces]))
        mask_t = torch.from_numpy(np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for _, m in pieces]))
        idx, mask_t = idx.to(device), mask_t.to(device)
        batch[region] = gather_regions(snippets, idx, mask_t)
        batch[f"{region}_index"] = idx
        batch[f"{region}_mask"] = mask_t
    return batch

