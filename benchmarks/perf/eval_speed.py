"""Evaluation speed: 200k synthetic predictions vs the real THUMOS14 test GT at 5 tIoU thresholds.

Predictions are generated (seeded) around the real GT: 70% jittered copies of a GT instance (80% with its
label), 30% random segments on random test videos and classes; scores rounded to 3 decimals (ties). Timed in
one script, on the same predictions:

* the official ActivityNet loop (``tests/helpers/eval_reference.py``, the Python-3 port, serial), on every
  prediction (``--reference-videos 0``, the default: about two minutes) or on a seeded subset of videos,
  extrapolated per prediction;
* talbench's matching alone (``evaluate_detection`` on the in-memory predictions);
* ``talbench eval`` end to end in this process (``evaluate_files``: read the GT and the prediction JSON,
  evaluate; no printing), and as a command (``python -m talbench.cli eval``: interpreter start-up, imports
  and exit included).

talbench's timings are the median of ``--repeat`` runs (the machine's load average is printed with them).
Both sides run with the official tie order, so their mAPs must agree; the canonical order is timed too.

    python benchmarks/perf/eval_speed.py [--n 200000] [--reference-videos 0] [--seed 0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.eval_reference import reference_map

from talbench.eval.detection import evaluate_detection
from talbench.eval.io import load_ground_truth, predictions_to_json
from talbench.eval.report import evaluate_files

GT_FILE = ROOT.parent / "shared" / "data" / "thumos14" / "annotations" / "thumos14.json"
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]


def synthetic_predictions(gt: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.asarray(pd.unique(gt["label"]), dtype=object)
    videos = np.asarray(pd.unique(gt["video_id"]), dtype=object)
    n_near = int(0.7 * n)
    base = gt.iloc[rng.integers(0, len(gt), n_near)]
    length = (base["end"] - base["start"]).to_numpy()
    start = base["start"].to_numpy() + rng.normal(0, 0.25, n_near) * length
    end = base["end"].to_numpy() + rng.normal(0, 0.25, n_near) * length
    label = np.where(rng.random(n_near) < 0.8, base["label"].to_numpy(dtype=object),
                     rng.choice(labels, n_near))
    n_far = n - n_near
    far_start = rng.uniform(0, 200, n_far)
    pred = pd.DataFrame({
        "video_id": np.concatenate([base["video_id"].to_numpy(dtype=object), rng.choice(videos, n_far)]),
        "label": np.concatenate([label, rng.choice(labels, n_far)]),
        "start": np.concatenate([start, far_start]),
        "end": np.concatenate([end, far_start + rng.uniform(1, 20, n_far)]),
        "score": np.round(rng.uniform(0, 1, n), 3),
    })
    return pred.iloc[rng.permutation(n)].reset_index(drop=True)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def median_timed(repeat: int, function, *args, **kwargs):
    """The last value of ``repeat`` calls and the median of their times."""
    runs = [timed(function, *args, **kwargs) for _ in range(repeat)]
    return runs[-1][0], statistics.median(seconds for _, seconds in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--reference-videos", type=int, default=0, help="0: the official loop on every video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="talbench's timings: the median of this many runs")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # subsets lack some GT classes: their predictions are ignored

    gt = load_ground_truth(GT_FILE, "test")
    pred = synthetic_predictions(gt, args.n, args.seed)
    evaluate_detection(gt.iloc[:50], pred.iloc[:50], THRESHOLDS)  # warm-up (imports, caches)
    official, matching_s = median_timed(args.repeat, evaluate_detection, gt, pred, THRESHOLDS, tie_break="official")
    canonical, canonical_s = median_timed(args.repeat, evaluate_detection, gt, pred, THRESHOLDS)
    with tempfile.TemporaryDirectory() as tmp:
        pred_file = Path(tmp) / "predictions.json"
        predictions_to_json(pred, pred_file)
        size_mb = pred_file.stat().st_size / 2**20
        _, end_to_end_s = median_timed(args.repeat, evaluate_files, GT_FILE, pred_file, subset="Test",
                                       tiou_thresholds=THRESHOLDS)
        command = [sys.executable, "-m", "talbench.cli", "eval", "--gt", str(GT_FILE), "--pred", str(pred_file),
                   "--tiou", ",".join(map(str, THRESHOLDS))]
        _, command_s = median_timed(args.repeat, subprocess.run, command, cwd=ROOT, capture_output=True, check=True)
    load = os.getloadavg()
    print(f"{len(pred)} predictions ({size_mb:.1f} MB of JSON), {len(gt)} GT, {len(THRESHOLDS)} thresholds; "
          f"talbench's times: median of {args.repeat} runs, load average {load[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"talbench matching: official order {matching_s:.3f} s (average mAP {official.average_map:.4f}), "
          f"canonical order {canonical_s:.3f} s (average mAP {canonical.average_map:.4f})")
    print(f"talbench eval end to end: {end_to_end_s:.3f} s in-process (GT + JSON + evaluation), "
          f"{command_s:.3f} s as a command (with interpreter start-up and imports)")

    if args.reference_videos:
        videos = np.random.default_rng(args.seed).choice(pd.unique(gt["video_id"]), args.reference_videos,
                                                         replace=False)
        sub_gt = gt[gt["video_id"].isin(videos)].reset_index(drop=True)
        sub_pred = pred[pred["video_id"].isin(videos)].reset_index(drop=True)
    else:
        sub_gt, sub_pred = gt, pred
    sub_fast = evaluate_detection(sub_gt, sub_pred, THRESHOLDS, tie_break="official")
    (_, ref_map), ref_s = timed(reference_map, sub_gt, sub_pred, THRESHOLDS, tie_break="official")
    agree = float(np.abs(ref_map - sub_fast.map).max())
    official_s = ref_s * len(pred) / max(len(sub_pred), 1)
    scope = "every prediction" if len(sub_pred) == len(pred) else \
        f"{len(sub_pred)} predictions of {len(videos)} videos, extrapolated per prediction"
    print(f"official loop: {ref_s:.1f} s on {scope} -> {official_s:.0f} s for {len(pred)}; "
          f"max |mAP difference| to talbench's official order {agree:.1e}")
    print(f"speed-up over the official loop: matching x{official_s / matching_s:.0f}, `talbench eval` end to "
          f"end x{official_s / end_to_end_s:.0f} in-process, x{official_s / command_s:.0f} as a command")
    if agree > 1e-9:
        raise SystemExit("talbench's official order and the official loop disagree")


if __name__ == "__main__":
    main()
