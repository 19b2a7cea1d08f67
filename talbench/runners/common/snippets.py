"""16-frame snippets of a video's features for the proposal-level detectors (D-Net AAAI 2022 implementation
details: "the interval between snippets is set to 16 frames").

The release has one feature cell every 4 frames, so each 4 consecutive cells are **average-pooled** into one
snippet (every frame still contributes, unlike subsampling, which would drop 3 of 4 cells); the snippet time is
the mean of its cells' centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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


@dataclass
class VideoSnippets:
    """One video's 16-frame snippet features for one stream (on the row's device), their times and the video
    max-pool (eq. 9)."""

    features: torch.Tensor  # (T', D)
    centers: np.ndarray  # (T',)
    video_global: torch.Tensor  # (D,)


def load_snippets(dataset, video_ids: list[str], stream: str, factor: int,
                  device: torch.device | str = "cpu") -> dict[str, VideoSnippets]:
    """16-frame snippets of every video for one stream (cells average-pooled by ``factor`` on the CPU), kept
    on ``device``: the detectors' batches are gathered from them there."""
    videos = {}
    for vid in video_ids:
        pooled, centers = pool_snippets(np.asarray(dataset.features(vid, stream), dtype=np.float32),
                                        np.asarray(dataset.snippet_centers(vid), dtype=np.float64), factor)
        features = torch.from_numpy(pooled).to(device)
        videos[vid] = VideoSnippets(features, centers, features.amax(dim=0))  # D-Net eq. 9: f_g = max_t x_t
    return videos
