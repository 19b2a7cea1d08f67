"""Evaluation speed: 200k synthetic predictions vs the real THUMOS14 test GT at 5 tIoU thresholds.

Predictions are generated (seeded) around the real GT: 70% jittered copies of a GT instance (80% with its
label), 30% random segments on random test videos and classes; scores rounded to 3 decimals (ties).
The vectorized evaluator runs on all of them; the literal per-prediction loop of the official code
(tests/eval_reference.py) runs on a seeded subset of videos (``--reference-videos``; 0 = all, slow) and
both are timed on that same subset, whose mAPs must agree.

    python benchmarks/perf/eval_speed.py [--n 200000] [--reference-videos 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from eval_reference import reference_map

from talbench.eval.detection import evaluate_detection
from talbench.eval.io import load_ground_truth

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--reference-videos", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # subsets lack some GT classes: their predictions are ignored

    gt = load_ground_truth(GT_FILE, "test")
    pred = synthetic_predictions(gt, args.n, args.seed)
    evaluate_detection(gt.iloc[:50], pred.iloc[:50], THRESHOLDS)  # warm-up (imports, caches)
    t0 = time.perf_counter()
    full = evaluate_detection(gt, pred, THRESHOLDS)
    fast_s = time.perf_counter() - t0
    print(f"vectorized: {len(pred)} predictions, {len(gt)} GT, {len(THRESHOLDS)} thresholds: {fast_s:.3f} s "
          f"(average mAP {full.average_map:.4f})")

    videos = pd.unique(gt["video_id"])
    if args.reference_videos:
        videos = np.random.default_rng(args.seed).choice(videos, args.reference_videos, replace=False)
    sub_gt = gt[gt["video_id"].isin(videos)].reset_index(drop=True)
    sub_pred = pred[pred["video_id"].isin(videos)].reset_index(drop=True)
    t0 = time.perf_counter()
    sub_fast = evaluate_detection(sub_gt, sub_pred, THRESHOLDS)
    sub_fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, ref_map = reference_map(sub_gt, sub_pred, THRESHOLDS)
    ref_s = time.perf_counter() - t0
    agree = np.abs(ref_map - sub_fast.map).max()
    print(f"subset of {len(videos)} videos ({len(sub_pred)} predictions): vectorized {sub_fast_s:.3f} s, "
          f"per-prediction loop {ref_s:.1f} s, speed-up x{ref_s / sub_fast_s:.0f}, "
          f"max |mAP difference| {agree:.2e}")
    per_pred_loop = ref_s / max(len(sub_pred), 1)
    print(f"loop extrapolated to {len(pred)} predictions: ~{per_pred_loop * len(pred):.0f} s "
          f"(x{per_pred_loop * len(pred) / fast_s:.0f} slower than vectorized)")
    if agree > 1e-9:
        raise SystemExit("vectorized and reference mAP disagree")


if __name__ == "__main__":
    main()
