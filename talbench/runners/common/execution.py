"""Running one row deterministically: resolve its device, seed everything, call the family's runner, check its
outcome and record where it ran.

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
    reductions then run in one fixed order, so the same seed gives the same numbers). New tensors are not filled
    with NaN, which deterministic mode otherwise does to every uninitialised allocation: it changes no result (only
    a read of uninitialised memory would see it) and costs 2.6 % of a one-stage training step."""
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False
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
    """Resolve ``run.device`` and ``run.mixed_precision`` (a bad value is an error before any work), seed
    everything, make CUDA deterministic, then ``runner(cfg, seed, dataset, console, report=report)``; its outcome
    checked and given the row's device tags (:func:`talbench.runners.common.device.device_tags`). The runner
    asks for the same device with ``row_device(cfg)``."""
    from talbench.runners.common.device import (  # loads torch: importing the families stays light
        configure_determinism,
        device_tags,
        nondeterminism_recorder,
        precision,
        row_device,
    )

    device = row_device(cfg)
    precision(cfg)
    seed_everything(seed, threads=cfg.get("run", {}).get("torch_threads", 1))
    configure_determinism(device)
    with nondeterminism_recorder(device) as nondeterministic:
        outcome = runner(cfg, seed, dataset, console, report=report)
    if not isinstance(outcome, RowOutcome):
        raise ConfigError(f"runner '{name}' returned {type(outcome).__name__}, not RowOutcome")
    outcome.validate(name)
    outcome.device_tags = device_tags(cfg, device, nondeterministic)
    return outcome
