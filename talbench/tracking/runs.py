"""One MLflow run's life and what is logged into it, for ``talbench run`` and ``talbench tune`` alike.

:func:`tracked_run` creates a run, yields its id and ends it FINISHED, or FAILED when the block raises (the
exception propagates; ``status_on_error`` may choose another status, e.g. KILLED for a pruned trial). Runs are
driven through ``MlflowClient`` with explicit ids (no process-global active run), so parent and nested runs
of several processes never mix. mlflow is imported inside functions.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from talbench.config import flatten

MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value (characters)
PARAMS_PER_BATCH = 100  # MLflow's limit on params per log_batch call
METRICS_PER_BATCH = 1000


@contextlib.contextmanager
def tracked_run(
    client,
    experiment_id: str,
    *,
    name: str,
    tags: dict[str, str],
    status_on_error: Callable[[BaseException], str] | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
) -> Iterator[str]:
    """Create a run (``tags`` may hold ``mlflow.parentRunId``), yield its id, end it FINISHED, or FAILED
    (``status_on_error(exc)`` if given) when the block raises. ``start_time`` / ``end_time`` (ms since the
    epoch) record work done elsewhere (a worker process) instead of the block's own time."""
    run_id = client.create_run(experiment_id, start_time=start_time, run_name=name, tags=tags).info.run_id
    try:
        yield run_id
    except BaseException as err:
        client.set_terminated(run_id, status=status_on_error(err) if status_on_error else "FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED", end_time=end_time)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 3] + "..."


def log_params(client, run_id: str, cfg: dict[str, Any]) -> None:
    """Every parameter of the (scoped) configuration, flattened (``dnet.lambda1``), in batches of MLflow's limit."""
    from mlflow.entities import Param

    items = [Param(key, _param_value(value)) for key, value in sorted(flatten(cfg).items())]
    for start in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])


def log_metrics(client, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """``metrics`` at ``step``, in batches of MLflow's limit."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, step) for key, value in sorted(metrics.items())]
    for start in range(0, len(items), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=items[start : start + METRICS_PER_BATCH])


def log_outcome_artifacts(client, run_id: str, cfg: dict[str, Any], outcome) -> None:
    """Resolved config, parameter counts, timings, predictions (ActivityNet result JSON per stream), per-video
    metric components and the runner's extra files of a :class:`talbench.runners.common.outcome.RowOutcome`."""
    from talbench.eval.io import predictions_to_json

    with tempfile.TemporaryDirectory(prefix="talbench-artifacts-") as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(cfg, indent=2, default=str), encoding="utf-8")
        (folder / "param_counts.json").write_text(json.dumps(outcome.param_counts, indent=2), encoding="utf-8")
        (folder / "timings.json").write_text(json.dumps(outcome.timings, indent=2), encoding="utf-8")
        if outcome.video_stats is not None:
            records = outcome.video_stats.to_dict(orient="records")
            (folder / "video_stats.json").write_text(json.dumps(records, default=float), encoding="utf-8")
        predictions = folder / "predictions"
        predictions.mkdir()
        for stream, frame in outcome.predictions.items():
            predictions_to_json(frame, predictions / f"{stream.replace('/', '_')}.json")
        client.log_artifacts(run_id, str(folder))
    for name, path in outcome.artifacts.items():
        client.log_artifact(run_id, str(path), artifact_path=f"extra/{name}")
