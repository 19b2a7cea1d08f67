"""NMS / Soft-NMS speed: talbench's batched NMS vs the plain per-group numpy loop, identical outputs.

Candidates are generated (seeded) the way an anchor-free FPN detector (ActionFormer, CLTDR-GMG) emits
them for one (video, class) group: video duration log-uniform in [60, 1200] s, features at 7.5 steps/s,
FPN level l with probability ~ 2^-l (six levels), length log-uniform in the level's regression range
([1, 4), [4, 8), ..., [64, duration) steps), centre uniform over the video, clipped to it; scores
uniform^3 rounded to 4 decimals (ties). Cases: ``--n`` segments in realistic groups (sizes log-uniform
in [1, 5000]), then in equal groups of 10, 100, 1,000 and 10,000, and (outside the summary) a single group
of 2,000 and of 10,000, where batching over groups cannot help. The rows are shuffled.

Every case runs hard NMS (tIoU threshold 0.5), linear Soft-NMS (threshold 0.5) and Gaussian Soft-NMS
(sigma 0.5), per group, with ``min_score`` 0.001 (ActionFormer's); ``--min-score 0`` keeps every
candidate (the slowest case: the loop then runs once per candidate). Both implementations must return
the same kept indices in the same order and bit-identical scores (asserted). The plain loop is
``plain_loop_nms`` in tests/helpers/nms_reference.py. Times are CPU (process) times, best of ``--repeat``.

    python benchmarks/perf/nms_speed.py [--n 100000] [--seed 0] [--min-score 0.001] [--sizes 10 100 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's talbench and its test reference

from helpers.nms_reference import plain_loop_nms

from talbench.ops.nms import batched_nms

STEPS_PER_SECOND = 7.5  # 30 fps features at stride 4 frames
LEVEL_STEPS = [(1, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, None)]  # ActionFormer regression ranges
METHODS = [("hard", {"iou_threshold": 0.5}), ("linear", {"iou_threshold": 0.5}), ("gaussian", {"sigma": 0.5})]


def group_candidates(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` candidate segments (seconds) and scores of one (video, class) group."""
    duration = np.exp(rng.uniform(np.log(60), np.log(1200)))
    p = 0.5 ** np.arange(len(LEVEL_STEPS))
    level = rng.choice(len(LEVEL_STEPS), n, p=p / p.sum())
    lo = np.array([r[0] for r in LEVEL_STEPS], float)[level] / STEPS_PER_SECOND
    hi = np.array([r[1] or np.inf for r in LEVEL_STEPS], float)[level] / STEPS_PER_SECOND
    hi = np.minimum(hi, duration)
    length = np.exp(rng.uniform(np.log(lo), np.log(np.maximum(hi, lo))))
    centre = rng.uniform(0, duration, n)
    segments = np.clip(np.stack([centre - length / 2, centre + length / 2], axis=1), 0.0, duration)
    return segments, np.round(rng.uniform(0, 1, n) ** 3, 4)


def make_case(rng: np.random.Generator, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [group_candidates(rng, int(k)) for k in sizes]
    segments = np.concatenate([s for s, _ in parts])
    scores = np.concatenate([c for _, c in parts])
    groups = np.repeat(np.arange(len(sizes)), sizes)
    perm = rng.permutation(len(scores))
    return segments[perm], scores[perm], groups[perm]


def realistic_sizes(rng: np.random.Generator, n: int, largest: int = 5000) -> np.ndarray:
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(np.ceil(np.exp(rng.uniform(0, np.log(largest))))))
    sizes[-1] -= sum(sizes) - n
    return np.array([s for s in sizes if s > 0])


def timed(repeat: int, fn, *args, **kwargs):
    """Best CPU time (process time: robust to other jobs on the machine) of ``repeat`` runs, and the output."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn(*args, **kwargs)
        best = min(best, time.process_time() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-score", type=float, default=0.001)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 1000, 10_000])
    parser.add_argument("--methods", nargs="*", default=[m for m, _ in METHODS])
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs of each")
    parser.add_argument("--single", type=int, nargs="*", default=[2000, 10_000],
                        help="also one group of each size (not in the summary: batching needs many groups)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    cases = [("realistic", realistic_sizes(rng, args.n))]
    cases += [(f"equal {k:,}", np.full(max(args.n // k, 1), k)) for k in args.sizes]
    cases += [(f"single {k:,}", np.array([k])) for k in args.single]
    print(f"{'case':>14s} {'groups':>7s} {'method':>9s} {'kept':>7s} {'loop s':>8s} {'talbench s':>10s} "
          f"{'speed-up':>8s}")
    worst = np.inf
    for name, sizes in cases:
        segments, scores, groups = make_case(rng, sizes)
        for method, kwargs in METHODS:
            if method not in args.methods:
                continue
            kwargs = {"method": method, "min_score": args.min_score, **kwargs}
            batched_nms(segments[:50], scores[:50], groups[:50], **kwargs)  # warm-up
            loop_s, (ref_keep, ref_score) = timed(args.repeat, plain_loop_nms, segments, scores, groups, **kwargs)
            fast_s, (keep, score) = timed(args.repeat, batched_nms, segments, scores, groups, **kwargs)
            np.testing.assert_array_equal(keep, ref_keep)
            assert np.array_equal(score.view(np.int64), ref_score.view(np.int64)), f"{name} {method}: scores differ"
            if method != "hard" and not name.startswith("single"):
                worst = min(worst, loop_s / fast_s)
            print(f"{name:>14s} {len(sizes):>7d} {method:>9s} {len(keep):>7d} {loop_s:>8.3f} {fast_s:>10.3f} "
                  f"{loop_s / fast_s:>7.1f}x", flush=True)
    print(f"identical outputs in every case; slowest Soft-NMS speed-up (realistic and equal groups) {worst:.1f}x")


if __name__ == "__main__":
    main()
