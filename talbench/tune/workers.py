"""Optuna workers: the sampler and pruner of a study, and N processes optimising one study together.

Each worker process opens the shared storage itself, loads the study and runs its quota of trials
(``study.optimize(n_trials=quota)``); quotas add up to the trials requested, so one invocation records
exactly that many trials. Workers are ``python -m talbench.tune.workers <json>`` subprocesses; the
objective is built inside each by a factory named as ``"module:function"`` (called with JSON keyword
arguments). Each worker's TPE sampler is seeded ``sampler.seed + worker index`` (otherwise every worker
would draw the same start-up points); TPE's constant liar treats running trials as bad, so concurrent
workers do not sample the same region.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from talbench.tune.space import PrunerSpec, SamplerSpec
from talbench.tune.storage import open_storage, redact


def make_sampler(spec: SamplerSpec, worker_index: int = 0):
    import optuna

    return optuna.samplers.TPESampler(
        seed=spec.seed + worker_index,
        n_startup_trials=spec.n_startup_trials,
        multivariate=spec.multivariate,
        constant_liar=spec.constant_liar,
    )


def make_pruner(spec: PrunerSpec):
    import optuna

    if spec.type == "median":
        return optuna.pruners.MedianPruner(spec.n_startup_trials, spec.n_warmup_steps, spec.interval_steps)
    if spec.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_resource, reduction_factor=spec.reduction_factor,
            min_early_stopping_rate=spec.min_early_stopping_rate,
        )
    return optuna.pruners.NopPruner()


def split_trials(n_trials: int, workers: int) -> list[int]:
    """Quotas of ``workers`` processes adding up to ``n_trials`` (empty quotas dropped)."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    quotas = [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]
    return [q for q in quotas if q > 0]


def import_factory(spec: str) -> Callable[..., Callable]:
    module_name, _, function_name = spec.partition(":")
    function = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(function):
        raise TypeError(f"objective factory '{spec}' is not a function")
    return function


def run_worker(study_name: str, url: str, n_trials: int, worker_index: int, sampler: dict, pruner: dict,
               factory: str, factory_kwargs: dict[str, Any], callbacks: list[Callable] | None = None) -> None:
    """Run ``n_trials`` trials of ``study_name`` in this process (the study must exist in ``url``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = import_factory(factory)(**factory_kwargs)
    study = optuna.load_study(
        study_name=study_name, storage=open_storage(url),
        sampler=make_sampler(SamplerSpec.model_validate(sampler), worker_index),
        pruner=make_pruner(PrunerSpec.model_validate(pruner)),
    )
    study.optimize(objective, n_trials=n_trials, callbacks=callbacks)


def spawn_workers(study_name: str, url: str, quotas: list[int], sampler: dict, pruner: dict, factory: str,
                  factory_kwargs: dict[str, Any], *, poll: Callable[[], None] | None = None,
                  poll_seconds: float = 1.0) -> None:
    """Run one process per quota (``python -m talbench.tune.workers <json>``: a clean interpreter, no
    forked torch/SQLite state, no re-import of the caller's main module) and wait for all of them;
    ``poll()`` is called while they run (progress display). A failed worker makes this raise once the
    others have finished; arguments travel as JSON."""
    processes = []
    for index, quota in enumerate(quotas):
        payload = json.dumps({"study_name": study_name, "url": url, "n_trials": quota, "worker_index": index,
                              "sampler": sampler, "pruner": pruner, "factory": factory,
                              "factory_kwargs": factory_kwargs})
        processes.append(subprocess.Popen([sys.executable, "-m", "talbench.tune.workers", payload]))
    try:
        while any(p.poll() is None for p in processes):
            if poll is not None:
                poll()
            time.sleep(poll_seconds)
    except BaseException:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait()
        raise
    if poll is not None:
        poll()
    failed = [f"worker {i} (exit code {p.returncode})" for i, p in enumerate(processes) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"study '{study_name}' on {redact(url)}: {', '.join(failed)} failed")


if __name__ == "__main__":
    run_worker(**json.loads(sys.argv[1]))
