"""The judging rule on simulated rows with known effects: calibrated (no effect -> at most 5% decided) and
powerful (an effect of two spreads -> decided in most repeats); seeds needed; the bootstrap's pieces."""

from __future__ import annotations

import numpy as np
import pytest

from talbench.leaderboard.claims import FAILS, HOLDS, INCONCLUSIVE, interval_verdict
from talbench.leaderboard.intervals import Interval, Samples, difference_interval, seeds_needed
from talbench.leaderboard.samples import video_weights

VIDEOS, SEEDS, RESAMPLES = 40, 5, 500
SEED_SD, VIDEO_SD, NOISE_SD = 1.5, 4.0, 6.0  # training, test-set (shared by the rows) and per-run video noise


def simulate_rows(effect: float, rng: np.random.Generator, *, correlation: float = 0.5,
                  weights: np.ndarray) -> tuple[Samples, Samples]:
    """Two rows of a table (TEST DATA): per-video scores = row mean + seed effect (correlated between the rows,
    as rows trained with the same seed are) + test-video effect (the same videos for both rows) + run noise;
    a row's value is the mean over the videos, and its resamples the weighted means."""
    video = VIDEO_SD * rng.standard_normal(VIDEOS)
    shared = rng.standard_normal(SEEDS)
    rows = []
    for mean in (50.0 + effect, 50.0):
        own = correlation * shared + np.sqrt(1 - correlation**2) * rng.standard_normal(SEEDS)
        scores = mean + SEED_SD * own[:, None] + video[None, :] + NOISE_SD * rng.standard_normal((SEEDS, VIDEOS))
        rows.append(Samples(tuple(range(SEEDS)), scores.mean(axis=1), scores @ weights.T / VIDEOS))
    return rows[0], rows[1]


def spread() -> float:
    """The seed standard deviation of one row's value (training noise and its per-video noise)."""
    return float(np.sqrt(SEED_SD**2 + NOISE_SD**2 / VIDEOS))


def decisions(effect: float, paired: bool, repeats: int = 300) -> dict[str, float]:
    rng = np.random.default_rng(12345)
    weights = video_weights(VIDEOS, RESAMPLES, seed=0)
    counts = {HOLDS: 0, FAILS: 0, INCONCLUSIVE: 0}
    for _ in range(repeats):
        a, b = simulate_rows(effect, rng, weights=weights)
        interval = difference_interval(a, b, paired=paired, draws=4000, rng=rng)
        counts[interval_verdict(interval.low, interval.high, 0.0, True, None)] += 1
    return {k: v / repeats for k, v in counts.items()}


@pytest.mark.parametrize("paired", [True, False])
def test_no_true_effect_is_decided_in_at_most_5_percent(paired):
    rates = decisions(0.0, paired)
    assert rates[HOLDS] + rates[FAILS] <= 0.05, rates


@pytest.mark.parametrize("paired", [True, False])
def test_an_effect_of_two_spreads_is_decided_in_most_repeats(paired):
    rates = decisions(2 * spread(), paired)
    assert rates[HOLDS] >= 0.6 and rates[FAILS] == 0.0, rates  # measured with 1000 repeats: 0.70 and 0.73


def test_seeds_needed_follows_the_spreads():
    interval = Interval(estimate=1.0, low=-0.2, high=2.2, paired=True, seed_se=0.4, video_sd=0.1, df=4, n_seeds=5)
    n = seeds_needed(interval, 0.0)
    assert isinstance(n, int) and 5 < n <= 15
    wider = Interval(1.0, -1.0, 3.0, True, 0.8, 0.1, 4, 5)
    assert seeds_needed(wider, 0.0) > n  # a larger seed spread needs more seeds
    assert "at the bound" in seeds_needed(Interval(0.01, -1, 1, True, 0.4, 0.1, 4, 5), 0.0)
    assert "test videos" in seeds_needed(Interval(1.0, -1, 3, True, 0.4, 0.8, 4, 5), 0.0)
    assert seeds_needed(Interval(0.3, -1, 2, True, 3.0, 0.0, 4, 5), 0.0, max_seeds=20) == "more than 20"


def test_video_weights_are_resamples_of_the_videos():
    weights = video_weights(12, 300, seed=3)
    assert weights.shape == (300, 12) and set(weights.sum(axis=1)) == {12.0}
    np.testing.assert_array_equal(weights, video_weights(12, 300, seed=3))  # the same for every run of a table
    assert abs(weights.mean() - 1.0) < 0.05


def test_deterministic_columns_have_a_point_interval():
    a = Samples((0, 1, 2), np.array([11.7, 11.7, 11.7]))
    b = Samples((0, 1, 2), np.array([10.1, 10.1, 10.1]))
    interval = difference_interval(a, b, paired=True, rng=np.random.default_rng(0))
    assert interval.low == interval.high == pytest.approx(1.6)
