"""Judging a benchmark's claims on published numbers and on reproduced means over seeds.

Every check (see :mod:`talbench.benchmark.schema`) reduces to comparisons of a quantity ``q`` with a bound:
``a - b > 0`` (greater, best, order, gain_larger: the base cancels), ``min <= a - b <= max`` (delta) or
``a / b >= min`` (ratio), one comparison per metric and pair of rows.

Published numbers are exact: a comparison holds or fails. A reproduced quantity is an interval: the mean
difference ``q`` widened by the seed spread ``s = k * (std_a + std_b)`` (sample std over seeds, ddof=1,
``k = leaderboard.spread_k``); for a ratio the interval is ``[(m_a - k s_a) / (m_b + k s_b),
(m_a + k s_a) / (m_b - k s_b)]``. The comparison

* **holds** when every value of the interval satisfies the claim,
* **fails** when no value of the interval satisfies it,
* is **inconclusive** otherwise: the difference lies within the seed spread (``|q| <= s`` for ``a > b``).

A row reproduced with fewer than ``leaderboard.min_seeds`` seeds cannot be judged (inconclusive): one seed
has no spread. A check combines its comparisons: ``n/a`` if a number is missing (a row not reproduced, a dash
in the paper), else ``fails`` if any fails, else ``inconclusive`` if any is, else ``holds``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from talbench.benchmark.results import Stat
from talbench.benchmark.schema import (
    AllOf,
    Benchmark,
    Best,
    Check,
    Claim,
    Delta,
    GainLarger,
    Greater,
    Order,
    Ratio,
)

HOLDS, FAILS, INCONCLUSIVE, NOT_APPLICABLE = "holds", "fails", "inconclusive", "n/a"
_PRECISION = 9  # decimals: published numbers have at most two, so 54.8 - 52.6 compares equal to 2.2


@dataclass(frozen=True)
class Rule:
    """How reproduced numbers are judged (``leaderboard`` section of params.yaml)."""

    spread_k: float = 1.0
    min_seeds: int = 2


@dataclass(frozen=True)
class Judgement:
    verdict: str
    detail: str


Lookup = Callable[[str, str], Stat | None]


@dataclass(frozen=True)
class _Atom:
    verdict: str
    text: str
    margin: float  # how far the interval is inside the claim (negative: outside); orders the details


def _interval_verdict(lo: float, hi: float, lower: float | None, strict: bool, upper: float | None) -> str:
    lo, hi = round(lo, _PRECISION), round(hi, _PRECISION)

    def satisfied(x: float) -> bool:
        above = lower is None or (x > lower if strict else x >= lower)
        return above and (upper is None or x <= upper)

    if satisfied(lo) and satisfied(hi):
        return HOLDS
    below_all = lower is not None and (hi <= lower if strict else hi < lower)
    above_all = upper is not None and lo > upper
    if below_all or above_all or (lo == hi and not satisfied(lo)):
        return FAILS
    return INCONCLUSIVE


def _fmt(x: float) -> str:
    return f"{x:+.2f}" if math.isfinite(x) else str(x)


class _Judge:
    def __init__(self, bench: Benchmark, lookup: Lookup, rule: Rule | None) -> None:
        self.bench, self.lookup, self.rule = bench, lookup, rule

    def _stats(self, *pairs: tuple[str, str]) -> list[Stat] | _Atom:
        stats = []
        for row, metric in pairs:
            stat = self.lookup(row, metric)
            if stat is None:
                why = "not reproduced" if self.rule is not None else "no published value"
                return _Atom(NOT_APPLICABLE, f"'{row}' {metric}: {why}", -math.inf)
            if self.rule is not None and stat.n < self.rule.min_seeds:
                return _Atom(
                    INCONCLUSIVE, f"'{row}' {metric}: {stat.n} seed(s), needs {self.rule.min_seeds}", 0.0
                )
            stats.append(stat)
        return stats

    def _spread(self, *stats: Stat) -> float:
        return 0.0 if self.rule is None else self.rule.spread_k * sum(s.std for s in stats)

    def difference(
        self, a: str, b: str, metric: str, lower: float | None, strict: bool, upper: float | None
    ) -> _Atom:
        stats = self._stats((a, metric), (b, metric))
        if isinstance(stats, _Atom):
            return stats
        sa, sb = stats
        q, s = sa.mean - sb.mean, self._spread(sa, sb)
        verdict = _interval_verdict(q - s, q + s, lower, strict, upper)
        bounds = []
        if lower is not None:
            bounds.append(f"{'>' if strict else '>='} {lower:g}")
        if upper is not None:
            bounds.append(f"<= {upper:g}")
        spread = f" ± {s:.2f}" if self.rule is not None else ""
        margin = min(
            (q - s - lower) if lower is not None else math.inf, (upper - q - s) if upper is not None else math.inf
        )
        return _Atom(verdict, f"{metric}: '{a}' − '{b}' = {_fmt(q)}{spread} (claim {' and '.join(bounds)})", margin)

    def ratio(self, a: str, b: str, metric: str, minimum: float) -> _Atom:
        stats = self._stats((a, metric), (b, metric))
        if isinstance(stats, _Atom):
            return stats
        sa, sb = stats
        k = 0.0 if self.rule is None else self.rule.spread_k
        lo_den, hi_den = sb.mean + k * sb.std, sb.mean - k * sb.std
        if lo_den <= 0:
            return _Atom(NOT_APPLICABLE, f"{metric}: '{b}' is not positive, no ratio", -math.inf)
        lo = (sa.mean - k * sa.std) / lo_den
        hi = (sa.mean + k * sa.std) / hi_den if hi_den > 0 else math.inf
        verdict = _interval_verdict(lo, hi, minimum, False, None)
        shown = f"[{lo:.2f}, {hi:.2f}]" if self.rule is not None and lo != hi else f"{lo:.2f}"
        return _Atom(verdict, f"{metric}: '{a}' / '{b}' = {shown} (claim >= {minimum:g})", lo - minimum)

    def atoms(self, check: Check) -> list[_Atom]:
        if isinstance(check, AllOf):
            return [atom for sub in check.checks for atom in self.atoms(sub)]
        if isinstance(check, Greater):
            return [self.difference(check.a, check.b, m, 0.0, True, None) for m in check.metrics]
        if isinstance(check, GainLarger):  # (a - base) - (b - base) = a - b
            return [self.difference(check.a, check.b, m, 0.0, True, None) for m in check.metrics]
        if isinstance(check, Delta):
            return [self.difference(check.a, check.b, m, check.min, False, check.max) for m in check.metrics]
        if isinstance(check, Ratio):
            return [self.ratio(check.a, check.b, m, check.min) for m in check.metrics]
        if isinstance(check, Order):
            return [
                self.difference(high, low, m, 0.0, True, None)
                for m in check.metrics
                for low, high in zip(check.rows, check.rows[1:])
            ]
        if isinstance(check, Best):
            others = check.others or [row.name for row in self.bench.paper_rows if row.name != check.a]
            atoms = []
            for m in check.metrics:
                for other in others:
                    # published reference: a dash in the paper is no competitor on that column
                    if self.rule is None and self.lookup(other, m) is None:
                        continue
                    atoms.append(self.difference(check.a, other, m, 0.0, True, None))
            return atoms
        raise TypeError(f"unknown check {check!r}")


def _combine(atoms: list[_Atom]) -> Judgement:
    for verdict in (NOT_APPLICABLE, FAILS, INCONCLUSIVE):
        deciding = [a for a in atoms if a.verdict == verdict]
        if deciding:
            return Judgement(verdict, "; ".join(a.text for a in deciding[:3]) + (" …" if len(deciding) > 3 else ""))
    closest = min(atoms, key=lambda a: a.margin)
    return Judgement(HOLDS, f"closest: {closest.text}" if len(atoms) > 1 else closest.text)


def judge_check(bench: Benchmark, check: Check, lookup: Lookup, rule: Rule | None = None) -> Judgement:
    """Judge ``check`` on the numbers ``lookup(row, column)`` gives: exact when ``rule`` is None (published
    numbers), else on mean ± seed spread by ``rule``."""
    atoms = _Judge(bench, lookup, rule).atoms(check)
    if not atoms:
        return Judgement(NOT_APPLICABLE, "no comparable numbers")
    return _combine(atoms)


def published_lookup(bench: Benchmark) -> Lookup:
    def lookup(row: str, column: str) -> Stat | None:
        value = bench.row(row).published.get(column)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return Stat(float(value))

    return lookup


def judge_published(bench: Benchmark, claim: Claim) -> Judgement:
    """Does the published table itself support the claim? (n/a where the table's numbers are missing)"""
    if bench.unpublished:
        return Judgement(NOT_APPLICABLE, f"no published numbers: {bench.unpublished}")
    return judge_check(bench, claim.check, published_lookup(bench))


def judge_reproduced(
    bench: Benchmark, claim: Claim, stats: dict[str, dict[str, Stat]], rule: Rule, *, synthetic: bool
) -> Judgement:
    """Judge the claim on reproduced ``stats[row][column]`` (mean, std, number of seeds)."""
    if synthetic and claim.real_data_only:
        return Judgement(NOT_APPLICABLE, "threshold is a number of the real benchmark; synthetic data")

    def lookup(row: str, column: str) -> Stat | None:
        return stats.get(row, {}).get(column)

    return judge_check(bench, claim.check, lookup, rule)


def describe(check: Check) -> str:
    """The check in words (for the leaderboard)."""
    metrics = ", ".join(getattr(check, "metrics", []))
    if isinstance(check, AllOf):
        return " and ".join(f"({describe(sub)})" for sub in check.checks)
    if isinstance(check, Greater):
        return f"'{check.a}' > '{check.b}' on {metrics}"
    if isinstance(check, Delta):
        lo = f"{check.min:g} <= " if check.min is not None else ""
        hi = f" <= {check.max:g}" if check.max is not None else ""
        return f"{lo}'{check.a}' − '{check.b}'{hi} on {metrics}"
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
