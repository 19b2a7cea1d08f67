"""The stability check: do two reproductions of the same tables reach the same verdicts?

``talbench verdicts --compare A B`` judges every claim on the results folder ``A`` and on ``B`` (each with its
``predictions/`` folder beside it), as the leaderboard does, and lists every claim whose verdict differs:

* **holds <-> fails** is an **error** (exit code 1): a verdict that another set of seeds (or another machine,
  which acts like another seed) turns around was never a verdict;
* **decisive <-> inconclusive** is a **warning**: the interval moved across the claim's bound.

Claims judged n/a on either side are not compared. The check in practice: the same tables run with two
disjoint seed sets (``--first-seed 0`` and ``--first-seed 5``) must not flip a verdict (docs/leaderboards.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from talbench.benchmark.results import load_table_result
from talbench.benchmark.schema import BENCHMARKS_DIR, load_all
from talbench.leaderboard.claims import FAILS, HOLDS, INCONCLUSIVE, Judgement, Rule
from talbench.leaderboard.render import TableView

DECISIVE = (HOLDS, FAILS)


@dataclass(frozen=True)
class Verdict:
    table: str
    claim: int  # 1-based position in the benchmark file
    text: str
    judgement: Judgement


@dataclass(frozen=True)
class Change:
    table: str
    claim: int
    text: str
    before: str
    after: str

    @property
    def flip(self) -> bool:
        return {self.before, self.after} == set(DECISIVE)


def verdicts(results_dir: Path, rule: Rule, benchmarks_dir: Path = BENCHMARKS_DIR) -> dict[tuple[str, int], Verdict]:
    """Every claim of every table with a results file in ``results_dir``, judged on the reproduction."""
    out = {}
    for table, bench in load_all(benchmarks_dir).items():
        path = Path(results_dir) / f"{table}.json"
        if bench.status != "active" or not path.is_file():
            continue
        view = TableView.build(bench, load_table_result(path, bench), rule, Path(results_dir).parent)
        for number, (claim, judgement) in enumerate(zip(bench.claims, view.reproduced, strict=True), start=1):
            out[table, number] = Verdict(table, number, claim.text, judgement)
    return out


def compare(first: dict[tuple[str, int], Verdict], second: dict[tuple[str, int], Verdict]) -> list[Change]:
    """The claims judged in both whose verdicts differ (n/a on either side is not a verdict)."""
    changes = []
    for key in sorted(first.keys() & second.keys()):
        a, b = first[key].judgement.verdict, second[key].judgement.verdict
        if a != b and {a, b} <= {HOLDS, FAILS, INCONCLUSIVE}:
            changes.append(Change(key[0], key[1], first[key].text, a, b))
    return changes


def counts(found: dict[tuple[str, int], Verdict]) -> dict[str, int]:
    """How many claims hold, fail, are inconclusive or n/a."""
    out: dict[str, int] = {}
    for verdict in found.values():
        out[verdict.judgement.verdict] = out.get(verdict.judgement.verdict, 0) + 1
    return out
