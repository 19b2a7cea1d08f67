"""``talbench run TABLE``: every reproducible row x seed of a benchmark table as a nested MLflow run.

One parent run per table execution; one child run per row and seed, tagged with paper, table, row, dataset,
features, profile, seed, git commit (+ dirty flag, ``DVC_EXP_NAME``), data checksum, code hash, device,
config hash and train hash. A row whose resolved configuration, seed, data and code already have a FINISHED
run in the store is not run again: its recorded metrics are reused (a child run tagged ``reused_from``
keeps the table complete in the UI) and marked ``reused`` in ``results/<table>.json``.
Configuration layers: params.yaml <- profile <- data source <- tuned loss weights <- row overrides
(an ablation row that switches a loss term off keeps it off) <- row test-time overrides.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from talbench.config import (
    TEST_TIME_KEY,
    ConfigError,
    config_hash,
    deep_merge,
    flatten,
    load_params,
    nest,
    resolve,
    train_hash,
)
from talbench.io import atomic_write_json
from talbench.progress import task_progress
from talbench.tracking import provenance

MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value (characters)
PARAMS_PER_BATCH = 100  # MLflow's limit on params per log_batch call
METRICS_PER_BATCH = 1000
SYNTHETIC_FEATURES = "synthetic two-stream, I3D layout (ActionFormer THUMOS14 format)"


# --------------------------------------------------------------------------------------- configuration

def tuned_study(params: dict[str, Any], paper: str, table: str) -> str:
    """The Optuna study (params.yaml ``tune.studies``) whose weights ``--tuned`` applies to ``table``:
    the study tuned on this table, else the only study of the paper."""
    studies = (params.get("tune") or {}).get("studies") or {}
    own = [name for name, study in studies.items() if study.get("table") == table]
    of_paper = [name for name, study in studies.items() if study.get("paper") == paper]
    chosen = own or of_paper
    if len(chosen) != 1:
        found = "none" if not chosen else ", ".join(chosen)
        raise ConfigError(f"params.yaml: tune.studies: --tuned needs exactly one study for {table} ({found})")
    return chosen[0]


def load_tuned(study: str, tuned_dir: Path) -> dict[str, Any]:
    """``tuned/<study>.json`` (flat ``{"dotted.key": value}``, written by ``talbench tune``) as overrides."""
    path = Path(tuned_dir) / f"{study}.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no tuned weights for study '{study}': run `talbench tune {study}` first")
    try:
        flat = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(flat, dict):
        raise ConfigError(f"{path}: expected a flat mapping of dotted parameter keys to values")
    return nest(flat)


def row_config(
    params: dict[str, Any],
    *,
    profile: str | None,
    data_source: str | None,
    tuned: dict[str, Any] | None,
    row: dict[str, Any],
    where: str,
) -> dict[str, Any]:
    """Resolve one row's configuration (see the module docstring for the layer order)."""
    reproduce = row["reproduce"] or {}
    try:
        cfg = resolve(params, profile)
        if data_source is not None:
            cfg = deep_merge(cfg, {"data": {"source": data_source}})
        if tuned:
            cfg = deep_merge(cfg, tuned)
        cfg = deep_merge(cfg, reproduce.get("overrides") or {})
        test_overrides = reproduce.get("test_overrides") or {}
        if test_overrides:
            cfg = deep_merge(cfg, {TEST_TIME_KEY: test_overrides})
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
    return cfg


# --------------------------------------------------------------------------------------- benchmarks
def load_table(table: str, benchmarks_dir: Path) -> dict[str, Any]:
    """The benchmark file as a plain mapping, validated by :mod:`talbench.benchmarks`."""
    from talbench.benchmarks import load_benchmark

    return load_benchmark(table, benchmarks_dir).model_dump()


def select_rows(bench: dict[str, Any], rows: str | None, where: str) -> list[tuple[int, dict[str, Any]]]:
    """Reproducible rows (index in the file, row), filtered by ``--rows`` (names or 0-based indices)."""
    all_rows = list(enumerate(bench["rows"]))
    if rows is None:
        return [(i, r) for i, r in all_rows if r.get("reproduce") is not None]
    chosen = []
    for token in (t.strip() for t in rows.split(",") if t.strip()):
        if token.isdigit():
            index = int(token)
            if index >= len(all_rows):
                raise ConfigError(
                    f"{where}: --rows index {index} out of range (table has {len(all_rows)} rows)"
                )
            found = all_rows[index]
        else:
            matches = [pair for pair in all_rows if pair[1]["name"] == token]
            if not matches:
                names = [r["name"] for _, r in all_rows]
                raise ConfigError(f"{where}: --rows '{token}' is not a row name (rows: {names})")
            found = matches[0]
        if found[1].get("reproduce") is None:
            raise ConfigError(
                f"{where}: row '{found[1]['name']}' is a published reference line, not reproduced"
            )
        if found not in chosen:
            chosen.append(found)
    return chosen


def column_metrics(
    bench: dict[str, Any], row: dict[str, Any], metrics: dict[str, float], where: str
) -> dict[str, float | None]:
    """Runner metrics keyed by table column (through the benchmark's ``metrics:`` mapping). A column the
    paper filled must be produced by the runner; an empty published cell may stay empty."""
    values: dict[str, float | None] = {}
    for column, metric in bench["metrics"].items():
        if metric in metrics:
            values[column] = float(metrics[metric])
        elif (row.get("published") or {}).get(column) is not None:
            raise ConfigError(
                f"{where}: row '{row['name']}' column '{column}' needs metric '{metric}', which the runner "
                f"did not report (reported: {sorted(metrics)})"
            )
        else:
            values[column] = None
    return values


def summarize(runs: list[dict[str, Any]], columns: list[str]) -> tuple[dict, dict]:
    """Mean and sample std (ddof=1; 0.0 with one seed) per column over the seeds."""
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for column in columns:
        values = [run["metrics"].get(column) for run in runs]
        if not values or any(v is None for v in values):
            mean[column] = std[column] = None
            continue
        mean[column] = statistics.fmean(values)
        std[column] = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


# --------------------------------------------------------------------------------------- MLflow logging
def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 3] + "..."


def log_params(client, run_id: str, cfg: dict[str, Any]) -> None:
    """Every resolved parameter, flattened (``dnet.lambda_cls``), in batches of MLflow's limit."""
    from mlflow.entities import Param

    items = [Param(key, _param_value(value)) for key, value in sorted(flatten(cfg).items())]
    for start in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])


def log_metrics(client, run_id: str, metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, 0) for key, value in sorted(metrics.items())]
    for start in range(0, len(items), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=items[start : start + METRICS_PER_BATCH])


def log_outcome_artifacts(client, run_id: str, cfg: dict[str, Any], outcome) -> None:
    """Resolved config, parameter counts, timings, predictions (ActivityNet result JSON per stream)
    and the runner's extra files."""
    from talbench.eval.io import predictions_to_json

    with tempfile.TemporaryDirectory(prefix="talbench-artifacts-") as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(cfg, indent=2, default=str), encoding="utf-8")
        (folder / "param_counts.json").write_text(
            json.dumps(outcome.param_counts, indent=2), encoding="utf-8"
        )
        (folder / "timings.json").write_text(json.dumps(outcome.timings, indent=2), encoding="utf-8")
        predictions = folder / "predictions"
        predictions.mkdir()
        for stream, frame in outcome.predictions.items():
            predictions_to_json(frame, predictions / f"{stream.replace('/', '_')}.json")
        client.log_artifacts(run_id, str(folder))
    for name, path in outcome.artifacts.items():
        client.log_artifact(run_id, str(path), artifact_path=f"extra/{name}")


# --------------------------------------------------------------------------------------- the table
def run_table(
    table: str,
    *,
    rows: str | None = None,
    seeds: int | None = None,
    profile: str | None = None,
    data_source: str | None = None,
    tuned: bool = False,
    console: Console | None = None,
    params_path: Path = Path("params.yaml"),
    benchmarks_dir: Path = Path("benchmarks"),
    results_dir: Path = Path("results"),
    tuned_dir: Path = Path("tuned"),
) -> dict[str, Any] | None:
    """Run ``table``'s reproducible rows for ``seeds`` seeds, log them to MLflow and write
    ``results/<table>.json``; returns the results (``None`` for a pending table: nothing is written)."""
    from talbench.data import open_dataset
    from talbench.engine.runner import run_row
    from talbench.tracking import store

    console = console or Console()
    params = load_params(params_path)
    bench = load_table(table, benchmarks_dir)
    where = f"{Path(benchmarks_dir) / table}.yaml"
    if bench["status"] != "active":
        console.print(f"[yellow]{table} is pending[/]: {bench.get('pending_reason')}; no results written")
        return None
    selected = select_rows(bench, rows, where)
    if not selected:
        raise ConfigError(f"{where}: no row has `reproduce`; nothing to run")
    study = tuned_study(params, bench["paper"], table) if tuned else None
    tuned_overrides = load_tuned(study, tuned_dir) if study else None
    configs = [
        (
            index,
            row,
            row_config(
                params,
                profile=profile,
                data_source=data_source,
                tuned=tuned_overrides,
                row=row,
                where=f"{where} row '{row['name']}'",
            ),
        )
        for index, row in selected
    ]
    base_cfg = configs[0][2]
    n_seeds = seeds if seeds is not None else int(base_cfg["run"]["seeds"])  # the profile may set it
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {n_seeds}")
    seed_list = list(range(n_seeds))
    datasets: dict[str, Any] = {}

    def dataset_for(cfg: dict[str, Any]):
        key = config_hash(cfg["data"])
        if key not in datasets:
            datasets[key] = open_dataset(cfg)
        return datasets[key]

    dataset = dataset_for(base_cfg)  # fails early and clearly when real features are absent
    checksum = dataset.checksum()
    source = base_cfg["data"]["source"]
    features = bench["features"] if source != "synthetic" else SYNTHETIC_FEATURES
    profile_name = base_cfg["data"]["profile"]
    commit, dirty = provenance.git_commit(), provenance.git_dirty()
    code = provenance.code_hash()

    uri = store.tracking_uri()
    client = store.client(uri)
    experiment = params.get("run", {}).get("tracking_experiment", "talbench")
    experiment_id = store.ensure_experiment(client, experiment)
    common_tags = {
        "paper": bench["paper"],
        "table": table,
        "dataset": source,
        "features": features,
        "profile": profile_name,
        "git_commit": commit or "unknown",
        "git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit or "unknown",
        "data_checksum": checksum,
        "code_hash": code,
        "device": provenance.device_description(),
        "tuned": study or "false",
    }
    if provenance.dvc_experiment_name():
        common_tags["dvc_exp_name"] = provenance.dvc_experiment_name()
    parent = client.create_run(
        experiment_id,
        run_name=f"{table} ({profile_name}, {len(seed_list)} seeds)",
        tags={**common_tags, "kind": "table"},
    )
    parent_id = parent.info.run_id
    columns = list(bench["metrics"])
    result_rows = []
    started = time.perf_counter()
    try:
        with task_progress(console) as progress:
            task = progress.add_task(table, total=len(configs) * len(seed_list))
            for index, row, cfg in configs:
                chash, thash = config_hash(cfg), train_hash(cfg)
                runs = []
                for seed in seed_list:
                    progress.update(task, description=f"{table}: {row['name']} seed {seed}")
                    tags = {
                        **common_tags,
                        "kind": "row",
                        "row": row["name"],
                        "row_index": str(index),
                        "seed": str(seed),
                        "config_hash": chash,
                        "train_hash": thash,
                        "runner": cfg["model"]["runner"],
                        "mlflow.parentRunId": parent_id,
                        **({"diagnostic": row["diagnostic"]} if row.get("diagnostic") else {}),
                    }
                    previous = store.find_reusable_run(
                        client,
                        experiment_id,
                        config_hash=chash,
                        seed=seed,
                        data_checksum=checksum,
                        code_hash=code,
                    )
                    child = client.create_run(
                        experiment_id,
                        run_name=f"{row['name']} | seed {seed}",
                        tags={**tags, "reused": "false" if previous is None else "true"},
                    )
                    child_id = child.info.run_id
                    try:
                        log_params(client, child_id, cfg)
                        if previous is not None:
                            metrics = dict(previous.data.metrics)
                            client.set_tag(child_id, "reused_from", previous.info.run_id)
                            log_metrics(client, child_id, metrics)
                            console.print(
                                f"  reused run {previous.info.run_id} for {row['name']} seed {seed}"
                            )
                        else:
                            row_started = time.perf_counter()
                            outcome = run_row(cfg, seed, dataset_for(cfg), console)
                            metrics = dict(outcome.metrics)
                            metrics.update({f"time/{k}_s": float(v) for k, v in outcome.timings.items()})
                            metrics["time/row_s"] = time.perf_counter() - row_started
                            metrics.update({f"params/{k}": float(v) for k, v in outcome.param_counts.items()})
                            log_metrics(client, child_id, metrics)
                            log_outcome_artifacts(client, child_id, cfg, outcome)
                            if outcome.checkpoint_dir is not None:
                                client.set_tag(child_id, "checkpoint_dir", str(outcome.checkpoint_dir))
                    except BaseException:
                        client.set_terminated(child_id, status="FAILED")
                        raise
                    client.set_terminated(child_id, status="FINISHED")
                    runs.append(
                        {
                            "seed": seed,
                            "run_id": child_id,
                            "reused": previous is not None,
                            **({"reused_from": previous.info.run_id} if previous is not None else {}),
                            "metrics": column_metrics(bench, row, metrics, where),
                        }
                    )
                    progress.advance(task)
                mean, std = summarize(runs, columns)
                result_rows.append(
                    {
                        "name": row["name"],
                        "config_hash": chash,
                        "train_hash": thash,
                        "runs": runs,
                        "mean": mean,
                        "std": std,
                    }
                )
        results = {
            "table": table,
            "paper": bench["paper"],
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_commit": commit or "unknown",  # "unknown" outside a git checkout
            "git_dirty": dirty if dirty is not None else True,  # outside git: not a committed state
            "data": {"source": source, "profile": profile_name, "features": features, "checksum": checksum},
            "tracking_uri": uri,
            "experiment": experiment,
            "parent_run_id": parent_id,
            "seeds": seed_list,
            "tuned": study,
            "rows": result_rows,
        }
        client.log_metric(parent_id, "time/table_s", time.perf_counter() - started)
        client.log_dict(parent_id, results, f"results/{table}.json")
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    client.set_terminated(parent_id, status="FINISHED")
    atomic_write_json(Path(results_dir) / f"{table}.json", results)
    console.print(
        f"[green]{table}[/]: {len(result_rows)} rows x {len(seed_list)} seeds -> "
        f"{Path(results_dir) / f'{table}.json'} (parent run {parent_id})"
    )
    return results
