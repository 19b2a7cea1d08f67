"""Running one row deterministically: seed everything, call the family's runner, check its outcome.

Part of every family's code hash (:meth:`talbench.runners.families.Family.code_hash`): what decides the numbers
of a row is this module and the runner's own import closure.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from talbench.errors import ConfigError
from talbench.runners.common.outcome import RowOutcome


def seed_everything(seed: int, threads: int | None = 1) -> None:
    """Python, NumPy and torch seeds; deterministic algorithms; ``threads`` intra-op threads (CPU
    reductions then run in one fixed order, so the same seed gives the same numbers)."""
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(int(threads))


def execute_row(
    runner: Callable[..., RowOutcome],
    name: str,
    cfg: dict[str, Any],
    seed: int,
    dataset,
    console=None,
    report: Callable[[int, float], None] | None = None,
) -> RowOutcome:
    """Seed everything, then ``runner(cfg, seed, dataset, console, report=report)``; its outcome checked."""
    seed_everything(seed, threads=cfg.get("run", {}).get("torch_threads", 1))
    outcome = runner(cfg, seed, dataset, console, report=report)
    if not isinstance(outcome, RowOutcome):
        raise ConfigError(f"runner '{name}' returned {type(outcome).__name__}, not RowOutcome")
    outcome.validate(name)
    return outcome
