"""Write the synthetic benchmark in the ActionFormer THUMOS14 layout (``synth.layout: thumos14``)::

    <out>/annotations/thumos14.json      {"database": {video_id: {subset, duration, fps, annotations}}}
    <out>/i3d_features/<video_id>.npy    float32 T x 2D (RGB then Flow)
    <out>/latents/<video_id>.npz         per cell: phase, context, instance (+ instance phase bounds)
    <out>/synth_meta.json                classes, families, the resolved ``synth`` configuration (later knobs
                                         only where not at their default), statistics

or in the layout of ActionFormer's ActivityNet v1.3 TSP release (``synth.layout: activitynet``, what
:func:`talbench.data.activitynet.open_activitynet` reads): ``annotations/anet1.3_tsp_filtered.json`` (subsets
``training`` / ``validation``, keys without the ``v_`` of the feature files), ``tsp_features/v_<key>.npy``
(T x 2D, read as one stream: a TSP vector carries appearance and motion), ``latents/v_<key>.npz``.

The folder is written atomically (talbench.io.atomic_dir); ``synth_meta.json`` marks it as this command's
output: an existing folder without it (a user's) is refused, and entries other than these stay.  Every video has its own random stream
``default_rng([seed, split, index])``, so a video does not change when the number of videos changes.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from talbench.data.activitynet import ACTIONFORMER_ANNOTATION_FILE, ACTIVITYNET_FILE_PREFIX
from talbench.data.synthetic.config import SynthConfig, parse_config
from talbench.data.synthetic.features import render_features
from talbench.data.synthetic.layout import hard_latents, sample_layout
from talbench.data.synthetic.taxonomy import PHASES, Taxonomy, build_taxonomy
from talbench.io import atomic_dir

LATENTS_DIR = "latents"
META_FILE = "synth_meta.json"


@dataclass(frozen=True)
class OutputLayout:
    """Where a layout puts annotations and features, its subset names and its video ids."""

    annotation_file: str
    feature_dir: str
    subsets: tuple[tuple[str, str, str], ...]  # (split, subset name, key prefix)
    file_prefix: str = ""  # feature / latent files are <file_prefix><key>.npy (ActivityNet: v_)


LAYOUTS = {
    "thumos14": OutputLayout(
        "annotations/thumos14.json", "i3d_features",
        (("train", "Validation", "video_validation"), ("test", "Test", "video_test")),
    ),
    "activitynet": OutputLayout(
        f"annotations/{ACTIONFORMER_ANNOTATION_FILE}", "tsp_features",
        (("train", "training", "training"), ("test", "validation", "validation")), ACTIVITYNET_FILE_PREFIX,
    ),
}


@dataclass
class SynthReport:
    """What :func:`generate` wrote; ``summary()`` is a rich table."""

    out: Path
    videos: dict[str, int] = field(default_factory=dict)  # subset -> videos
    instances: dict[str, int] = field(default_factory=dict)  # subset -> instances
    cells: int = 0
    background_cells: int = 0
    bytes_on_disk: int = 0
    seconds: float = 0.0

    @property
    def background_fraction(self) -> float:
        return self.background_cells / max(self.cells, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "videos": self.videos, "instances": self.instances, "cells": self.cells,
            "background_fraction": round(self.background_fraction, 4),
            "bytes_on_disk": self.bytes_on_disk, "seconds": round(self.seconds, 2),
        }

    def summary(self) -> Table:
        table = Table(title=f"synthetic benchmark -> {self.out}", min_width=72)
        table.add_column("subset")
        table.add_column("videos", justify="right")
        table.add_column("instances", justify="right")
        for subset, count in self.videos.items():
            table.add_row(subset, str(count), str(self.instances[subset]))
        table.add_row("total", str(sum(self.videos.values())), str(sum(self.instances.values())), end_section=True)
        table.caption = (
            f"{self.cells} cells, background {100 * self.background_fraction:.1f}%, "
            f"{self.bytes_on_disk / 2**20:.1f} MiB on disk, {self.seconds:.1f} s"
        )
        return table


def _annotation(cfg: SynthConfig, taxonomy: Taxonomy, start: float, end: float, label: int) -> dict[str, Any]:
    return {
        "label": taxonomy.classes[label],
        "segment": [round(float(start), 2), round(float(end), 2)],
        "segment(frames)": [round(float(start) * cfg.fps, 1), round(float(end) * cfg.fps, 1)],
        "label_id": int(label),
    }


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so that the same seed gives the same bytes
    (``np.savez*`` stamps the current time; DVC caches by content)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def read_latents(feature_dir: str | Path, video_id: str) -> dict[str, np.ndarray] | None:
    """A video's sidecar ``latents/<video_id>.npz`` (beside the feature folder), or None where there is none
    (real data)."""
    path = Path(feature_dir).parent / LATENTS_DIR / f"{video_id}.npz"
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def generate(synth_cfg: dict[str, Any], out: Path, progress: bool = False) -> SynthReport:
    """Generate the benchmark described by ``synth_cfg`` (the resolved ``synth:`` section) into ``out``."""
    cfg = parse_config(synth_cfg)
    began = time.perf_counter()
    out = Path(out)
    taxonomy = build_taxonomy(cfg, np.random.default_rng([cfg.seed, 0, 0]))
    files = LAYOUTS[cfg.layout]
    jobs = [
        (split_id, subset, f"{prefix}_{index + 1:07d}", index)
        for split_id, (split, subset, prefix) in enumerate(files.subsets, start=1)
        for index in range(getattr(cfg.videos, split))
    ]
    subsets = [subset for _, subset, _ in files.subsets]
    report = SynthReport(out=out, videos=dict.fromkeys(subsets, 0), instances=dict.fromkeys(subsets, 0))
    database: dict[str, Any] = {}
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn())
    output = atomic_dir(out, previous_output=lambda p: (p / META_FILE).is_file(), what="the synthetic benchmark")
    with output as tmp, Progress(*columns, disable=not progress, transient=False) as bar:
        (tmp / "annotations").mkdir()
        (tmp / files.feature_dir).mkdir()
        (tmp / LATENTS_DIR).mkdir()
        task = bar.add_task("synth", total=len(jobs))
        for split_id, subset, key, index in jobs:
            video_id = files.file_prefix + key  # the dataset's id: the feature file's name
            rng = np.random.default_rng([cfg.seed, split_id, index])
            layout = sample_layout(cfg, taxonomy, rng)
            features = render_features(layout, cfg, taxonomy, rng)
            latents = hard_latents(layout, cfg)
            np.save(tmp / files.feature_dir / f"{video_id}.npy", features)
            save_npz(
                tmp / LATENTS_DIR / f"{video_id}.npz",
                {**latents, "instance_label": layout.label.astype(np.int16), "phase_bounds": layout.bounds},
            )
            database[key] = {
                "subset": subset,
                "duration": round(layout.duration, 4),
                "fps": cfg.fps,
                "annotations": [
                    _annotation(cfg, taxonomy, s, e, y)
                    for s, e, y in zip(layout.start, layout.end, layout.label, strict=True)
                ],
            }
            report.videos[subset] += 1
            report.instances[subset] += int(layout.label.size)
            report.cells += layout.num_cells
            report.background_cells += int((latents["phase"] == 0).sum())
            bar.advance(task)
        (tmp / files.annotation_file).write_text(json.dumps({"database": database}), encoding="utf-8")
        report.seconds = time.perf_counter() - began
        meta = {
            "layout": cfg.layout,
            "classes": taxonomy.classes,
            "family_of_class": taxonomy.family_of_class.tolist(),
            "phases": list(PHASES),
            # knobs added later (with defaults) are recorded only where set otherwise: a dataset generated before
            # them keeps its bytes, and so its md5 in dvc.lock
            "synth": cfg.model_dump(exclude_defaults=True),
            "statistics": {k: v for k, v in report.as_dict().items() if k not in ("seconds", "bytes_on_disk")},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        report.bytes_on_disk = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    return report
