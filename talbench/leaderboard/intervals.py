"""Intervals of the reproduced differences a claim states, from the two sources of noise a reproduction has.

A reproduced number varies with the **training** (seed: initialisation, data order, dropout; another CPU acts
like another seed) and with the **test videos** (a different sample of test videos gives another mAP, and this
part is shared by every row, because all rows are evaluated on the same videos). For a comparison of row ``a``
with row ``b`` on one column the estimate is the difference of the seed means, ``d = mean(a) - mean(b)``, and
its 95% interval comes from a two-level resampling:

* **videos**: ``B`` resamples of the evaluation videos (multinomial counts, the same resamples for every run of
  the table, so the comparison is paired over videos); each run's column is recomputed on each resample from its
  saved predictions (:mod:`talbench.leaderboard.samples`), giving ``d_b = mean_s a_sb - mean_s b_sb``;
* **seeds**: the small-sample form of a seed bootstrap, a Student t draw ``se * t_b`` with ``se`` the standard
  error of the seed mean of the difference. **Paired** when the two rows share each seed's training (the same
  seeds, each row's training driven by its seed: the same data order; or the very same model, test-time
  variants): ``se = sd_s(a_s - b_s) / sqrt(n)``, ``n - 1`` degrees of freedom. **Unpaired** otherwise (other
  seeds): Welch, ``se^2 = s_a^2 / n_a + s_b^2 / n_b`` with Welch's degrees of freedom.

Each draw is ``d_b + se * t_b``; the interval is the draws' 2.5 and 97.5 percentiles. (A plain percentile
bootstrap over 5 seeds is too narrow, its coverage about 88%; the t draw keeps the rule calibrated, which
tests/leaderboard/test_intervals.py checks on simulated rows with known effects.) Columns that do not depend
on the test videos (parameter counts, timings) get the seed part only; a deterministic column (the same value
for every seed) has a zero-width interval.

A claim's comparison **holds** when the whole interval lies on the claimed side of its bound (``> 0`` for "a
beats b", ``<= margin`` for "a does not beat b"), **fails** when it lies entirely on the other side, and is
**inconclusive** otherwise. :func:`seeds_needed` says how many seeds would decide an inconclusive comparison at
the observed effect and spreads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Samples:
    """One row's values of one column: per seed on the whole evaluation split (``values``, ``(S,)``) and on each
    video resample (``resampled``, ``(S, B)``, None for a column that does not depend on the test videos)."""

    seeds: tuple[int, ...]
    values: np.ndarray
    resampled: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))


@dataclass(frozen=True)
class Interval:
    """A difference (or ratio) with its interval and how it was computed."""

    estimate: float
    low: float
    high: float
    paired: bool
    seed_se: float  # standard error of the seed mean (the training's part)
    video_sd: float  # standard deviation over the video resamples (the test set's part)
    df: float  # degrees of freedom of the seed part
    n_seeds: int

    @property
    def design(self) -> str:
        return "paired by seed" if self.paired else "unpaired"


def student_draws(df: float, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``n_draws`` Student t variates (standard normal when ``df`` is infinite)."""
    if not math.isfinite(df):
        return rng.standard_normal(n_draws)
    return rng.standard_t(df, n_draws)


def _video_part(a: Samples, b: Samples, combine) -> np.ndarray | None:
    if a.resampled is None and b.resampled is None:
        return None
    ra = a.resampled.mean(axis=0) if a.resampled is not None else np.full(b.resampled.shape[1], a.mean)
    rb = b.resampled.mean(axis=0) if b.resampled is not None else np.full(a.resampled.shape[1], b.mean)
    return combine(ra, rb)


def seed_part(a: Samples, b: Samples, paired: bool) -> tuple[float, float]:
    """Standard error of the seed mean of ``a - b`` and its degrees of freedom (paired, or Welch)."""
    if paired:
        diffs = a.values - b.values
        sd = float(np.std(diffs, ddof=1)) if a.n > 1 else 0.0
        return sd / math.sqrt(a.n), float(a.n - 1)
    va = float(np.var(a.values, ddof=1)) / a.n if a.n > 1 else 0.0
    vb = float(np.var(b.values, ddof=1)) / b.n if b.n > 1 else 0.0
    se2 = va + vb
    if se2 == 0.0:
        return 0.0, math.inf
    denominator = (va**2 / (a.n - 1) if a.n > 1 else 0.0) + (vb**2 / (b.n - 1) if b.n > 1 else 0.0)
    return math.sqrt(se2), se2**2 / denominator if denominator > 0 else math.inf


def can_pair(a: Samples, b: Samples) -> bool:
    return a.seeds == b.seeds and a.n > 1


def difference_interval(a: Samples, b: Samples, *, paired: bool, draws: int = 4000,
                        rng: np.random.Generator) -> Interval:
    """The interval of ``mean(a) - mean(b)`` (see the module docstring)."""
    estimate = a.mean - b.mean
    se, df = seed_part(a, b, paired)
    video = _video_part(a, b, lambda x, y: x - y)
    base = np.full(draws, estimate) if video is None else rng.choice(video, draws, replace=True)
    total = base + se * student_draws(df, draws, rng) if se > 0 else base
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(total, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), paired, se, float(np.std(video)) if video is not None else 0.0,
                    df, min(a.n, b.n))


def ratio_interval(a: Samples, b: Samples, *, draws: int = 4000, rng: np.random.Generator) -> Interval:
    """The interval of ``mean(a) / mean(b)`` (each row's seed mean drawn on its own: unpaired)."""
    def row_draws(x: Samples, video: np.ndarray | None) -> np.ndarray:
        se, df = seed_part(x, Samples(x.seeds, np.zeros_like(x.values)), paired=False)
        base = np.full(draws, x.mean) if video is None else video
        return base + se * student_draws(df, draws, rng) if se > 0 else base

    if a.resampled is not None or b.resampled is not None:
        pick = rng.integers(0, (a.resampled if a.resampled is not None else b.resampled).shape[1], draws)
        va = a.resampled.mean(axis=0)[pick] if a.resampled is not None else None
        vb = b.resampled.mean(axis=0)[pick] if b.resampled is not None else None
    else:
        va = vb = None
    with np.errstate(divide="ignore", invalid="ignore"):
        total = row_draws(a, va) / row_draws(b, vb)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(total, [tail, 1 - tail])
    se, df = seed_part(a, b, paired=False)
    return Interval(a.mean / b.mean if b.mean else math.inf, float(low), float(high), False, se, 0.0, df,
                    min(a.n, b.n))


def seeds_needed(interval: Interval, bound: float, *, max_seeds: int = 100,
                 negligible: float = 0.05) -> int | str:
    """How many seeds per row would make the interval exclude ``bound`` at the observed difference and spreads
    (the seed spread scaled to ``n`` seeds, the video spread as it is: more seeds cannot shrink it), or why no
    realistic number would."""
    distance = abs(interval.estimate - bound)
    if distance < negligible:
        return "no realistic number: the observed difference is at the bound"
    if 1.96 * interval.video_sd >= distance:
        return "no number of seeds: the test videos' own spread is larger than the difference"
    seed_var_one = (interval.seed_se**2) * interval.n_seeds  # variance of one seed's difference (or sum of the rows')
    for n in range(max(interval.n_seeds, 2), max_seeds + 1):
        df = n - 1 if interval.paired else max(2 * (n - 1), 1)
        width = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df) * math.sqrt(seed_var_one / n + interval.video_sd**2)
        if width < distance:
            return n
    return f"more than {max_seeds}"
