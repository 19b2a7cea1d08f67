"""Full-sequence data of the one-stage detectors: whole videos on the feature grid, the training crop, padded
and masked batches (ActionFormer's ``libs/datasets/thumos14.py``, ``data_utils.truncate_feats`` and the
``preprocessing`` of ``meta_archs.py``, shared by TriDet, TemporalMaxer and CLTDR-GMG; facts sec. 3 and 6).

* **Feature-grid coordinates.** Cell ``i`` of a video is the clip of frames ``[i s, i s + n)`` (``s`` the feature
  stride, ``n`` the frames per clip), centred at ``(i s + n / 2) / fps`` seconds. A time ``t`` maps to the grid
  as ``(t fps - n / 2) / s`` (the official ``(segment * fps - 0.5 * num_frames) / feat_stride``) and back as
  ``(x s + n / 2) / fps``: on THUMOS14 I3D ``s = 4``, ``n = 16``.
* **Training crop** (:func:`crop_for_training`, official ``truncate_feats`` with ``has_action``): a video longer
  than ``max_seq_len`` cells is cut to a random window of ``max_seq_len`` cells; a shorter one, when
  ``crop_ratio`` is given ([0.9, 1.0] on THUMOS14), to a random window of ``round(r T)`` cells with ``r`` drawn in
  the ratio range (applied to short videos too). A window is redrawn (up to 200 times) until some action keeps at
  least ``trunc_thresh`` (0.5) of its length inside the window widened by ``offset = n / (2 s)`` cells on each
  side; actions below that are dropped, the others clipped to the widened window and shifted to its start. The
  official code draws from Python's ``random``; here a NumPy generator seeded by (seed, epoch) draws, so a seed
  gives the same crops on every run.
* **Batches.** Training pads every video of a batch to ``max_seq_len`` (the official ``preprocessing``; the
  padded length is what the GMG's FFT, SGP's mean, GroupNorm and CLTDR's pooling see) and adds Gaussian input noise
  of std ``input_noise`` to the whole padded batch. Inference runs each video alone in the official code, padded to
  ``max_seq_len`` when shorter, else to the next multiple of ``max_div_factor`` (the largest stride, ``2^(L-1)``);
  here videos with the same padded length share a batch, which changes no output (no layer mixes samples).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from talbench.errors import DataError

TRUNCATION_TRIALS = 200  # official max_num_trials


@dataclass(frozen=True)
class GridTimes:
    """How a video's feature grid maps to seconds: ``t = (x * stride + clip_frames / 2) / fps``."""

    fps: float
    stride: int
    clip_frames: int

    def to_grid(self, seconds: np.ndarray) -> np.ndarray:
        return (np.asarray(seconds, dtype=np.float64) * self.fps - 0.5 * self.clip_frames) / self.stride

    def to_seconds(self, grid: np.ndarray) -> np.ndarray:
        return (np.asarray(grid, dtype=np.float64) * self.stride + 0.5 * self.clip_frames) / self.fps

    @property
    def offset(self) -> float:
        """Half a clip in cells, the window widening of the training crop (``0.5 * num_frames / feat_stride``)."""
        return 0.5 * self.clip_frames / self.stride


@dataclass
class VideoSequence:
    """One whole video: ``features`` float32 ``(C, T)``, ground truth ``segments`` ``(N, 2)`` on the grid (float64)
    with ``labels`` ``(N,)``, its grid-to-seconds map and duration (s)."""

    video_id: str
    features: torch.Tensor
    segments: np.ndarray
    labels: np.ndarray
    times: GridTimes
    duration: float

    @property
    def length(self) -> int:
        return int(self.features.shape[-1])


def load_sequences(dataset, video_ids: Sequence[str], split: str, stream: str) -> list[VideoSequence]:
    """The videos ``video_ids`` of ``split`` with their ground truth on the feature grid."""
    gt = dataset.instances(split)
    by_video = {vid: group for vid, group in gt.groupby("video_id", sort=False)}
    stride, clip_frames = dataset.layout.stride, dataset.layout.clip_frames
    videos = []
    for vid in video_ids:
        features = np.asarray(dataset.features(vid, stream), dtype=np.float32)
        times = GridTimes(dataset.fps(vid), stride, clip_frames)
        group = by_video.get(vid)
        if group is None:
            segments, labels = np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
        else:
            segments = times.to_grid(group[["start", "end"]].to_numpy(dtype=np.float64))
            labels = group["label_id"].to_numpy(dtype=np.int64)
        videos.append(VideoSequence(vid, torch.from_numpy(features.T.copy()), segments, labels, times,
                                    dataset.duration(vid)))
    return videos


@dataclass
class Crop:
    """A training window: features ``(C, T')`` and the ground truth inside it, shifted to its start."""

    features: torch.Tensor
    segments: np.ndarray
    labels: np.ndarray


def crop_for_training(
    video: VideoSequence,
    max_seq_len: int,
    trunc_thresh: float,
    crop_ratio: Sequence[float] | None,
    rng: np.random.Generator,
) -> Crop:
    """The official ``truncate_feats`` (module docstring) for one video."""
    length = video.length
    window = max_seq_len
    if length <= max_seq_len:
        if crop_ratio is None:
            return Crop(video.features, video.segments, video.labels)
        low = max(round(crop_ratio[0] * length), 1)  # Python's round (half to even), as the official code
        high = min(round(crop_ratio[1] * length), length)
        window = int(rng.integers(low, high + 1))
        if window == length:
            return Crop(video.features, video.segments, video.labels)
    segments, offset = video.segments, video.times.offset
    lengths = np.abs(segments[:, 1] - segments[:, 0])
    for _ in range(TRUNCATION_TRIALS):
        start = int(rng.integers(0, length - window + 1))
        left = np.maximum(start - offset, segments[:, 0])
        right = np.minimum(start + window + offset, segments[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = np.clip(right - left, 0.0, None) / lengths >= trunc_thresh
        if keep.any():
            break
    kept = np.stack([left[keep], right[keep]], axis=1) - start
    return Crop(video.features[:, start:start + window], kept.reshape(-1, 2), video.labels[keep])


def padded_batch(features: Sequence[torch.Tensor], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, length)`` zero-padded features and the bool mask ``(B, 1, length)`` (True = a real cell)."""
    lengths = torch.tensor([f.shape[-1] for f in features])
    if int(lengths.max()) > length:
        raise ValueError(f"a sequence of {int(lengths.max())} cells does not fit the padded length {length}")
    batch = features[0].new_zeros(len(features), features[0].shape[0], length)
    for row, f in zip(batch, features, strict=True):
        row[:, : f.shape[-1]] = f
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return batch, mask[:, None, :]


def inference_length(length: int, max_seq_len: int, max_div_factor: int) -> int:
    """The padded length of a video at inference: ``max_seq_len`` if it fits, else the next multiple of
    ``max_div_factor``."""
    if length <= max_seq_len:
        return max_seq_len
    return -(-length // max_div_factor) * max_div_factor


def inference_batches(
    videos: Sequence[VideoSequence], max_seq_len: int, max_div_factor: int, batch_size: int
) -> Iterator[tuple[list[VideoSequence], torch.Tensor, torch.Tensor]]:
    """Batches of up to ``batch_size`` videos with the same padded length (videos in their given order within a
    length): ``(videos, features, mask)``."""
    by_length: dict[int, list[VideoSequence]] = {}
    for video in videos:
        by_length.setdefault(inference_length(video.length, max_seq_len, max_div_factor), []).append(video)
    for length, group in by_length.items():
        for first in range(0, len(group), batch_size):
            chunk = group[first:first + batch_size]
            features, mask = padded_batch([v.features for v in chunk], length)
            yield chunk, features, mask


def check_training_videos(videos: Sequence[VideoSequence], where: str) -> None:
    """Training needs at least one video with an action."""
    if not any(v.segments.shape[0] for v in videos):
        raise DataError.at(where, "no training video has an annotated action", field="run.train_split")
