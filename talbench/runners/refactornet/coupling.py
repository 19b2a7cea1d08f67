"""Action samples and coupling samples (RefactorNet, section 3.3).

For every training video the snippets are split into action snippets (centre inside an annotated instance)
and non-action snippets. Every action snippet is an action sample ``a`` (with its instance's label). A coupling
sample ``c`` is a non-action snippet of the same video whose cosine similarity with at least one action sample
is high: each non-action snippet is paired with its most similar action sample, pairs below
``min_similarity`` are dropped and the ``top_k`` most similar pairs of each video are kept. The pair's
similarity is kept: it is alpha in eq. 5 (section 5.2).

Similarities are one torch matmul per chunk of action samples (``chunk_size`` rows at a time, on the row's
device), so that long videos never build a full ``(n_action, n_non_action)`` matrix at once. Ties are broken by
the lowest index, so the collection is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from talbench.errors import ConfigError


@dataclass(frozen=True)
class CouplingSamples:
    """Pairs ``(features[action_index[k]], features[coupling_index[k]])`` with ``similarity[k]``.

    ``features`` holds each used snippet once; ``label_id`` is the action sample's class, ``video_id`` the
    video of the pair; ``num_action_samples`` counts all action snippets seen (paired or not)."""

    features: np.ndarray
    action_index: np.ndarray
    coupling_index: np.ndarray
    similarity: np.ndarray
    label_id: np.ndarray
    video_id: np.ndarray
    num_action_samples: int

    def __len__(self) -> int:
        return int(self.similarity.shape[0])

    def summary(self) -> dict[str, float]:
        return {
            "coupling/pairs": float(len(self)),
            "coupling/action_samples": float(self.num_action_samples),
            "coupling/videos": float(len(np.unique(self.video_id))),
            "coupling/mean_similarity": float(self.similarity.mean()) if len(self) else 0.0,
        }


def action_snippet_labels(centers: np.ndarray, instances: pd.DataFrame) -> np.ndarray:
    """Label id of the instance each snippet centre falls in, -1 for non-action snippets (one video).
    Overlapping instances: the one that starts last wins (vectorised over snippets x instances)."""
    labels = np.full(centers.shape[0], -1, dtype=np.int64)
    if len(instances) == 0:
        return labels
    starts = instances["start"].to_numpy(dtype=np.float64)
    ends = instances["end"].to_numpy(dtype=np.float64)
    inside = (centers[:, None] >= starts[None, :]) & (centers[:, None] <= ends[None, :])
    order = np.argsort(starts, kind="stable")
    inside = inside[:, order]
    any_inside = inside.any(axis=1)
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    labels[any_inside] = instances["label_id"].to_numpy(dtype=np.int64)[order][last[any_inside]]
    return labels


def pair_video(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    min_similarity: float,
    top_k: int,
    chunk_size: int = 2048,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coupling pairs of one video: ``(action_rows, coupling_rows, similarity)`` as row indices of ``features``.

    Each non-action snippet is matched with its most similar action snippet (cosine, computed on ``device``);
    the pairs with similarity >= ``min_similarity`` are ranked by similarity and the first ``top_k`` kept."""
    action_rows = np.flatnonzero(labels >= 0)
    other_rows = np.flatnonzero(labels < 0)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    if action_rows.size == 0 or other_rows.size == 0:
        return empty
    x = F.normalize(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device), dim=1)
    others = x[torch.from_numpy(other_rows).to(device)]
    best_sim = torch.full((other_rows.size,), -2.0, device=device)
    best_action = torch.zeros(other_rows.size, dtype=torch.long, device=device)
    for start in range(0, action_rows.size, chunk_size):
        chunk = torch.from_numpy(action_rows[start : start + chunk_size]).to(device)
        sim = x[chunk] @ others.T  # (chunk, n_other)
        chunk_best, chunk_arg = sim.max(dim=0)
        better = chunk_best > best_sim  # strict: an earlier chunk keeps ties (lowest index)
        best_sim = torch.where(better, chunk_best, best_sim)
        best_action = torch.where(better, chunk[chunk_arg], best_action)
    keep = torch.nonzero(best_sim >= min_similarity).squeeze(1)
    if keep.numel() == 0:
        return empty
    order = torch.argsort(best_sim[keep], descending=True, stable=True)[:top_k]
    keep = keep[order]
    return (
        best_action[keep].cpu().numpy().astype(np.int64),
        other_rows[keep.cpu().numpy()],
        best_sim[keep].cpu().numpy().astype(np.float32),
    )


def collect_coupling_samples(
    videos: Iterable[tuple[str, np.ndarray, np.ndarray, pd.DataFrame]],
    *,
    min_similarity: float,
    top_k: int,
    chunk_size: int = 2048,
    progress: Callable[[Iterable], Iterable] | None = None,
    device: torch.device | str = "cpu",
) -> CouplingSamples:
    """Collect the pairs over ``videos`` = ``(video_id, features (T, D), snippet centres (T,), instances)``,
    the similarities computed on ``device``.

    Raises :class:`ConfigError` when no pair passes ``min_similarity`` (the threshold is a parameter)."""
    if top_k < 1:
        raise ConfigError(f"params.yaml: refactornet.coupling.top_k must be >= 1, got {top_k}")
    feature_blocks: list[np.ndarray] = []
    action_index: list[np.ndarray] = []
    coupling_index: list[np.ndarray] = []
    similarity: list[np.ndarray] = []
    label_id: list[np.ndarray] = []
    video_of_pair: list[np.ndarray] = []
    num_action = 0
    offset = 0
    iterator = progress(videos) if progress else videos
    for video_id, features, centers, instances in iterator:
        labels = action_snippet_labels(np.asarray(centers, dtype=np.float64), instances)
        num_action += int((labels >= 0).sum())
        a_rows, c_rows, sim = pair_video(
            features, labels, min_similarity=min_similarity, top_k=top_k, chunk_size=chunk_size, device=device
        )
        if sim.size == 0:
            continue
        used = np.unique(np.concatenate([a_rows, c_rows]))
        remap = np.full(features.shape[0], -1, dtype=np.int64)
        remap[used] = np.arange(used.size) + offset
        feature_blocks.append(np.asarray(features[used], dtype=np.float32))
        action_index.append(remap[a_rows])
        coupling_index.append(remap[c_rows])
        similarity.append(sim)
        label_id.append(labels[a_rows])
        video_of_pair.append(np.full(sim.size, video_id, dtype=object))
        offset += used.size
    if not similarity:
        raise ConfigError(
            "params.yaml: refactornet.coupling.min_similarity="
            f"{min_similarity} leaves no (action, coupling) pair in any training video; lower it"
        )
    return CouplingSamples(
        features=np.concatenate(feature_blocks),
        action_index=np.concatenate(action_index),
        coupling_index=np.concatenate(coupling_index),
        similarity=np.concatenate(similarity),
        label_id=np.concatenate(label_id),
        video_id=np.concatenate(video_of_pair),
        num_action_samples=num_action,
    )


