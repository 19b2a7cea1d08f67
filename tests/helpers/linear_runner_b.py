"""The linear test runner as a second "model family" with its own section ``baseline_b`` (pipeline tests:
changing one family's section reruns nothing of the other)."""

from __future__ import annotations

from helpers.linear_runner import run_row as run_baseline
from talbench.runners.common.outcome import RowOutcome

SECTIONS = ("baseline_b",)
RUNNER = "helpers.linear_runner_b:run_row"


def run_row(cfg: dict, seed: int, dataset, console=None, report=None) -> RowOutcome:
    return run_baseline(cfg, seed, dataset, console, report, section="baseline_b")
