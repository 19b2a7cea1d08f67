"""One benchmark row with one seed: dispatch to the model family's runner, deterministically.

``cfg["model"]["runner"]`` names an entry of :data:`RUNNERS` (a dotted ``module:function`` path, imported
only when used) or is itself a ``module:function`` path. Every runner has the signature
``run(cfg, seed, dataset, console, report=None) -> RowOutcome`` (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from talbench.config import ConfigError

RUNNERS: dict[str, str | Callable[..., RowOutcome]] = {
    "proposal_detector": "talbench.engine.proposal_runner:run_row",
    "refactornet": "talbench.engine.refactornet_runner:run_row",
}


@dataclass
class RowOutcome:
    """What a runner returns for one row and seed.

    ``metrics``: flat names (``rgb/mAP_0.5``, ``fusion/average_mAP``, ``params_m``, ``class_acc``, ...),
    percentages as the papers print them. ``predictions``: stream -> DataFrame ``video_id, label, start,
    end, score`` on the evaluation split. ``timings``: seconds (``train``, ``infer``, ...).
    """

    metrics: dict[str, float]
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    param_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    checkpoint_dir: Path | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)

    def validate(self, runner: str) -> None:
        """Metric names MLflow accepts (no ``@``) and real numbers; prediction frames with the shared columns."""
        for name, value in self.metrics.items():
            if "@" in name:
                raise ConfigError(f"runner '{runner}': metric name '{name}' contains '@' (use 'mAP_0.5')")
            if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
                raise ConfigError(
                    f"runner '{runner}': metric '{name}' is {type(value).__name__}, not a number"
                )
            if math.isinf(float(value)):
                raise ConfigError(f"runner '{runner}': metric '{name}' is infinite")
        required = {"video_id", "label", "start", "end", "score"}
        for stream, frame in self.predictions.items():
            missing = required - set(frame.columns)
            if missing:
                raise ConfigError(
                    f"runner '{runner}': predictions of stream '{stream}' lack {sorted(missing)}"
                )


def register_runner(name: str, target: str | Callable[..., RowOutcome]) -> None:
    """Add a runner under ``name`` (``module:function`` path or the callable itself)."""
    RUNNERS[name] = target


def resolve_runner(name: str) -> Callable[..., RowOutcome]:
    target = RUNNERS.get(name, name if ":" in name else None)
    if target is None:
        raise ConfigError(f"params: model.runner '{name}' is unknown (known: {sorted(RUNNERS)})")
    if callable(target):
        return target
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"params: model.runner '{name}' -> module '{module_name}' not found: {err}"
        ) from err
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"params: model.runner '{name}' -> '{target}' is not a function")
    return function


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


def run_row(
    cfg: dict[str, Any],
    seed: int,
    dataset,
    console=None,
    report: Callable[[int, float], None] | None = None,
) -> RowOutcome:
    """Seed everything, then run ``cfg["model"]["runner"]`` on ``dataset``; ``report(step, value)`` is
    handed to the runner (per-epoch validation score for tuning/pruning)."""
    try:
        runner_name = cfg["model"]["runner"]
    except (KeyError, TypeError) as err:
        raise ConfigError("params.yaml: model.runner is missing") from err
    runner = resolve_runner(runner_name)
    seed_everything(seed, threads=cfg.get("run", {}).get("torch_threads", 1))
    outcome = runner(cfg, seed, dataset, console, report=report)
    if not isinstance(outcome, RowOutcome):
        raise ConfigError(f"runner '{runner_name}' returned {type(outcome).__name__}, not RowOutcome")
    outcome.validate(runner_name)
    return outcome
