"""Write the synthetic benchmark in the ActionFormer THUMOS14 layout::

    <out>/annotations/thumos14.json      {"database": {video_id: {subset, duration, fps, annotations}}}
    <out>/i3d_features/<video_id>.npy    float32 T x 2D (RGB then Flow)
    <out>/latents/<video_id>.npz         per cell: phase, context, instance (+ instance phase bounds)
    <out>/synth_meta.json                classes, families, the resolved ``synth`` configuration, statistics

The folder is written atomically (talbench.io.atomic_dir); ``synth_meta.json`` marks it as this command's
output: an existing folder without it (a user's) is refused, and entries other than these four stay.  Every video has its own random stream
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

from talbench.data.synthetic.config import SynthConfig, parse_config
from talbench.data.synthetic.features import render_features
from talbench.data.synthetic.layout import hard_latents, sample_layout
from talbench.data.synthetic.taxonomy import PHASES, Taxonomy, build_taxonomy
from talbench.io import atomic_dir

SPLITS = (("train", "Validation", "video_validation"), ("test", "Test", "video_test"))
META_FILE = "synth_meta.json"


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


def generate(synth_cfg: dict[str, Any], out: Path, progress: bool = False) -> SynthReport:
    """Generate the benchmark described by ``synth_cfg`` (the resolved ``synth:`` section) into ``out``."""
    cfg = parse_config(synth_cfg)
    began = time.perf_counter()
    out = Path(out)
    taxonomy = build_taxonomy(cfg, np.random.default_rng([cfg.seed, 0, 0]))
    jobs = [
        (split_id, subset, f"{prefix}_{index + 1:07d}", index)
        for split_id, (split, subset, prefix) in enumerate(SPLITS, start=1)
        for index in range(getattr(cfg.videos, split))
    ]
    report = SynthReport(out=out, videos={s: 0 for _, s, _ in SPLITS}, instances={s: 0 for _, s, _ in SPLITS})
    database: dict[str, Any] = {}
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn())
    output = atomic_dir(out, previous_output=lambda p: (p / META_FILE).is_file(), what="the synthetic benchmark")
    with output as tmp, Progress(*columns, disable=not progress, transient=False) as bar:
        (tmp / "annotations").mkdir()
        (tmp / "i3d_features").mkdir()
        (tmp / "latents").mkdir()
        task = bar.add_task("synth", total=len(jobs))
        for split_id, subset, video_id, index in jobs:
            rng = np.random.default_rng([cfg.seed, split_id, index])
            layout = sample_layout(cfg, taxonomy, rng)
            features = render_features(layout, cfg, taxonomy, rng)
            latents = hard_latents(layout, cfg)
            np.save(tmp / "i3d_features" / f"{video_id}.npy", features)
            save_npz(
                tmp / "latents" / f"{video_id}.npz",
                {**latents, "instance_label": layout.label.astype(np.int16), "phase_bounds": layout.bounds},
            )
            database[video_id] = {
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
        (tmp / "annotations" / "thumos14.json").write_text(json.dumps({"database": database}), encoding="utf-8")
        report.seconds = time.perf_counter() - began
        meta = {
            "classes": taxonomy.classes,
            "family_of_class": taxonomy.family_of_class.tolist(),
            "phases": list(PHASES),
            "synth": cfg.model_dump(),
            "statistics": {k: v for k, v in report.as_dict().items() if k not in ("seconds", "bytes_on_disk")},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        report.bytes_on_disk = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    return report
