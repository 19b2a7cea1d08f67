"""One MLflow run's life and what is logged into it, for ``talbench run`` and ``talbench tune`` alike.

:func:`tracked_run` creates a run, yields its id and ends it FINISHED; when the block raises, KILLED for an
interruption (Ctrl-C, SIGTERM) and FAILED otherwise (``status_on_error`` may choose another status, e.g.
KILLED for a pruned trial), with the error's line as the tag ``error`` and the run's description, so that the
UI says why (:func:`end_with_error`). Each run carries the tag ``talbench.owner`` (host, process id and start
time), by which the next command marks runs of a process that died without a word (SIGKILL, power loss)
KILLED (:func:`talbench.tracking.store.mark_orphans_killed`). Runs are driven through ``MlflowClient`` with
explicit ids (no process-global active run), so parent and nested runs of several processes never mix.
mlflow is imported inside functions.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from talbench.config import flatten
from talbench.errors import Terminated
from talbench.tracking.store import OWNER_TAG, owner

MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value (characters)
MAX_ERROR_LINE = 2000  # of the error recorded on a failed run (MLflow allows 8000 per tag)
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
    """Create a run (``tags`` may hold ``mlflow.parentRunId``), yield its id, end it FINISHED, or as
    :func:`end_with_error` when the block raises. ``start_time`` / ``end_time`` (ms since the epoch) record
    work done elsewhere (a worker process) instead of the block's own time."""
    run_id = client.create_run(experiment_id, start_time=start_time, run_name=name,
                               tags={**tags, OWNER_TAG: owner()}).info.run_id
    try:
        yield run_id
    except BaseException as err:
        end_with_error(client, run_id, err, status_on_error)
        raise
    client.set_terminated(run_id, status="FINISHED", end_time=end_time)


def error_line(err: BaseException) -> str:
    """One line saying why a run ended: the interruption, or the exception's type and first line."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted by SIGTERM" if isinstance(err, Terminated) else "interrupted by SIGINT (Ctrl-C)"
    text = str(err).strip().splitlines()
    line = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
    return line if len(line) <= MAX_ERROR_LINE else line[: MAX_ERROR_LINE - 3] + "..."


def end_with_error(client, run_id: str, err: BaseException,
                   status_on_error: Callable[[BaseException], str] | None = None) -> None:
    """End ``run_id`` because of ``err``: KILLED for an interruption, else ``status_on_error(err)`` or FAILED;
    the error line goes to the tag ``error`` and to the run's description (``mlflow.note.content``)."""
    if isinstance(err, KeyboardInterrupt):
        status = "KILLED"
    else:
        status = status_on_error(err) if status_on_error else "FAILED"
    line = error_line(err)
    client.set_tag(run_id, "error", line)
    client.set_tag(run_id, "mlflow.note.content", line)
    client.set_terminated(run_id, status=status)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 3] + "..."


def log_params(client, run_id: str, cfg: dict[str, Any]) -> None:
    """Every parameter of ``cfg``, flattened (``dnet.lambda1``), in batches of MLflow's limit."""
    from mlflow.entities import Param

    items = [Param(key, _param_value(value)) for key, value in sorted(flatten(cfg).items())]
    for start in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])


def set_tags(client, run_id: str, tags: dict[str, str]) -> None:
    """``tags`` on the run, one batch."""
    from mlflow.entities import RunTag

    if tags:
        client.log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])


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


def metric_key(text: str) -> str:
    """``text`` as a part of an MLflow metric name (letters, digits, ``_ . - `` and spaces; no slash)."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w.\- ]", " ", text)).strip() or "_"


def log_row_means(client, run_id: str, rows: list[dict[str, Any]]) -> None:
    """Each row's mean over its seeds, per table column, on the table's parent run as ``<column>/<row>``
    (``fusion/D-Net``): the parent's line in the UI then shows the table instead of "-"."""
    metrics: dict[str, float] = {}
    for index, row in enumerate(rows):
        name = metric_key(row["name"])
        for column, value in row["mean"].items():
            key = f"{metric_key(column)}/{name}"
            if value is not None:
                metrics[key if key not in metrics else f"{key} {index}"] = value
    log_metrics(client, run_id, metrics)
