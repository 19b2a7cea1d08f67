"""``FeatureDataset``: pre-extracted snippet features plus annotations (the ActionFormer data layout).

Features are ``<feature_dir>/<video_id>.npy``, float32 ``T x C``. For THUMOS14 I3D, ``C = 2 * 1024``
(RGB then Flow), 16-frame clips taken every 4 frames at the video's fps, so the centre of cell ``i`` is
``(i * 4 + 8) / fps`` seconds (ActionFormer: ``feat_stride * i + 0.5 * num_frames``, divided by fps).

Validation is complete, and as early as it can be: when the dataset opens, missing feature files (counted in
one error line, listed in full in ``scratch/missing_files.txt``, a block list ready for
``data.missing_files``), every file's ``.npy`` header (a NumPy file, shape, dimension, dtype, length) and the
splits (training and test videos, training instances) are checked, so ``talbench run`` fails before it
creates any run; NaN/Inf need the data and are checked the first time a video is loaded
(:meth:`FeatureDataset.validate_all` loads every file at once).

Memory: a file is read through a memory map (``np.load(mmap_mode="r")``) and only the columns of the stream
asked for are copied out; the copies live in an LRU cache bounded by ``data.cache_mb`` (one entry per video and
stream), the map is closed after the copy, and the NaN/Inf check walks the map in blocks of rows. What a process
holds of the features is thus the cache plus what the caller keeps; the operating system's page cache, not the
process, keeps the files themselves (docs/pipeline.md states the peak memory of a `paper` row).

:meth:`FeatureDataset.checksum` fingerprints the *contents* of the files it reads, so features changed in
place (same names, same shapes) are new data: no run or checkpoint of the old ones is reused. A file's hash
is cached by path, size, modification and change time (``<cache dir>/feature_hashes.json``), so a rerun
does not reread gigabytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

from talbench.config import SCRATCH_DIR, cache_dir
from talbench.data.annotations import (
    SPLITS,
    Annotations,
    ValidationReport,
    apply_segment_policy,
    holdout_split,
)
from talbench.errors import DataError
from talbench.io import atomic_write_json, atomic_write_text

NPY_MAGIC = b"\x93NUMPY"
CHECK_ROWS = 4096  # rows of a memory-mapped file checked for NaN/Inf at a time
MISSING_SHOWN = 5  # missing feature files named in the error line (all of them go to the list file)
HASH_CACHE = "feature_hashes.json"


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
        self._lengths: dict[str, int] = {}  # cells per video, from the headers
        self._finite: set[str] = set()  # videos whose file passed the NaN/Inf check
        self._check_not_empty()
        self._check_files_exist()
        self._check_headers()
        self._checksum: str | None = None
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
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
        """Float32 ``(T, D)`` features of one stream: a read-only copy of the stream's columns of the validated
        file, read through a memory map, cached (LRU, ``data.cache_mb``)."""
        first, last = self._stream_columns(stream)
        key = (video_id, stream)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        mapped = self._map(video_id)
        array = np.array(mapped[:, first:last], dtype=np.float32, order="C")  # copies this stream's columns only
        del mapped
        array.setflags(write=False)
        self._cache[key] = array
        self._cache_bytes += array.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= evicted.nbytes
        return array

    def num_snippets(self, video_id: str) -> int:
        if video_id not in self._lengths:
            self._map(video_id)  # an unknown or blocked video: its error
        return self._lengths[video_id]

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
                self._map(video_id)
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
        """Stable fingerprint of what the dataset reads: the annotation file's bytes, the contents of every
        usable video's feature file and the blocked ids (computed once per dataset; file hashes cached)."""
        if self._checksum is None:
            videos = sorted(self._splits["train"] + self._splits["test"])
            hashes = file_hashes([self.feature_path(v) for v in videos])
            digest = hashlib.sha1(self.annotations.file.read_bytes())
            for video in videos:
                digest.update(f"{video}:{hashes[self.feature_path(video)]}\n".encode())
            digest.update(",".join(self._blocked).encode())
            self._checksum = digest.hexdigest()[:12]
        return self._checksum

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

    def _check_not_empty(self) -> None:
        """Usable training videos with annotations, and test videos, must exist: without them every runner
        fails later, deep inside, after its MLflow runs were created. (Blocked test videos still count: their
        annotations stay in the evaluation ground truth.)"""
        file = self.annotations.file
        if not self._splits["train"]:
            raise DataError.at(file, "no training video (subset Validation / training; blocked videos excluded): "
                               "nothing to train on", field="database")
        if not (self._videos["split"] == "test").any():
            raise DataError.at(file, "no test video (subset Test / validation): nothing to evaluate on",
                               field="database")
        if not self._instances["video_id"].isin(self._splits["train"]).any():
            raise DataError.at(file, f"none of the {len(self._splits['train'])} training videos has an "
                               "annotation (after the segment policy): nothing to train on", field="annotations")

    def _check_files_exist(self) -> None:
        folder = self.layout.feature_dir
        if not folder.is_dir():
            raise DataError.at(folder, "feature folder not found", field="feature_dir")
        present = {p.name for p in folder.iterdir()}
        wanted = self._splits["train"] + self._splits["test"]
        missing = [v for v in wanted if f"{v}.npy" not in present]
        if missing:
            listing = SCRATCH_DIR / "missing_files.txt"
            atomic_write_text(listing, "".join(f"{v}.npy\n" for v in missing))
            shown = ", ".join(v + ".npy" for v in missing[:MISSING_SHOWN])
            more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
            raise DataError.at(
                folder,
                f"{len(missing)} of {len(wanted)} feature files are missing: {shown}{more}; all listed in "
                f"{listing}: to skip them, set data.missing_files: {listing.resolve()} (OpenTAD's "
                "missing_files.txt)",
                field="features",
            )

    def _check_headers(self) -> None:
        """Every feature file's ``.npy`` header (its first bytes; the data is memory-mapped, not read): an empty,
        foreign or object file, a wrong shape or dtype or too few snippets is an error when the dataset
        opens, before any run is created. NaN/Inf need the data: they are checked on a video's first load."""
        for video_id in self._splits["train"] + self._splits["test"]:
            path = self.feature_path(video_id)
            header = read_npy(path, video_id, mmap=True)
            self._check_array(path, video_id, header)
            self._lengths[video_id] = int(header.shape[0])

    def _check_array(self, path: Path, video_id: str, array: np.ndarray) -> None:
        """Shape ``(T, width)``, floating point and at least ``data.min_snippets`` cells."""
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
        if array.shape[0] < self.min_snippets:
            raise DataError.at(
                path,
                f"{array.shape[0]} snippets, fewer than data.min_snippets = {self.min_snippets}",
                video=video_id,
                field="num_snippets",
            )

    def _map(self, video_id: str) -> np.ndarray:
        """One feature file, memory-mapped and validated (shape and dtype; NaN/Inf the first time, walking the
        map ``CHECK_ROWS`` rows at a time, so that no copy of the whole file is made)."""
        self._video_row(video_id)
        if video_id in self._blocked:
            raise DataError.at(
                self.feature_path(video_id), "video is blocked (data.missing_files)", video=video_id
            )
        path = self.feature_path(video_id)
        mapped = read_npy(path, video_id, mmap=True)
        self._check_array(path, video_id, mapped)
        self._lengths[video_id] = int(mapped.shape[0])
        if video_id not in self._finite:
            bad_values, bad_rows = 0, []
            for begin in range(0, mapped.shape[0], CHECK_ROWS):
                finite = np.isfinite(mapped[begin : begin + CHECK_ROWS])
                bad_values += int((~finite).sum())
                bad_rows.append(begin + np.flatnonzero(~finite.all(axis=1)))
            if bad_values:
                rows = np.concatenate(bad_rows)
                raise DataError.at(
                    path,
                    f"{bad_values} NaN/Inf values in {rows.size} snippets (first at snippet {int(rows[0])})",
                    video=video_id,
                    field="features",
                )
            self._finite.add(video_id)
        return mapped


def read_npy(path: Path, video_id: str, mmap: bool = False) -> np.ndarray:
    """The array in a ``.npy`` file (memory-mapped with ``mmap``: only the header is read); a DataError naming
    the file and video when it is missing, empty, not a NumPy file, holds Python objects or is truncated
    (never numpy's advice to load it with pickle)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise DataError.at(path, "feature file not found", video=video_id, field="features") from None
    except OSError as err:
        raise DataError.at(path, f"cannot read the file: {err.strerror}", video=video_id, field="features") from None
    if magic != NPY_MAGIC:
        what = "empty file (0 bytes)" if not magic else "not a NumPy .npy file (no .npy header)"
        raise DataError.at(path, what, video=video_id, field="features")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as err:
        problem = ("holds Python objects, not numbers" if "pickle" in str(err) or "Python objects" in str(err)
                   else f"unreadable or truncated .npy array ({err})")
        raise DataError.at(path, problem, video=video_id, field="features") from None
    except (EOFError, OSError) as err:
        raise DataError.at(path, f"truncated .npy file ({err})", video=video_id, field="features") from None


def file_hashes(paths: list[Path]) -> dict[Path, str]:
    """sha1 of each file's contents, streamed; cached in ``<cache dir>/feature_hashes.json`` by absolute path,
    size, modification and change time (a file rewritten in place changes its change time), so a rerun
    rereads only new or changed files."""
    cache_file = cache_dir() / HASH_CACHE
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    out, changed = {}, False
    for path in paths:
        stat = path.stat()
        key = str(path.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
        entry = cache.get(key)
        if entry is None or entry[:3] != stamp:
            entry = cache[key] = [*stamp, file_sha1(path)]
            changed = True
        out[path] = entry[3]
    if changed:
        atomic_write_json(cache_file, cache)
    return out


def file_sha1(path: Path) -> str:
    """sha1 of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
