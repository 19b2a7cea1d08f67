"""The Optuna objective of a study and the evaluations of one configuration, each an MLflow run.

Every trial is one MLflow run nested under the study's parent run (tag ``mlflow.parentRunId``): its
parameters (every resolved key), the intermediate validation mAP@0.5 as a step metric
(``holdout/mAP_0.5_per_epoch``, step = seed index x epochs + epoch), the objective, and its Optuna state
(tag ``optuna_state``: COMPLETE, PRUNED or FAIL; a pruned trial's run ends KILLED). The runner calls
``report(epoch, value)`` after each epoch of its last training stage (docs/architecture.md); the
objective forwards it to ``trial.report`` and raises ``optuna.TrialPruned`` when the pruner says so.
MLflow is driven through ``MlflowClient`` with explicit run ids (not optuna_integration's MLflowCallback,
which logs neither intermediate values nor pruned runs' steps, and relies on the process's active run).
Trials run on ``run.device`` like every row (:func:`talbench.runners.families.run_row`); a trial's run is
tagged with the device its seeds ran on (``device``, ``mixed_precision``).
"""

from __future__ import annotations

import time
from typing import Any

from talbench.data import DatasetCache
from talbench.errors import ConfigError
from talbench.stats import mean_std
from talbench.tune.space import TUNING_SPLITS, Study, suggest

STEP_METRIC = "holdout/mAP_0.5_per_epoch"


def objective_value(study: Study, metrics: dict[str, float], where: str) -> float:
    name = study.spec.objective
    if name not in metrics:
        raise ConfigError(
            f"params.yaml: tune.studies.{study.name}.objective: the runner did not report '{name}' "
            f"({where}; reported: {sorted(metrics)})"
        )
    return float(metrics[name])


class TrialObjective:
    """``objective(trial) -> float``: mean objective metric on the holdout over the study's search seeds."""

    def __init__(self, study: Study, *, tracking_uri: str, experiment_id: str, parent_run_id: str,
                 console=None, datasets: DatasetCache | None = None):
        self.study = study
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.console = console
        self.datasets = datasets or DatasetCache()

    def __call__(self, trial) -> float:
        import optuna

        from talbench.runners.families import run_row
        from talbench.tracking import store
        from talbench.tracking.runs import log_metrics, log_params, set_tags, tracked_run

        client = store.client(self.tracking_uri)
        values = suggest(trial, self.study.spec.space)
        cfg = self.study.config(values, TUNING_SPLITS)
        tags = {"mlflow.parentRunId": self.parent_run_id, "kind": "trial", "study": self.study.name,
                "paper": self.study.spec.paper, "trial_number": str(trial.number),
                "split": cfg["run"]["eval_split"], "optuna_state": "RUNNING"}

        def failed(err: BaseException) -> str:
            pruned = isinstance(err, optuna.TrialPruned)
            client.set_tag(run_id, "optuna_state", "PRUNED" if pruned else "FAIL")
            return "KILLED" if pruned else "FAILED"

        with tracked_run(client, self.experiment_id, name=f"{self.study.name} trial {trial.number}", tags=tags,
                         status_on_error=failed) as run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
            log_params(client, run_id, cfg)
            epochs = self.study.epochs
            epoch_seconds: list[float] = []
            per_seed: list[float] = []
            for index, seed in enumerate(self.study.spec.search_seeds):
                last = [None]

                def report(epoch: int, value: float, index=index, last=last) -> None:
                    now = time.perf_counter()
                    if last[0] is not None:
                        epoch_seconds.append(now - last[0])
                    last[0] = now
                    step = index * epochs + int(epoch)
                    trial.report(float(value), step)
                    trial.set_user_attr("last_step", step)
                    trial.set_user_attr("epoch_seconds", list(epoch_seconds))
                    client.log_metric(run_id, STEP_METRIC, float(value), step=step)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at step {step} (validation mAP@0.5 {value:.2f})")

                outcome = run_row(cfg, seed, self.datasets(cfg), self.console, report=report)
                set_tags(client, run_id, outcome.device_tags)
                value = objective_value(self.study, outcome.metrics, f"trial {trial.number} seed {seed}")
                per_seed.append(value)
                log_metrics(client, run_id, {f"holdout/{self.study.spec.objective}": value}, step=index)
            result = mean_std(per_seed)[0]
            trial.set_user_attr("per_seed", per_seed)
            client.log_metric(run_id, "objective", result)
            client.set_tag(run_id, "optuna_state", "COMPLETE")
        return result


def evaluate_config(study: Study, values: dict[str, Any], splits: dict[str, Any], seeds: list[int], *,
                    label: str, tracking_uri: str, experiment_id: str, parent_run_id: str, console=None,
                    datasets: DatasetCache | None = None) -> dict[str, Any]:
    """Run ``values`` (dotted keys) with ``splits`` for each seed, one nested MLflow run per seed;
    ``{"mean", "std", "run_ids", "values"}`` of the objective metric (sample std, 0 with one seed)."""
    from talbench.runners.families import run_row
    from talbench.tracking import store
    from talbench.tracking.runs import log_metrics, log_params, set_tags, tracked_run

    datasets = datasets or DatasetCache()
    client = store.client(tracking_uri)
    cfg = study.config(values, splits)
    split = cfg["run"]["eval_split"]
    run_ids, scores = [], []
    for seed in seeds:
        tags = {"mlflow.parentRunId": parent_run_id, "kind": "final", "study": study.name, "config": label,
                "paper": study.spec.paper, "split": split, "seed": str(seed)}
        with tracked_run(client, experiment_id, name=f"{study.name} {label} | {split} | seed {seed}",
                         tags=tags) as run_id:
            log_params(client, run_id, cfg)
            outcome = run_row(cfg, seed, datasets(cfg), console)
            set_tags(client, run_id, outcome.device_tags)
            scores.append(objective_value(study, outcome.metrics, f"{label} on {split}, seed {seed}"))
            log_metrics(client, run_id, outcome.metrics)
        run_ids.append(run_id)
    mean, std = mean_std(scores)
    return {"mean": mean, "std": std, "run_ids": run_ids, "values": scores}
