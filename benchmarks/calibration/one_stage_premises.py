"""Does a generated benchmark hold what CLTDR-GMG's mechanisms need? Numbers for docs/cltdr_gmg.md.

CLTDR-GMG's ablations only have something to measure when the data has (paper sec. "Decoder with CLTDR", E.3):

1. **actions of many lengths**, so that the pyramid levels matter (table 14): each instance is learned on the
   points of the level whose regression range holds its centre point's reach (half its length in cells,
   ranges ``(0, 4), (4, 8), ..., (64, inf)``); reported: duration quantiles and the instances per level;
2. **boundaries finer than the level that regresses them**, so that the finer level ``P^{l-1}`` helps regression
   (DRM, table 9): the width of an instance's boundary transition (the onset and offset phases, in cells) over
   the stride of its level;
3. **classes that need coarse context**, so that the coarser level ``P^{l+1}`` helps classification (DCM,
   table 9): the instance's class-specific key phase seen from its centre point, i.e. whether the key phase lies
   within the centre point's receptive field at its level (the 3-tap head convs reach 3 points, ``3 x stride``
   cells, each side) or only within the coarser level's; and a linear probe of the class among the classes of
   the same family from features averaged over a centred window of 1, 2, 4, ... cells (training videos fit,
   test videos score): accuracy rising with the window = classification helped by coarser context.

``--law PROFILE`` adds the level shares of 100,000 durations drawn from a profile's duration law
(``synth.duration``; no video is generated, so the ``paper`` profile can be read without its 5 GB).
``--variant NAME=JSON`` measures a generator setting the data does not have yet: the ``--profile``'s ``synth``
section with JSON's keys merged in, generated into a temporary folder (deleted afterwards), so what a change
of the generator would give is measured before any table is rerun on it.

Usage (the committed ``one_stage_premises.json`` beside this script is written by the command in
docs/cltdr_gmg.md, "What the smoke data holds")::

    python benchmarks/calibration/one_stage_premises.py --root data/synthetic/smoke [--law paper] \\
        [--variant 'NAME={"context": {"class_share": 0.2}}'] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from talbench.eval.probe import linear_probe
from talbench.io import atomic_write_json
from talbench.runners.one_stage.targets import regression_ranges

LEVELS = 6
HEAD_REACH = 3  # points a 3-layer, kernel-3 head sees on either side
WINDOWS = (1, 2, 4, 8, 16, 32, 64)


def read_benchmark(root: Path):
    meta = json.loads((root / "synth_meta.json").read_text(encoding="utf-8"))
    database = json.loads((root / "annotations" / "thumos14.json").read_text(encoding="utf-8"))["database"]
    return meta, database


def instance_rows(root: Path, meta: dict, database: dict) -> list[dict]:
    """One row per instance: split, video, class, family, length and phases in cells, key-phase offset."""
    synth = meta["synth"]
    stride, clip, fps = synth["feature_stride"], synth["clip_frames"], synth["fps"]

    def cells(seconds):
        return (np.asarray(seconds) * fps - 0.5 * clip) / stride

    rows = []
    for vid, video in database.items():
        with np.load(root / "latents" / f"{vid}.npz") as npz:
            bounds, labels = npz["phase_bounds"], npz["instance_label"]
        for bound, label in zip(bounds, labels, strict=True):
            start, onset_end, key_start, key_end, end = cells(bound)
            centre = 0.5 * (start + end)
            rows.append({
                "split": video["subset"], "video": vid, "label": int(label),
                "family": int(meta["family_of_class"][int(label)]),
                "length": end - start, "onset": onset_end - start, "offset": end - key_end,
                "key_offset": max(key_start - centre, centre - key_end, 0.0),
                "centre": centre,
            })
    return rows


def level_of(reach: float, ranges) -> int:
    for level, (low, high) in enumerate(ranges):
        if low <= reach <= high:
            return level
    return len(ranges) - 1


def probe_by_window(root: Path, rows: list[dict], windows=WINDOWS) -> dict[int, dict]:
    """Class probe among the classes of each family (accuracy pooled over families, test instances) from
    features averaged over a window of ``width`` cells centred on each instance's centre."""
    features: dict[str, np.ndarray] = {}
    out = {}
    for width in windows:
        correct = chance = total = 0.0
        for family in sorted({r["family"] for r in rows}):
            data = {"Validation": ([], []), "Test": ([], [])}
            for row in (r for r in rows if r["family"] == family):
                x = features.setdefault(row["video"], np.load(root / "i3d_features" / f"{row['video']}.npy"))
                centre = round(row["centre"])
                lo, hi = max(centre - width // 2, 0), min(centre - width // 2 + width, x.shape[0])
                data[row["split"]][0].append(x[lo:hi].mean(axis=0))
                data[row["split"]][1].append(row["label"])
            if not data["Validation"][0] or not data["Test"][0]:
                continue
            result = linear_probe(np.stack(data["Validation"][0]), np.asarray(data["Validation"][1]),
                                  np.stack(data["Test"][0]), np.asarray(data["Test"][1]))
            correct += result.accuracy * result.num_test
            chance += result.chance * result.num_test
            total += result.num_test
        out[width] = {"accuracy": correct / total, "chance": chance / total, "num_test": int(total)}
    return out


def measure(root: Path) -> dict:
    meta, database = read_benchmark(root)
    rows = instance_rows(root, meta, database)
    ranges = regression_ranges(LEVELS)
    lengths = np.array([r["length"] for r in rows])
    levels = np.array([level_of(0.5 * r["length"], ranges) for r in rows])
    strides = 2.0 ** levels
    boundary = np.array([min(r["onset"], r["offset"]) for r in rows])
    key_offset = np.array([r["key_offset"] for r in rows])
    fps, stride = meta["synth"]["fps"], meta["synth"]["feature_stride"]
    return {
        "root": str(root),
        "instances": len(rows),
        "cells": int(meta["statistics"]["cells"]),
        "duration_s": {q: float(np.quantile(lengths * stride / fps, p))
                       for q, p in (("min", 0), ("p10", 0.1), ("median", 0.5), ("p90", 0.9), ("max", 1))},
        "instances_per_level": {int(level): int((levels == level).sum()) for level in range(LEVELS)},
        "reach_beyond_level": {f">{int(2 ** (LEVELS + 1))} cells (needs L>{LEVELS})":
                               int((0.5 * lengths > 2 ** (LEVELS + 1)).sum())},
        "boundary_phase_over_stride": {
            q: float(np.quantile(boundary / strides, p)) for q, p in (("p10", 0.1), ("median", 0.5), ("p90", 0.9))},
        "boundary_finer_than_stride": float((boundary < strides).mean()),
        "key_phase_outside_head_reach": float((key_offset > HEAD_REACH * strides).mean()),
        "key_phase_within_coarser_reach": float(((key_offset > HEAD_REACH * strides)
                                                 & (key_offset <= HEAD_REACH * 2 * strides)).mean()),
        "class_probe_by_window_cells": probe_by_window(root, rows),
    }


def law_levels(profile: str, draws: int = 100_000) -> dict:
    """Share of instances per level (centre reach = half the length in cells) under a profile's duration law."""
    from talbench.config import load_params, resolve
    from talbench.data.synthetic.config import parse_config
    from talbench.data.synthetic.layout import sample_durations

    cfg = parse_config(resolve(load_params(), profile)["synth"])
    seconds = sample_durations(cfg, np.random.default_rng(0), draws)
    reach = 0.5 * seconds * cfg.fps / cfg.feature_stride
    levels = np.array([level_of(r, regression_ranges(LEVELS)) for r in reach])
    return {"profile": profile, "duration_s_max": float(seconds.max()),
            "share_per_level": {int(level): float((levels == level).mean()) for level in range(LEVELS)},
            "share_beyond_level_5_range": float((reach > 2 ** (LEVELS + 1)).mean())}


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=JSON`` -> (name, synth overrides); a malformed one is a one-line argparse error."""
    name, sep, overrides = text.partition("=")
    try:
        parsed = json.loads(overrides) if sep and name else None
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--variant {name}: not JSON ({err})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"--variant needs NAME={{synth overrides as a JSON object}}, got '{text}'")
    return name, parsed


def measure_variant(profile: str, overrides: dict[str, Any]) -> dict:
    """Generate ``profile``'s benchmark with ``overrides`` merged into its ``synth`` section in a temporary
    folder and measure it (``cells``: what the change costs the detectors' inference)."""
    from talbench.config import deep_merge, load_params, resolve
    from talbench.data.synthetic import generate

    synth = deep_merge(resolve(load_params(), profile)["synth"], overrides, where="--variant")
    with tempfile.TemporaryDirectory(prefix="one_stage_premises_") as folder:
        generate(synth, Path(folder) / profile)
        result = measure(Path(folder) / profile)
    return {**result, "root": f"profile {profile} with synth_overrides", "synth_overrides": overrides}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/synthetic/smoke"))
    parser.add_argument("--law", action="append", default=[], help="profile whose duration law to sample")
    parser.add_argument("--variant", action="append", default=[], type=parse_variant,
                        help="NAME=JSON: also measure the --profile's data with these synth overrides")
    parser.add_argument("--profile", default="smoke", help="profile the variants start from")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.root)
    result["duration_laws"] = [law_levels(profile) for profile in args.law]
    result["variants"] = {name: measure_variant(args.profile, overrides) for name, overrides in args.variant}
    table = Table(title=f"CLTDR-GMG premises in {args.root}")
    table.add_column("measure")
    table.add_column("value")
    for key, value in result.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    Console().print(table)
    if args.json is not None:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
