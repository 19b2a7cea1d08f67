"""A runner that breaks the outcome contract (a metric name with '@'): the orchestrator must refuse it."""

from __future__ import annotations

from talbench.runners.common.outcome import RowOutcome

SECTIONS: tuple[str, ...] = ()


def run_row(cfg: dict, seed: int, dataset, console=None, report=None) -> RowOutcome:
    return RowOutcome({"mAP@0.5": 1.0})
