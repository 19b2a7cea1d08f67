"""Judging a benchmark's claims on the published numbers and on the reproduction.

Every check (see :mod:`talbench.benchmark.schema`) reduces to comparisons of a quantity with bounds, one per
metric and pair of rows: ``a - b > 0`` (greater, best, order, gain_larger: the base cancels),
``min <= a - b <= max`` (delta), ``a - b <= margin`` (not_greater), ``-margin <= a - b <= margin``
(similar) or ``a / b >= min`` (ratio); ``margin`` is ``leaderboard.margin`` in params.yaml.

**Published numbers** are exact: a comparison holds or fails.

**A reproduction** is judged on a 95% interval of the quantity (:mod:`talbench.leaderboard.intervals`: the
seeds' spread, paired by seed where the rows share it, and a bootstrap over the test videos from the saved
predictions, :mod:`talbench.leaderboard.samples`). The comparison

* **holds** when the whole interval satisfies the claim,
* **fails** when none of it does,
* is **inconclusive** otherwise; the judgement then says how many seeds per row would decide it at the observed
  difference and spreads (:func:`talbench.leaderboard.intervals.seeds_needed`).

A row reproduced with fewer than ``leaderboard.min_seeds`` seeds cannot be judged (inconclusive). A check
combines its comparisons: ``n/a`` if a number is missing (a row not reproduced, a dash in the paper), else
``fails`` if any fails, else ``inconclusive`` if any is, else ``holds``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from talbench.benchmark.schema import (
    AllOf,
    Benchmark,
    Best,
    Check,
    Claim,
    Delta,
    GainLarger,
    Greater,
    NotGreater,
    Order,
    Ratio,
    Similar,
)
from talbench.leaderboard.intervals import (
    Interval,
    Samples,
    can_pair,
    difference_interval,
    ratio_interval,
    seeds_needed,
)

HOLDS, FAILS, INCONCLUSIVE, NOT_APPLICABLE = "holds", "fails", "inconclusive", "n/a"
_PRECISION = 9  # decimals: published numbers have at most two, so 54.8 - 52.6 compares equal to 2.2


@dataclass(frozen=True)
class Rule:
    """How reproduced numbers are judged (``leaderboard`` section of params.yaml)."""

    margin: float = 1.0  # of not_greater and similar claims, in the column's unit (mAP points)
    min_seeds: int = 2
    resamples: int = 1000  # video resamples per table
    bootstrap_seed: int = 0
    max_seeds: int = 100  # the largest seed count "seeds needed" reports


@dataclass(frozen=True)
class Comparison:
    """One judged comparison of a claim: ``a`` against ``b`` on ``metric`` (``kind``: difference or ratio),
    the bounds the claim sets, the reproduced interval (None on published numbers) and its verdict."""

    a: str
    b: str
    metric: str
    kind: str
    lower: float | None
    strict: bool
    upper: float | None
    value: float
    verdict: str
    interval: Interval | None = None
    needed: int | str | None = None

    @property
    def text(self) -> str:
        op = "/" if self.kind == "ratio" else "−"
        bounds = []
        if self.lower is not None:
            bounds.append(f"{'>' if self.strict else '>='} {self.lower:g}")
        if self.upper is not None:
            bounds.append(f"<= {self.upper:g}")
        claim = f"claim {' and '.join(bounds)}"
        if self.interval is None:
            return f"{self.metric}: '{self.a}' {op} '{self.b}' = {_fmt(self.value, self.kind)} ({claim})"
        i = self.interval
        text = (f"{self.metric}: '{self.a}' {op} '{self.b}' = {_fmt(i.estimate, self.kind)} "
                f"[95%: {_fmt(i.low, self.kind)}, {_fmt(i.high, self.kind)}] ({i.design}, {i.n_seeds} seeds; {claim})")
        if self.needed is not None:
            text += f"; seeds to decide: {self.needed}"
        return text

    @property
    def margin(self) -> float:
        """How far inside the claim the interval (or value) lies (negative: outside); orders the details."""
        low, high = (self.interval.low, self.interval.high) if self.interval else (self.value, self.value)
        return min((low - self.lower) if self.lower is not None else math.inf,
                   (self.upper - high) if self.upper is not None else math.inf)


@dataclass(frozen=True)
class Judgement:
    verdict: str
    detail: str
    comparisons: tuple[Comparison, ...] = field(default_factory=tuple)


Lookup = Callable[[str, str], float | None]
SampleLookup = Callable[[str, str], Samples | None]


def interval_verdict(low: float, high: float, lower: float | None, strict: bool, upper: float | None) -> str:
    low, high = round(low, _PRECISION), round(high, _PRECISION)

    def satisfied(x: float) -> bool:
        above = lower is None or (x > lower if strict else x >= lower)
        return above and (upper is None or x <= upper)

    if satisfied(low) and satisfied(high):
        return HOLDS
    below_all = lower is not None and (high <= lower if strict else high < lower)
    above_all = upper is not None and low > upper
    if below_all or above_all or (low == high and not satisfied(low)):
        return FAILS
    return INCONCLUSIVE


def _fmt(x: float, kind: str) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2f}" if kind == "ratio" else f"{x:+.2f}"


class _Judge:
    """Turns checks into comparisons, on exact numbers (``lookup``) or on samples (``samples`` and ``rule``)."""

    def __init__(self, bench: Benchmark, rule: Rule, lookup: Lookup | None = None,
                 samples: SampleLookup | None = None) -> None:
        self.bench, self.rule, self.lookup, self.samples = bench, rule, lookup, samples
        self.rng = np.random.default_rng(rule.bootstrap_seed)

    @property
    def reproduced(self) -> bool:
        return self.samples is not None

    def compare(self, a: str, b: str, metric: str, kind: str, lower: float | None, strict: bool,
                upper: float | None) -> Comparison | tuple[str, str]:
        """The comparison, or ``(verdict, reason)`` when it cannot be made."""
        if not self.reproduced:
            va, vb = self.lookup(a, metric), self.lookup(b, metric)
            missing = a if va is None else b if vb is None else None
            if missing is not None:
                return NOT_APPLICABLE, f"'{missing}' {metric}: no published value"
            if kind == "ratio" and vb <= 0:
                return NOT_APPLICABLE, f"{metric}: '{b}' is not positive, no ratio"
            value = va / vb if kind == "ratio" else va - vb
            verdict = interval_verdict(value, value, lower, strict, upper)
            return Comparison(a, b, metric, kind, lower, strict, upper, value, verdict)
        sa, sb = self.samples(a, metric), self.samples(b, metric)
        missing = a if sa is None else b if sb is None else None
        if missing is not None:
            return NOT_APPLICABLE, f"'{missing}' {metric}: not reproduced"
        few = a if sa.n < self.rule.min_seeds else b if sb.n < self.rule.min_seeds else None
        if few is not None:
            n = sa.n if few == a else sb.n
            return INCONCLUSIVE, f"'{few}' {metric}: {n} seed(s), needs {self.rule.min_seeds}"
        draws = {"draws": max(4 * self.rule.resamples, 4000), "rng": self.rng}
        if kind == "ratio":
            interval = ratio_interval(sa, sb, **draws)
        else:
            interval = difference_interval(sa, sb, paired=can_pair(sa, sb), **draws)
        verdict = interval_verdict(interval.low, interval.high, lower, strict, upper)
        needed = None
        if verdict == INCONCLUSIVE and kind != "ratio":
            bound = lower if lower is not None and interval.low <= lower else upper
            needed = seeds_needed(interval, bound, max_seeds=self.rule.max_seeds)
        return Comparison(a, b, metric, kind, lower, strict, upper, interval.estimate, verdict, interval, needed)

    def comparisons(self, check: Check) -> list[Comparison | tuple[str, str]]:
        if isinstance(check, AllOf):
            return [c for sub in check.checks for c in self.comparisons(sub)]
        margin = self.rule.margin
        if isinstance(check, Greater | GainLarger):  # (a - base) - (b - base) = a - b
            return [self.compare(check.a, check.b, m, "difference", 0.0, True, None) for m in check.metrics]
        if isinstance(check, Delta):
            return [self.compare(check.a, check.b, m, "difference", check.min, False, check.max) for m in check.metrics]
        if isinstance(check, NotGreater):
            return [self.compare(check.a, check.b, m, "difference", None, False, margin) for m in check.metrics]
        if isinstance(check, Similar):
            return [self.compare(check.a, check.b, m, "difference", -margin, False, margin) for m in check.metrics]
        if isinstance(check, Ratio):
            return [self.compare(check.a, check.b, m, "ratio", check.min, False, None) for m in check.metrics]
        if isinstance(check, Order):
            return [self.compare(high, low, m, "difference", 0.0, True, None)
                    for m in check.metrics for low, high in zip(check.rows, check.rows[1:])]
        if isinstance(check, Best):
            others = check.others or [row.name for row in self.bench.paper_rows if row.name != check.a]
            out = []
            for m in check.metrics:
                for other in others:
                    # published reference: a dash in the paper is no competitor on that column
                    if not self.reproduced and self.lookup(other, m) is None:
                        continue
                    out.append(self.compare(check.a, other, m, "difference", 0.0, True, None))
            return out
        raise TypeError(f"unknown check {check!r}")


def _combine(parts: list[Comparison | tuple[str, str]]) -> Judgement:
    comparisons = tuple(p for p in parts if isinstance(p, Comparison))
    reasons = [p for p in parts if not isinstance(p, Comparison)]
    for verdict in (NOT_APPLICABLE, FAILS, INCONCLUSIVE):
        deciding = [r for v, r in reasons if v == verdict] + [c.text for c in comparisons if c.verdict == verdict]
        if deciding:
            detail = "; ".join(deciding[:3]) + (" …" if len(deciding) > 3 else "")
            return Judgement(verdict, detail, comparisons)
    closest = min(comparisons, key=lambda c: c.margin)
    return Judgement(HOLDS, f"closest: {closest.text}" if len(comparisons) > 1 else closest.text, comparisons)


def judge_check(bench: Benchmark, check: Check, rule: Rule, *, lookup: Lookup | None = None,
                samples: SampleLookup | None = None) -> Judgement:
    """Judge ``check`` exactly on ``lookup(row, column)`` numbers, or on the reproduction's ``samples``."""
    parts = _Judge(bench, rule, lookup, samples).comparisons(check)
    if not parts:
        return Judgement(NOT_APPLICABLE, "no comparable numbers")
    return _combine(parts)


def published_lookup(bench: Benchmark) -> Lookup:
    def lookup(row: str, column: str) -> float | None:
        value = bench.row(row).published.get(column)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    return lookup


def judge_published(bench: Benchmark, claim: Claim, rule: Rule | None = None) -> Judgement:
    """Does the published table itself support the claim? (n/a where the table's numbers are missing)"""
    if bench.unpublished:
        return Judgement(NOT_APPLICABLE, f"no published numbers: {bench.unpublished}")
    return judge_check(bench, claim.check, rule or Rule(), lookup=published_lookup(bench))


def judge_reproduced(bench: Benchmark, claim: Claim, samples: SampleLookup, rule: Rule, *,
                     synthetic: bool) -> Judgement:
    """Judge the claim on the reproduction: ``samples(row, column)`` gives each row's per-seed values and their
    video resamples (:class:`talbench.leaderboard.samples.TableSamples`)."""
    if synthetic and claim.real_data_only:
        return Judgement(NOT_APPLICABLE, "threshold is a number of the real benchmark; synthetic data")
    return judge_check(bench, claim.check, rule, samples=samples)


def describe(check: Check, rule: Rule | None = None) -> str:
    """The check in words (for the leaderboard)."""
    metrics = ", ".join(getattr(check, "metrics", []))
    margin = f"{(rule or Rule()).margin:g}"
    if isinstance(check, AllOf):
        return " and ".join(f"({describe(sub, rule)})" for sub in check.checks)
    if isinstance(check, Greater):
        return f"'{check.a}' > '{check.b}' on {metrics}"
    if isinstance(check, Delta):
        lo = f"{check.min:g} <= " if check.min is not None else ""
        hi = f" <= {check.max:g}" if check.max is not None else ""
        return f"{lo}'{check.a}' − '{check.b}'{hi} on {metrics}"
    if isinstance(check, NotGreater):
        return f"'{check.a}' − '{check.b}' <= {margin} (margin) on {metrics}"
    if isinstance(check, Similar):
        return f"|'{check.a}' − '{check.b}'| <= {margin} (margin) on {metrics}"
    if isinstance(check, Ratio):
        return f"'{check.a}' / '{check.b}' >= {check.min:g} on {metrics}"
    if isinstance(check, Best):
        others = "every other row" if check.others is None else ", ".join(f"'{o}'" for o in check.others)
        return f"'{check.a}' > {others} on {metrics}"
    if isinstance(check, Order):
        return " < ".join(f"'{r}'" for r in check.rows) + f" on {metrics}"
    if isinstance(check, GainLarger):
        return f"'{check.a}' − '{check.base}' > '{check.b}' − '{check.base}' on {metrics}"
    raise TypeError(f"unknown check {check!r}")
