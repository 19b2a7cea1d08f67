"""``talbench run TABLE``: every reproducible row x seed of a benchmark table as a nested MLflow run.

One parent run per table execution; one child run per row and seed, tagged with paper, table, row, dataset,
features, profile, seed, git commit (+ dirty flag, ``DVC_EXP_NAME``), data checksum, the row family's code
hash, device, config hash and train hash. A row whose scoped configuration, seed, data (and proposals) and
family code already have a FINISHED run in the store is not run again: its recorded metrics are reused (a
child run tagged ``reused_from`` keeps the table complete in the UI) and marked ``reused`` in
``results/<table>.json``. Rows are configured by :mod:`talbench.benchmark.rows`.

``results/`` holds the pipeline's numbers; an ad-hoc run (a row subset, another profile, seed count or data
source, tuned weights) writes to ``scratch/results/`` unless a folder is given (:func:`results_folder`), so
trying a row by hand never replaces them. Each row run logs its family's own sections and ``test_time`` as
parameters (plus ``row``; the whole configuration is the ``config.json`` artifact), the parent run each row's
mean per column, and the data's segment-policy report goes to the console, the parent run and the results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from talbench.benchmark.rows import column_metrics, load_tuned, row_config, select_rows, tuned_study
from talbench.benchmark.schema import Benchmark, Row, load_benchmark
from talbench.config import SCRATCH_DIR, TEST_TIME_KEY, config_hash, load_params, train_hash
from talbench.data import DatasetCache
from talbench.errors import ConfigError
from talbench.io import atomic_write_json
from talbench.progress import task_progress
from talbench.runners.families import Family, family_of
from talbench.stats import mean_std
from talbench.tracking import provenance

SYNTHETIC_FEATURES = "synthetic two-stream, I3D layout (ActionFormer THUMOS14 format)"


@dataclass(frozen=True)
class PlannedRow:
    """A row to run: its index in the benchmark file, the row, its scoped configuration and family."""

    index: int
    row: Row
    cfg: dict[str, Any]
    family: Family

    @property
    def keys(self) -> dict[str, str]:
        return {"config_hash": config_hash(self.cfg), "train_hash": train_hash(self.cfg)}


def plan_rows(bench: Benchmark, params: dict[str, Any], where: str, *, rows: str | None, profile: str | None,
              data_source: str | None, tuned: dict[str, Any] | None) -> list[PlannedRow]:
    """The selected rows with their configurations (every configuration error raised before any run)."""
    selected = select_rows(bench, rows, where)
    if not selected:
        raise ConfigError(f"{where}: no row has `reproduce`; nothing to run")
    planned = []
    for index, row in selected:
        cfg = row_config(params, profile, bench, row, where, data_source=data_source, tuned=tuned)
        planned.append(PlannedRow(index, row, cfg, family_of(cfg)))
    return planned


def input_keys(plan: PlannedRow, dataset) -> dict[str, str]:
    """Fingerprints of what a row reads besides its configuration: the data, and the detector proposals of
    the families that read the ``bsn`` section (the BSN stage's output changes with BSN's code)."""
    keys = {"data_checksum": dataset.checksum(), "code_hash": plan.family.code_hash()}
    if "bsn" in plan.family.sections:
        from talbench.data.proposals import detector_proposals, proposals_fingerprint

        keys["proposals_checksum"] = proposals_fingerprint(detector_proposals(plan.cfg, dataset))
    return keys


def results_folder(requested: Path | None, params: dict[str, Any], bench: Benchmark, planned: list[PlannedRow],
                   n_seeds: int, pipeline_seeds: int, tuned: bool) -> Path:
    """Where ``<table>.json`` goes: ``requested`` if given; ``results/`` for the pipeline's own run of the table
    (every reproducible row, params.yaml's profile and data source, the pipeline's seed count, no tuned
    weights); else ``scratch/results/``, so that an ad-hoc run never replaces the pipeline's numbers."""
    if requested is not None:
        return Path(requested)
    data = planned[0].cfg["data"]
    pipeline_run = (
        [p.row.name for p in planned] == [row.name for row in bench.reproduced_rows]
        and (data["profile"], data["source"]) == (params["data"]["profile"], params["data"]["source"])
        and n_seeds == pipeline_seeds
        and not tuned
    )
    return Path("results") if pipeline_run else SCRATCH_DIR / "results"


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
    results_dir: Path | None = None,
    tuned_dir: Path = Path("tuned"),
) -> dict[str, Any] | None:
    """Run ``table``'s reproducible rows for ``seeds`` seeds, log them to MLflow and write ``<table>.json`` to
    ``results_dir`` (default: :func:`results_folder`); returns the results (``None`` for a pending table:
    nothing is run or written)."""
    from talbench.runners.families import run_row
    from talbench.tracking import store
    from talbench.tracking.runs import (
        log_metrics,
        log_outcome_artifacts,
        log_params,
        log_row_means,
        tracked_run,
    )

    console = console or Console()
    params = load_params(params_path)
    bench = load_benchmark(table, benchmarks_dir)
    where = f"{Path(benchmarks_dir) / table}.yaml"
    if bench.status != "active":
        console.print(Text(f"{table} is pending: {bench.pending_reason}; nothing run, no results written"),
                      soft_wrap=True)
        return None
    study = tuned_study(params, bench.paper, table) if tuned else None
    tuned_overrides = load_tuned(study, tuned_dir) if study else None
    planned = plan_rows(bench, params, where, rows=rows, profile=profile, data_source=data_source,
                        tuned=tuned_overrides)
    pipeline = params.get("pipeline", {})
    profile_name = planned[0].cfg["data"]["profile"]
    profile_pipeline = (params.get("profiles", {}).get(profile_name) or {}).get("pipeline") or {}
    pipeline_seeds = int(profile_pipeline.get("seeds", pipeline.get("seeds", 1)))
    n_seeds = seeds if seeds is not None else pipeline_seeds
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {n_seeds}")
    seed_list = list(range(n_seeds))
    results_dir = results_folder(results_dir, params, bench, planned, n_seeds, pipeline_seeds, tuned)

    datasets = DatasetCache()
    dataset = datasets(planned[0].cfg)  # fails early and clearly when real features are absent
    checksum = dataset.checksum()
    segments = dataset.report
    if len(segments.problems) or segments.blocked_videos:
        console.print(Text(segments.summary()), soft_wrap=True)
    source = planned[0].cfg["data"]["source"]
    features = bench.features if source != "synthetic" else SYNTHETIC_FEATURES
    commit, dirty = provenance.git_commit(), provenance.git_dirty()

    uri = store.tracking_uri()
    client = store.client(uri)
    experiment = pipeline.get("tracking_experiment", "talbench")
    experiment_id = store.ensure_experiment(client, experiment)
    orphans = store.mark_orphans_killed(client, experiment_id)
    if orphans:
        console.print(f"marked KILLED {len(orphans)} RUNNING run(s) of this machine whose process is gone")
    common_tags = {
        "paper": bench.paper,
        "table": table,
        "dataset": source,
        "features": features,
        "profile": profile_name,
        "git_commit": commit or "unknown",
        "git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit or "unknown",
        "data_checksum": checksum,
        "device": provenance.device_description(),
        "tuned": study or "false",
    }
    if provenance.dvc_experiment_name():
        common_tags["dvc_exp_name"] = provenance.dvc_experiment_name()
    columns = list(bench.metrics)
    result_rows = []
    started = time.perf_counter()
    with tracked_run(client, experiment_id, name=f"{table} ({profile_name}, {len(seed_list)} seeds)",
                     tags={**common_tags, "kind": "table"}) as parent_id:
        with task_progress(console) as progress:
            task = progress.add_task(table, total=len(planned) * len(seed_list))
            for plan in planned:
                reuse_keys = {**plan.keys, **input_keys(plan, datasets(plan.cfg))}
                runs = []
                for seed in seed_list:
                    progress.update(task, description=f"{table}: {plan.row.name} seed {seed}")
                    previous = store.find_reusable_run(client, experiment_id, {**reuse_keys, "seed": str(seed)})
                    tags = {
                        **common_tags,
                        **reuse_keys,
                        "kind": "row",
                        "row": plan.row.name,
                        "row_index": str(plan.index),
                        "seed": str(seed),
                        "runner": plan.family.name,
                        "mlflow.parentRunId": parent_id,
                        "reused": "false" if previous is None else "true",
                        **({"diagnostic": plan.row.diagnostic} if plan.row.diagnostic else {}),
                    }
                    with tracked_run(client, experiment_id, name=f"s{seed} {plan.row.name}",
                                     tags=tags) as child_id:
                        own = {s: plan.cfg[s] for s in (*plan.family.sections, TEST_TIME_KEY)}
                        log_params(client, child_id, {"row": plan.row.name, **own})
                        if previous is not None:
                            metrics = dict(previous.data.metrics)
                            client.set_tag(child_id, "reused_from", previous.info.run_id)
                            log_metrics(client, child_id, metrics)
                            console.print(Text(f"  reused run {previous.info.run_id} for {plan.row.name} seed {seed}"))
                        else:
                            row_started = time.perf_counter()
                            outcome = run_row(plan.cfg, seed, datasets(plan.cfg), console)
                            metrics = dict(outcome.metrics)
                            metrics.update({f"time/{k}_s": float(v) for k, v in outcome.timings.items()})
                            metrics["time/row_s"] = time.perf_counter() - row_started
                            metrics.update({f"params/{k}": float(v) for k, v in outcome.param_counts.items()})
                            log_metrics(client, child_id, metrics)
                            log_outcome_artifacts(client, child_id, plan.cfg, outcome)
                            if outcome.checkpoint_dir is not None:
                                client.set_tag(child_id, "checkpoint_dir", str(outcome.checkpoint_dir))
                    runs.append({
                        "seed": seed,
                        "run_id": child_id,
                        "reused": previous is not None,
                        **({"reused_from": previous.info.run_id} if previous is not None else {}),
                        "metrics": column_metrics(bench, plan.row, metrics, where),
                    })
                    progress.advance(task)
                result_rows.append({"name": plan.row.name, **plan.keys, "runs": runs,
                                    **summarize(runs, columns)})
        results = {
            "table": table,
            "paper": bench.paper,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_commit": commit or "unknown",  # "unknown" outside a git checkout
            "git_dirty": dirty if dirty is not None else True,  # outside git: not a committed state
            "data": {"source": source, "profile": profile_name, "features": features, "checksum": checksum,
                     "segment_policy": segments.to_dict()},
            "tracking_uri": store.display_uri(uri),
            "experiment": experiment,
            "parent_run_id": parent_id,
            "seeds": seed_list,
            "tuned": study,
            "rows": result_rows,
        }
        client.log_metric(parent_id, "time/table_s", time.perf_counter() - started)
        log_row_means(client, parent_id, result_rows)
        log_metrics(client, parent_id, {f"data/segments_{k}": getattr(segments, k) for k in ("clipped", "dropped")})
        client.log_dict(parent_id, segments.to_dict(), "data/segment_policy.json")
        client.log_dict(parent_id, results, f"results/{table}.json")
    atomic_write_json(Path(results_dir) / f"{table}.json", results)
    console.print(
        f"[green]{table}[/]: {len(result_rows)} rows x {len(seed_list)} seeds -> "
        f"{escape(str(Path(results_dir) / f'{table}.json'))} (parent run {parent_id})"
    )
    if results_dir == SCRATCH_DIR / "results":
        console.print(Text("  an ad-hoc run: results/ (the pipeline's numbers) is untouched; --results-dir "
                           "results to replace them"), soft_wrap=True)
    return results


def summarize(runs: list[dict[str, Any]], columns: list[str]) -> dict[str, dict[str, float | None]]:
    """``{"mean": {column: ...}, "std": {column: ...}}`` over the seeds (None where a run lacks the column)."""
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for column in columns:
        values = [run["metrics"].get(column) for run in runs]
        if not values or any(v is None for v in values):
            mean[column] = std[column] = None
        else:
            mean[column], std[column] = mean_std(values)
    return {"mean": mean, "std": std}
