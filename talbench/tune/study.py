"""``talbench tune STUDY``: an Optuna study of a paper's loss weights, tracked in MLflow.

1. Search: ``n_trials`` trials (TPE, seeded) train the study's row on ``train_fit`` and score it on
   ``holdout`` (seeded held-out training videos), pruned on the per-epoch validation mAP@0.5; each trial is an
   MLflow run nested under the study's parent run. ``--workers N`` runs N processes on the study;
   ``--storage postgresql://...`` shares it between machines.
2. Final protocol (once the study has all its trials and none runs elsewhere): the paper's defaults and the
   best trial's values, each for the study's ``final_seeds``, on the holdout (validation) and, retrained on
   all training videos, once on the test split. Nothing here selects on the test split.
3. Outputs, written atomically: ``tuned/<study>.json`` (flat ``{"dotted.key": value}``, merged by
   ``talbench run --tuned``), ``results/tune/<study>.json`` (``talbench.benchmark.results.TuneResult``
   plus the study's pruning and sensitivity statistics) and ``results/tune/<study>.png`` (optimisation
   history and parameter importances, also an MLflow artifact of the parent run).

Time saved by pruning (an estimate): for each pruned trial, the reported epochs it did not run
(``len(search_seeds) x epochs - (last step + 1)``) times the mean measured epoch time (the interval between
consecutive reports: one epoch of training plus its validation) over all trials of the study. Training stages
before the reported one (D-Net's RGB detector, RefactorNet's stage 1) of later seeds are not counted, so the
estimate is a lower bound when ``search_seeds`` has more than one seed.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from talbench.config import config_hash, load_params
from talbench.data import DatasetCache
from talbench.errors import ConfigError
from talbench.io import atomic_write_json
from talbench.progress import task_progress
from talbench.tune.objective import TrialObjective, evaluate_config
from talbench.tune.space import FINAL_SPLITS, TUNING_SPLITS, Study, load_study
from talbench.tune.storage import open_storage, redact, storage_url
from talbench.tune.workers import make_pruner, make_sampler, run_worker, spawn_workers, split_trials

OBJECTIVE_FACTORY = "talbench.tune.study:worker_objective"
DEFAULT_EXPERIMENT = "talbench-tune"


def worker_objective(*, study: str, params_path: str, benchmarks_dir: str, tracking_uri: str,
                     experiment_id: str, parent_run_id: str, console=None) -> TrialObjective:
    """Objective factory run inside each worker (see :func:`talbench.tune.workers.run_worker`)."""
    spec = load_study(study, load_params(params_path), benchmarks_dir=benchmarks_dir)
    return TrialObjective(spec, tracking_uri=tracking_uri, experiment_id=experiment_id,
                          parent_run_id=parent_run_id, console=console)


def definition_hash(study: Study) -> str:
    """Identifies what a trial means (spec and base configuration): a stored study made with another
    definition must not be continued."""
    return config_hash({"spec": study.spec.model_dump(), "base": study.base_cfg})


def _states():
    from optuna.trial import TrialState

    return TrialState


def counted_trials(ostudy) -> list:
    """Trials that count towards ``n_trials``: complete, pruned, or running (maybe on another machine).
    Failed trials are not counted: a rerun replaces them."""
    states = _states()
    return ostudy.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.RUNNING))


def pruning_stats(trials: list, total_steps: int) -> dict[str, Any]:
    """Counts of pruned trials, the mean measured epoch time and the estimated seconds saved (module doc)."""
    states = _states()
    intervals = [s for t in trials for s in t.user_attrs.get("epoch_seconds", [])]
    mean_epoch = statistics.fmean(intervals) if intervals else None
    pruned = [t for t in trials if t.state == states.PRUNED]
    skipped = sum(max(0, total_steps - (int(t.user_attrs.get("last_step", -1)) + 1)) for t in pruned)
    return {
        "n_pruned": len(pruned),
        "pruned_epochs_skipped": skipped,
        "mean_epoch_seconds": mean_epoch,
        "seconds_saved_by_pruning": skipped * mean_epoch if mean_epoch is not None else 0.0,
    }


def sensitivity(values: list[float]) -> dict[str, Any]:
    """Spread of the validation objective over the completed trials of the search space."""
    return {
        "n_complete": len(values),
        "min": min(values),
        "max": max(values),
        "max_minus_min": max(values) - min(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def importances(ostudy, seed: int) -> dict[str, float] | None:
    """Optuna's fANOVA parameter importances (seeded); ``None`` with fewer than two completed trials or
    no variation of the objective (nothing to attribute)."""
    import optuna

    complete = ostudy.get_trials(deepcopy=False, states=(_states().COMPLETE,))
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return None
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return dict(optuna.importance.get_param_importances(ostudy, evaluator=evaluator))


def _parent_run(client, experiment_id: str, ostudy, study: Study, url: str) -> str:
    """The study's MLflow parent run: the one recorded in the study (shared storage: every machine logs
    under it when they share a tracking server), else a new one."""
    from mlflow.exceptions import MlflowException

    from talbench.tracking import store

    recorded = ostudy.user_attrs.get("mlflow_parent_run_id")
    if recorded:
        try:
            client.get_run(recorded)
            client.update_run(recorded, status="RUNNING")
            client.set_tag(recorded, store.OWNER_TAG, store.owner())
            return recorded
        except MlflowException:
            pass  # recorded in another tracking store: this machine gets its own parent run
    run = client.create_run(
        experiment_id, run_name=f"tune {study.name}",
        tags={"kind": "study", "study": study.name, "paper": study.spec.paper, "table": study.spec.table or "",
              "row": study.spec.row or "", "optuna_storage": redact(url), "objective": study.spec.objective,
              store.OWNER_TAG: store.owner()},
    )
    parent = run.info.run_id
    client.log_param(parent, "space", study.spec.model_dump_json(include={"space"}))
    client.log_param(parent, "sampler", study.spec.sampler.model_dump_json())
    client.log_param(parent, "pruner", study.spec.pruner.model_dump_json())
    client.log_param(parent, "search_seeds", str(study.spec.search_seeds))
    client.log_param(parent, "final_seeds", str(study.spec.final_seeds))
    ostudy.set_user_attr("mlflow_parent_run_id", parent)
    return parent


def study_device(definition: Study) -> str:
    """The described device the study's trials run on (``run.device``; a bad value or precision is an error
    before any trial)."""
    from talbench.runners.common.device import describe, precision, row_device

    cfg = definition.config({}, TUNING_SPLITS)
    precision(cfg)
    return describe(row_device(cfg))


def run_study(
    study: str,
    *,
    trials: int | None = None,
    storage: str | None = None,
    workers: int = 1,
    console: Console | None = None,
    params_path: str | Path = "params.yaml",
    benchmarks_dir: str | Path = "benchmarks",
    results_dir: str | Path = "results",
    tuned_dir: str | Path = "tuned",
) -> dict[str, Any] | None:
    """Run (or continue) study ``study`` to ``trials`` trials in total, then the final protocol.
    Returns the results written to ``results/tune/<study>.json``, or ``None`` when trials still run
    elsewhere (the last machine to finish writes the results)."""
    import optuna

    from talbench.tracking import provenance, store
    from talbench.tracking.runs import end_with_error

    console = console or Console()
    params_path, benchmarks_dir = Path(params_path).resolve(), Path(benchmarks_dir).resolve()
    definition = load_study(study, load_params(params_path), benchmarks_dir=benchmarks_dir)
    spec = definition.spec
    device = study_device(definition)
    target = spec.n_trials if trials is None else int(trials)
    if target < 1:
        raise ConfigError(f"--trials must be >= 1, got {target}")
    url = storage_url(storage, definition.settings.get("storage") or "optuna.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ostudy = optuna.create_study(
        study_name=study, storage=open_storage(url), direction=spec.direction, load_if_exists=True,
        sampler=make_sampler(spec.sampler), pruner=make_pruner(spec.pruner),
    )
    recorded = ostudy.user_attrs.get("definition_hash")
    if recorded is None:
        ostudy.set_user_attr("definition_hash", definition_hash(definition))
    elif recorded != definition_hash(definition):
        raise ConfigError(
            f"{redact(url)}: study '{study}' was created with another definition (search space, seeds, profile "
            f"or base parameters changed in params.yaml): delete it (`optuna delete-study --study-name {study} "
            f"--storage <url>`) or use another storage"
        )

    uri = store.tracking_uri()
    client = store.client(uri)
    experiment = definition.settings.get("experiment") or DEFAULT_EXPERIMENT
    experiment_id = store.ensure_experiment(client, experiment)
    store.mark_orphans_killed(client, experiment_id)
    parent = _parent_run(client, experiment_id, ostudy, definition, url)
    client.set_tag(parent, "device", device)
    started = time.perf_counter()
    try:
        remaining = max(0, target - len(counted_trials(ostudy)))
        _search(ostudy, definition, url, remaining, workers, console, params_path, benchmarks_dir, uri,
                experiment_id, parent)
        all_trials = ostudy.get_trials(deepcopy=False)
        states = _states()
        if any(t.state == states.RUNNING for t in all_trials):
            console.print(Text(f"{study}: trials still running on other workers; the last worker to finish runs "
                               "the final protocol and writes the results", style="yellow"))
            client.log_metric(parent, "time/search_s", time.perf_counter() - started)
            return None
        result = _finalize(ostudy, definition, url, console, uri, experiment, experiment_id, parent,
                           Path(results_dir), Path(tuned_dir), provenance)
    except BaseException as err:
        end_with_error(client, parent, err)
        raise
    client.log_metric(parent, "time/study_s", time.perf_counter() - started)
    client.set_terminated(parent, status="FINISHED")
    return result


def _search(ostudy, definition: Study, url: str, remaining: int, workers: int, console: Console,
            params_path: Path, benchmarks_dir: Path, uri: str, experiment_id: str, parent: str) -> None:
    spec = definition.spec
    if remaining == 0:
        console.print(f"{definition.name}: {len(counted_trials(ostudy))} trials recorded, none to add")
        return
    quotas = split_trials(remaining, workers)
    kwargs = {"study": definition.name, "params_path": str(params_path), "benchmarks_dir": str(benchmarks_dir),
              "tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": parent}
    sampler, pruner = spec.sampler.model_dump(), spec.pruner.model_dump()
    console.print(f"[bold]{definition.name}[/]: {remaining} trial(s) on {len(quotas)} worker(s), storage "
                  f"{redact(url)}, objective {spec.objective} on the holdout, MLflow parent run {parent}")
    states = _states()
    done_states = (states.COMPLETE, states.PRUNED, states.FAIL)
    before = len(ostudy.get_trials(deepcopy=False, states=done_states))
    with task_progress(console) as progress:
        task = progress.add_task(f"tune {definition.name}", total=remaining)
        if len(quotas) == 1:
            def report(study, trial) -> None:
                value = "pruned" if trial.state == states.PRUNED else f"{trial.value:.2f}"
                progress.console.print(Text(f"  trial {trial.number} {trial.params} -> {value}"))
                progress.advance(task)

            run_worker(definition.name, url, quotas[0], 0, sampler, pruner, OBJECTIVE_FACTORY,
                       kwargs | {"console": console}, callbacks=[report])
        else:
            def poll() -> None:
                done = len(ostudy.get_trials(deepcopy=False, states=done_states)) - before
                progress.update(task, completed=min(done, remaining))

            spawn_workers(definition.name, url, quotas, sampler, pruner, OBJECTIVE_FACTORY, kwargs, poll=poll)


def _finalize(ostudy, definition: Study, url: str, console: Console, uri: str, experiment: str,
              experiment_id: str, parent: str, results_dir: Path, tuned_dir: Path, provenance) -> dict[str, Any]:
    from talbench.benchmark.results import TuneResult
    from talbench.tracking import store
    from talbench.tune.plot import plot_study

    spec = definition.spec
    states = _states()
    trials = ostudy.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == states.COMPLETE]
    if not complete:
        raise ConfigError(f"study '{definition.name}': no trial completed (all pruned or failed): nothing to report")
    best = ostudy.best_trial
    tuned = {name: best.params[name] for name in definition.param_names}
    published = definition.published()
    datasets = DatasetCache()
    common = {"tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": parent, "console": console,
              "datasets": datasets}
    console.print(f"[bold]{definition.name}[/]: best trial {best.number} ({best.value:.2f}) {tuned}; final "
                  f"protocol with seeds {spec.final_seeds}: holdout, then train -> test once")
    scores = {}
    for split_name, splits in (("validation", TUNING_SPLITS), ("test", FINAL_SPLITS)):
        scores[split_name] = {
            label: evaluate_config(definition, values, splits, spec.final_seeds, label=label, **common)
            for label, values in (("published", published), ("tuned", tuned))
        }

    importance = importances(ostudy, spec.sampler.seed)
    prune = pruning_stats(trials, len(spec.search_seeds) * definition.epochs)
    spread = sensitivity([t.value for t in complete])
    plot_path = results_dir / "tune" / f"{definition.name}.png"
    plot_study(ostudy, importance, plot_path, title=f"{definition.name}: {spec.objective} on holdout")
    client = store.client(uri)
    client.log_artifact(parent, str(plot_path))

    base_cfg = definition.config(published, FINAL_SPLITS)
    dataset = datasets(base_cfg)
    tuned_path = tuned_dir / f"{definition.name}.json"
    atomic_write_json(tuned_path, tuned)
    result = {
        "study": definition.name,
        "paper": spec.paper,
        "table": spec.table,
        "row": spec.row,
        "objective": f"{spec.objective} on holdout",
        "direction": spec.direction,
        "n_trials": len(trials),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": provenance.git_commit() or "unknown",
        "git_dirty": bool(provenance.git_dirty()),
        "storage": store.display_uri(url),
        "data": {"source": base_cfg["data"]["source"], "profile": base_cfg["data"]["profile"],
                 "checksum": dataset.checksum()},
        "params": [
            {"name": name, "published": published[name], "tuned": tuned[name],
             "importance": None if importance is None else importance.get(name)}
            for name in definition.param_names
        ],
        "validation": {"split": "holdout", **{k: _score(v) for k, v in scores["validation"].items()}},
        "test": {"split": "test", **{k: _score(v) for k, v in scores["test"].items()}},
        "plot": _relative(plot_path),
        "tuned_file": _relative(tuned_path),
        "best_trial": {"number": best.number, "value": best.value, "mlflow_run_id": best.user_attrs.get("mlflow_run_id")},
        "search_seeds": spec.search_seeds,
        "final_seeds": spec.final_seeds,
        "n_complete": len(complete),
        "n_failed": sum(t.state == states.FAIL for t in trials),
        **prune,
        "sensitivity": spread,
        "mlflow": {"tracking_uri": store.display_uri(uri), "experiment": experiment, "parent_run_id": parent},
    }
    TuneResult.model_validate(result)  # the leaderboard's reader accepts it
    atomic_write_json(results_dir / "tune" / f"{definition.name}.json", result)
    metrics = {"best_value": float(best.value), "n_trials": float(len(trials)), "n_pruned": float(prune["n_pruned"]),
               "seconds_saved_by_pruning": float(prune["seconds_saved_by_pruning"]),
               "sensitivity/max_minus_min": spread["max_minus_min"], "sensitivity/std": spread["std"]}
    for split_name, by_label in scores.items():
        for label, score in by_label.items():
            metrics[f"{split_name}/{label}_mean"] = score["mean"]
    for name, value in metrics.items():
        client.log_metric(parent, name, value)
    client.log_dict(parent, tuned, f"tuned/{definition.name}.json")
    client.log_dict(parent, result, f"results/tune/{definition.name}.json")
    console.print(
        f"[green]{definition.name}[/]: validation {scores['validation']['published']['mean']:.2f} (paper) -> "
        f"{scores['validation']['tuned']['mean']:.2f} (tuned); test {scores['test']['published']['mean']:.2f} -> "
        f"{scores['test']['tuned']['mean']:.2f}; {prune['n_pruned']} of {len(trials)} trials pruned "
        f"(~{prune['seconds_saved_by_pruning']:.0f}s saved); wrote {tuned_path} and "
        f"{results_dir / 'tune' / f'{definition.name}.json'}"
    )
    return result


def _score(score: dict[str, Any]) -> dict[str, Any]:
    return {"mean": score["mean"], "std": score["std"], "run_ids": score["run_ids"], "values": score["values"]}


def _relative(path: Path) -> str:
    """``path`` relative to the working directory (the repository root under DVC), POSIX style."""
    return Path(os.path.relpath(Path(path).resolve(), Path.cwd().resolve())).as_posix()
