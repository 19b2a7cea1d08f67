"""``FeatureDataset``: pre-extracted snippet features plus annotations (the ActionFormer data layout).

Features are ``<feature_dir>/<video_id>.npy``, float32 ``T x C``. For THUMOS14 I3D, ``C = 2 * 1024``
(RGB then Flow), 16-frame clips taken every 4 frames at the video's fps, so the centre of cell ``i`` is
``(i * 4 + 8) / fps`` seconds (ActionFormer: ``feat_stride * i + 0.5 * num_frames``, divided by fps).

Validation is lazy but complete: a video's array is checked (shape, dimension, NaN/Inf, length) the
first time it is loaded, and :meth:`FeatureDataset.validate_all` checks every file at once. Missing
feature files are found when the dataset opens, all listed in one error.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

from talbench.data.annotations import (
    SPLITS,
    Annotations,
    ValidationReport,
    apply_segment_policy,
    holdout_split,
)
from talbench.errors import DataError


@dataclass(frozen=True)
class FeatureLayout:
    """Where the features are and how their columns and cells map to streams and time."""

    feature_dir: Path
    streams: dict[str, tuple[int, int]]  # stream name -> [first, last) column
    width: int  # columns of every feature file
    stride: int  # frames between consecutive cells
    clip_frames: int  # frames per clip
    feature_fps: float | None = None  # grid fps when it is not the video's (ActivityNet TSP: 15)

    @classmethod
    def two_stream(cls, feature_dir: Path, dim: int, stride: int, clip_frames: int) -> FeatureLayout:
        """RGB columns ``[0, dim)`` then Flow ``[dim, 2 dim)`` (ActionFormer's THUMOS14 I3D files)."""
        streams = {"rgb": (0, dim), "flow": (dim, 2 * dim), "both": (0, 2 * dim)}
        return cls(Path(feature_dir), streams, 2 * dim, stride, clip_frames)


class FeatureDataset:
    """Videos, splits, features and ground truth of one benchmark (see docs/architecture.md)."""

    def __init__(
        self,
        annotations: Annotations,
        layout: FeatureLayout,
        *,
        segment_policy: str = "clip",
        min_snippets: int = 8,
        blocked: Iterable[str] = (),
        holdout_fraction: float = 0.2,
        holdout_seed: int = 0,
        cache_mb: float = 4096,
        name: str = "dataset",
    ) -> None:
        self.name = name
        self.annotations = annotations
        self.layout = layout
        self.min_snippets = int(min_snippets)
        self.classes: list[str] = list(annotations.classes)
        self._videos = annotations.videos
        blocked_set = set(blocked)
        self._blocked = sorted(v for v in self._videos.index if v in blocked_set)
        self._instances, self.report = apply_segment_policy(annotations, segment_policy)
        self.report.blocked_videos = list(self._blocked)
        usable = self._videos.index.difference(self._blocked, sort=False)
        self._splits: dict[str, list[str]] = {
            split: sorted(usable[self._videos.loc[usable, "split"] == split]) for split in ("train", "test")
        }
        self._splits["train_fit"], self._splits["holdout"] = holdout_split(
            self._splits["train"], holdout_fraction, holdout_seed
        )
        self._check_files_exist()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = int(cache_mb * 2**20)

    # ------------------------------------------------------------------ videos and splits
    def video_ids(self, split: str) -> list[str]:
        """Sorted video ids of ``split`` (train, test, train_fit, holdout); blocked videos excluded."""
        if split not in self._splits:
            raise DataError.at(
                self.annotations.file, f"unknown split '{split}' (known: {', '.join(SPLITS)})", field="split"
            )
        return list(self._splits[split])

    @property
    def videos(self) -> pd.DataFrame:
        """One row per annotated video: ``subset, split, duration, fps`` (index ``video_id``)."""
        return self._videos.copy()

    def duration(self, video_id: str) -> float:
        return float(self._video_row(video_id)["duration"])

    def fps(self, video_id: str) -> float:
        """Frame rate of the feature grid (the video's fps, or the fixed feature fps of the layout)."""
        return float(self.layout.feature_fps or self._video_row(video_id)["fps"])

    def stream_dim(self, stream: str) -> int:
        first, last = self._stream_columns(stream)
        return last - first

    @property
    def streams(self) -> list[str]:
        return list(self.layout.streams)

    # ------------------------------------------------------------------ features
    def feature_path(self, video_id: str) -> Path:
        return self.layout.feature_dir / f"{video_id}.npy"

    def features(self, video_id: str, stream: str = "both") -> np.ndarray:
        """Float32 ``(T, D)`` features of one stream (read-only view of the cached, validated array)."""
        first, last = self._stream_columns(stream)
        return self._load(video_id)[:, first:last]

    def num_snippets(self, video_id: str) -> int:
        return int(self._load(video_id).shape[0])

    def snippet_centers(self, video_id: str) -> np.ndarray:
        """Centre time (s) of every feature cell: ``(i * stride + clip_frames / 2) / fps``."""
        cells = np.arange(self.num_snippets(video_id), dtype=np.float64)
        return (cells * self.layout.stride + 0.5 * self.layout.clip_frames) / self.fps(video_id)

    def validate_all(self, progress: bool = True) -> ValidationReport:
        """Load and check every feature file; one :class:`DataError` lists every problem found."""
        problems = []
        videos = self._splits["train"] + self._splits["test"]
        for video_id in track(videos, description=f"validating {self.name} features", disable=not progress):
            try:
                self._read(video_id)
            except DataError as err:
                problems.append(str(err))
        if problems:
            raise DataError(
                f"{len(problems)} of {len(videos)} feature files are invalid:\n" + "\n".join(problems)
            )
        return self.report

    # ------------------------------------------------------------------ ground truth
    def instances(self, split: str) -> pd.DataFrame:
        """Action instances ``video_id, label, label_id, start, end`` (s) of ``split``.

        Training-side splits carry the segment policy and exclude blocked videos; the test split is the
        evaluation ground truth exactly as annotated (every test video, every annotation).
        """
        if split == "test":
            test_videos = self._videos.index[self._videos["split"] == "test"]
            table = self.annotations.instances[self.annotations.instances["video_id"].isin(test_videos)]
        else:
            table = self._instances[self._instances["video_id"].isin(self.video_ids(split))]
        return table.sort_values(["video_id", "start", "end"], kind="stable").reset_index(drop=True)

    # ------------------------------------------------------------------ fingerprint
    def checksum(self) -> str:
        """Cheap, stable fingerprint: annotation file bytes, feature file names and sizes, blocked ids."""
        digest = hashlib.sha1(self.annotations.file.read_bytes())
        for entry in sorted(self.layout.feature_dir.glob("*.npy")):
            digest.update(f"{entry.name}:{entry.stat().st_size}\n".encode())
        digest.update(",".join(self._blocked).encode())
        return digest.hexdigest()[:12]

    # ------------------------------------------------------------------ internals
    def _video_row(self, video_id: str) -> pd.Series:
        try:
            return self._videos.loc[video_id]
        except KeyError:
            raise DataError.at(
                self.annotations.file, "video is not in the annotations", video=video_id
            ) from None

    def _stream_columns(self, stream: str) -> tuple[int, int]:
        if stream not in self.layout.streams:
            raise DataError.at(
                self.layout.feature_dir,
                f"unknown stream '{stream}' (known: {', '.join(self.layout.streams)})",
                field="stream",
            )
        return self.layout.streams[stream]

    def _check_files_exist(self) -> None:
        folder = self.layout.feature_dir
        if not folder.is_dir():
            raise DataError.at(folder, "feature folder not found", field="feature_dir")
        present = {p.name for p in folder.iterdir()}
        wanted = self._splits["train"] + self._splits["test"]
        missing = [v for v in wanted if f"{v}.npy" not in present]
        if missing:
            raise DataError.at(
                folder,
                f"{len(missing)} of {len(wanted)} feature files are missing: "
                f"{', '.join(v + '.npy' for v in missing)} (list them in data.missing_files to "
                "skip them, as OpenTAD's missing_files.txt)",
                field="features",
            )

    def _load(self, video_id: str) -> np.ndarray:
        if video_id in self._cache:
            self._cache.move_to_end(video_id)
            return self._cache[video_id]
        array = self._read(video_id)
        array.setflags(write=False)
        self._cache[video_id] = array
        self._cache_bytes += array.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= evicted.nbytes
        return array

    def _read(self, video_id: str) -> np.ndarray:
        """Read and validate one feature file."""
        self._video_row(video_id)
        if video_id in self._blocked:
            raise DataError.at(
                self.feature_path(video_id), "video is blocked (data.missing_files)", video=video_id
            )
        path = self.feature_path(video_id)
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError.at(path, "feature file not found", video=video_id, field="features") from None
        except ValueError as err:
            raise DataError.at(
                path, f"not a readable .npy array: {err}", video=video_id, field="features"
            ) from None
        if array.ndim != 2 or array.shape[1] != self.layout.width:
            raise DataError.at(
                path,
                f"expected shape (T, {self.layout.width}), got {array.shape}",
                video=video_id,
                field="feature_dim",
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError.at(
                path, f"expected floating point features, got {array.dtype}", video=video_id, field="dtype"
            )
        array = np.ascontiguousarray(array, dtype=np.float32)
        finite = np.isfinite(array)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.all(axis=1))
            raise DataError.at(
                path,
                f"{int((~finite).sum())} NaN/Inf values in {bad_rows.size} snippets "
                f"(first at snippet {int(bad_rows[0])})",
                video=video_id,
                field="features",
            )
        if array.shape[0] < self.min_snippets:
            raise DataError.at(
                path,
                f"{array.shape[0]} snippets, fewer than data.min_snippets = {self.min_snippets}",
                video=video_id,
                field="num_snippets",
            )
        return array
