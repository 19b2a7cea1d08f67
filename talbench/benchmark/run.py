"""``talbench run TABLE``: every reproducible row x seed of a benchmark table as a nested MLflow run.

One parent run per table execution; one child run per row and seed, tagged with paper, table, row, dataset,
features, profile, seed, git commit (+ dirty flag, ``DVC_EXP_NAME``), data checksum, the row family's code
hash, config hash and train hash, and the device the row ran on (``device``: the device and its name, as the
worker resolved ``run.device``; ``mixed_precision``; on CUDA ``nondeterministic_ops``,
:mod:`talbench.runners.common.device`). A row whose scoped configuration, seed, data (and proposals), family
code and device kind (``device_key``: the CPU or the GPU model) already have a FINISHED run in the store is not
run again: its recorded metrics are reused (a child run tagged ``reused_from`` keeps the table complete in the
UI) and marked ``reused`` in ``results/<table>.json``. Rows are configured by :mod:`talbench.benchmark.rows`.

**Seeds in parallel.** The runs left to train are grouped into jobs spread over ``pipeline.workers`` processes
(``--workers``): one job per seed, whose rows run in file order, so the rows that share a trained model
(test-time variants, D-Net's original-feature branch) find it and no two processes ever train the same
checkpoint; a family whose rows never share a network across training hashes
(``Family.rows_share_training`` False: the one-stage detectors) has one job per seed and training hash, so
that three seeds keep two workers busy to the end. Every run is deterministic for its seed and thread count,
so the numbers do not depend on the number of workers or on the jobs. The parent process logs each run to
MLflow as its job finishes, with the worker's start and end times.

Every run's predictions (the streams the table's columns read) and per-video metric components are written to
``predictions/<table>/`` (:mod:`talbench.benchmark.predictions`), so the verdicts' bootstrap over test videos
reads files, not the MLflow store.

``results/`` holds the pipeline's numbers; an ad-hoc run (a row subset, another profile, seed count or data
source, tuned weights) writes to ``scratch/results/`` unless a folder is given (:func:`results_folder`), so
trying a row by hand never replaces them. Each row run logs its family's own sections and ``test_time`` as
parameters (plus ``row``; the whole configuration is the ``config.json`` artifact), the parent run each row's
mean per column, and the data's segment-policy report goes to the console, the parent run and the results.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from talbench.benchmark import predictions as files
from talbench.benchmark.rows import column_metrics, load_tuned, row_config, select_rows, tuned_study
from talbench.benchmark.schema import Benchmark, Row, load_benchmark
from talbench.config import SCRATCH_DIR, TEST_TIME_KEY, config_hash, load_params, train_hash
from talbench.data import DatasetCache
from talbench.errors import ConfigError
from talbench.io import atomic_dir, atomic_write_json
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


@dataclass
class Trained:
    """A run a worker trained and evaluated: its outcome and its start and end times (ms since the epoch)."""

    outcome: Any
    start_ms: int
    end_ms: int
    row_seconds: float


def plan_rows(bench: Benchmark, params: dict[str, Any], where: str, *, rows: str | None, profile: str | None,
              data_source: str | None, tuned: dict[str, Any] | None) -> list[PlannedRow]:
    """The selected rows with their configurations (every configuration error raised before any run)."""
    from talbench.runners.common.device import precision, row_device  # loads torch: only when rows run
    selected = select_rows(bench, rows, where)
    if not selected:
        raise ConfigError(f"{where}: no row has `reproduce`; nothing to run")
    planned = []
    for index, row in selected:
        cfg = row_config(params, profile, bench, row, where, data_source=data_source, tuned=tuned)
        row_device(cfg), precision(cfg)  # run.device / run.mixed_precision: a one-line error before any run
        planned.append(PlannedRow(index, row, cfg, family_of(cfg)))
    return planned


def input_keys(plan: PlannedRow, dataset) -> dict[str, str]:
    """Fingerprints of what a row reads besides its configuration: the data, and the detector proposals of
    the families that read the ``bsn`` section (the BSN stage's output changes with BSN's code), and the kind of
    device the row runs on (the CPU's numbers are not a GPU's)."""
    from talbench.runners.common.device import device_key, row_device  # loads torch: only when rows run
    keys = {"data_checksum": dataset.checksum(), "code_hash": plan.family.code_hash(),
            "device_key": device_key(row_device(plan.cfg))}
    if "bsn" in plan.family.sections:
        from talbench.data.proposals import detector_proposals, proposals_fingerprint

        keys["proposals_checksum"] = proposals_fingerprint(detector_proposals(plan.cfg, dataset))
    return keys


_WORKER_DATA = DatasetCache()  # a worker process's datasets (each pool starts fresh processes)


def train_seed(cfgs: list[dict[str, Any]], seed: int, datasets: DatasetCache | None = None) -> list[Trained]:
    """Train and evaluate the rows ``cfgs`` of one seed, in order: in a worker process, or in the caller with
    the caller's ``datasets`` (never a cache from an earlier table, whose files may have changed since)."""
    from talbench.runners.families import run_row

    datasets = datasets or _WORKER_DATA
    done = []
    for cfg in cfgs:
        start_ms, started = int(time.time() * 1000), time.perf_counter()
        outcome = run_row(cfg, seed, datasets(cfg))
        done.append(Trained(outcome, start_ms, int(time.time() * 1000), time.perf_counter() - started))
    return done


def pipeline_setting(params: dict[str, Any], profile_name: str, key: str, default):
    """``pipeline.<key>``, as the profile may override it."""
    profile = (params.get("profiles", {}).get(profile_name) or {}).get("pipeline") or {}
    return profile.get(key, params.get("pipeline", {}).get(key, default))


def results_folder(requested: Path | None, params: dict[str, Any], bench: Benchmark, planned: list[PlannedRow],
                   seed_list: list[int], pipeline_seeds: list[int], tuned: bool) -> Path:
    """Where ``<table>.json`` goes: ``requested`` if given; ``results/`` for the pipeline's own run of the table
    (every reproducible row, params.yaml's profile and data source, the pipeline's seeds, no tuned weights);
    else ``scratch/results/``, so that an ad-hoc run never replaces the pipeline's numbers."""
    if requested is not None:
        return Path(requested)
    data = planned[0].cfg["data"]
    pipeline_run = (
        [p.row.name for p in planned] == [row.name for row in bench.reproduced_rows]
        and (data["profile"], data["source"]) == (params["data"]["profile"], params["data"]["source"])
        and seed_list == pipeline_seeds
        and not tuned
    )
    return Path("results") if pipeline_run else SCRATCH_DIR / "results"


def run_table(
    table: str,
    *,
    rows: str | None = None,
    seeds: int | None = None,
    first_seed: int | None = None,
    workers: int | None = None,
    profile: str | None = None,
    data_source: str | None = None,
    tuned: bool = False,
    console: Console | None = None,
    params_path: Path = Path("params.yaml"),
    benchmarks_dir: Path = Path("benchmarks"),
    results_dir: Path | None = None,
    tuned_dir: Path = Path("tuned"),
) -> dict[str, Any] | None:
    """Run ``table``'s reproducible rows for ``seeds`` seeds from ``first_seed`` on ``workers`` processes, log
    them to MLflow and write ``<table>.json`` to ``results_dir`` (default: :func:`results_folder`) and every
    run's predictions to ``predictions/<table>/`` next to it; returns the results (``None`` for a pending
    table: nothing is run or written)."""
    from talbench.runners.common.device import (  # loads torch: only when rows run
        DEVICE_TAGS,
        describe,
        row_device,
    )
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
    profile_name = planned[0].cfg["data"]["profile"]
    n_seeds = seeds if seeds is not None else int(pipeline_setting(params, profile_name, "seeds", 1))
    first = first_seed if first_seed is not None else int(pipeline_setting(params, profile_name, "first_seed", 0))
    n_workers = workers if workers is not None else int(pipeline_setting(params, profile_name, "workers", 1))
    if n_seeds < 1 or first < 0 or n_workers < 1:
        raise ConfigError(f"--seeds and --workers must be >= 1 and --first-seed >= 0 "
                          f"(got {n_seeds}, {n_workers}, {first})")
    seed_list = list(range(first, first + n_seeds))
    pipeline_seeds = int(pipeline_setting(params, profile_name, "seeds", 1))
    pipeline_first = int(pipeline_setting(params, profile_name, "first_seed", 0))
    results_dir = results_folder(results_dir, params, bench, planned, seed_list,
                                 list(range(pipeline_first, pipeline_first + pipeline_seeds)), tuned)

    datasets = DatasetCache()
    dataset = datasets(planned[0].cfg)  # fails early and clearly when real features are absent
    checksum = dataset.checksum()
    segments = dataset.report
    if len(segments.problems) or segments.blocked_videos:
        console.print(Text(segments.summary()), soft_wrap=True)
    source = planned[0].cfg["data"]["source"]
    features = bench.features if source != "synthetic" else SYNTHETIC_FEATURES
    variant = planned[0].cfg["data"].get("synthetic_variant")  # set on synthetic data only (Family.scoped)
    data_variant = {"synthetic_variant": variant} if variant else {}
    eval_split = planned[0].cfg["run"]["eval_split"]
    streams = {s for s in map(files.metric_stream, bench.metrics.values()) if s is not None}
    commit, dirty = provenance.git_commit(), provenance.git_dirty()
    keys = {plan.index: {**plan.keys, **input_keys(plan, datasets(plan.cfg))} for plan in planned}
    checkpointed = {(p.index, seed) for p in planned for seed in seed_list if has_checkpoint(p, seed, keys[p.index])}
    workers = Workers(n_workers)
    if (n_workers > 1 and len(training_jobs({seed: planned for seed in seed_list})) > 1
            and len(checkpointed) < len(planned) * len(seed_list)):
        workers.start(tuple(sorted({plan.family.module for plan in planned})))  # jobs for the workers ahead

    uri = store.tracking_uri()
    client = store.client(uri)
    experiment = pipeline_setting(params, profile_name, "tracking_experiment", "talbench")
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
        **data_variant,
        "git_commit": commit or "unknown",
        "git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit or "unknown",
        "data_checksum": checksum,
        "tuned": study or "false",
    }
    if provenance.dvc_experiment_name():
        common_tags["dvc_exp_name"] = provenance.dvc_experiment_name()
    runs: dict[tuple[int, int], dict[str, Any]] = {}
    devices: set[str] = set()  # where the rows' numbers were computed (a reused run: where its original was)
    started = time.perf_counter()
    predictions_folder = Path(results_dir).parent / files.PREDICTIONS_DIR / table
    with tracked_run(client, experiment_id, name=f"{table} ({profile_name}, {len(seed_list)} seeds)",
                     tags={**common_tags, "kind": "table", "device": describe(row_device(planned[0].cfg))}) \
            as parent_id, \
            atomic_dir(predictions_folder, previous_output=files.is_predictions_folder, owned=files.owned,
                       what="predictions") as folder, task_progress(console) as progress, workers:
        task = progress.add_task(table, total=len(planned) * len(seed_list))
        gt = dataset.instances(eval_split)
        files.write_ground_truth(folder, gt, dataset.video_ids(eval_split))

        def record(plan: PlannedRow, seed: int, trained: Trained | None, previous) -> None:
            """Log one row x seed to MLflow and keep its column metrics and prediction file."""
            tags = {**common_tags, **keys[plan.index], "kind": "row", "row": plan.row.name,
                    "row_index": str(plan.index), "seed": str(seed), "runner": plan.family.name,
                    "mlflow.parentRunId": parent_id, "reused": "false" if previous is None else "true",
                    **({"diagnostic": plan.row.diagnostic} if plan.row.diagnostic else {}),
                    **({"control": plan.row.control} if plan.row.control else {}),
                    # where the numbers were computed (a reused run: where its original was)
                    **(trained.outcome.device_tags if trained else
                       {k: v for k, v in previous.data.tags.items() if k in DEVICE_TAGS})}
            devices.add(tags.get("device") or "unknown")
            timing = {"start_time": trained.start_ms, "end_time": trained.end_ms} if trained else {}
            with tracked_run(client, experiment_id, name=f"s{seed} {plan.row.name}", tags=tags,
                             **timing) as child_id:
                own = {s: plan.cfg[s] for s in (*plan.family.sections, TEST_TIME_KEY)}
                log_params(client, child_id, {"row": plan.row.name, **own})
                if previous is not None:
                    metrics = dict(previous.data.metrics)
                    client.set_tag(child_id, "reused_from", previous.info.run_id)
                    log_metrics(client, child_id, metrics)
                    outcome_predictions, video_stats = reused_predictions(client, previous.info.run_id, streams)
                    progress.console.print(Text(f"  reused run {previous.info.run_id} for {plan.row.name} seed {seed}"))
                else:
                    outcome = trained.outcome
                    metrics = dict(outcome.metrics)
                    metrics.update({f"time/{k}_s": float(v) for k, v in outcome.timings.items()})
                    metrics["time/row_s"] = trained.row_seconds
                    metrics.update({f"params/{k}": float(v) for k, v in outcome.param_counts.items()})
                    log_metrics(client, child_id, metrics)
                    log_outcome_artifacts(client, child_id, plan.cfg, outcome)
                    if outcome.checkpoint_dir is not None:
                        client.set_tag(child_id, "checkpoint_dir", str(outcome.checkpoint_dir))
                    outcome_predictions, video_stats = outcome.predictions, outcome.video_stats
                name = files.run_file(plan.index, seed)
                files.write_run(folder, name, outcome_predictions, streams, video_stats)
            runs[plan.index, seed] = {
                "seed": seed, "run_id": child_id, "reused": previous is not None,
                **({"reused_from": previous.info.run_id} if previous is not None else {}),
                "predictions": (files.PREDICTIONS_DIR / table / name).as_posix(),
                "metrics": column_metrics(bench, plan.row, metrics, where),
                **({"reported": {name: metrics.get(metric) for name, metric in bench.reported.items()}}
                   if bench.reported else {}),
            }
            progress.advance(task)

        # Reuse first: every run the store already has; then the rest, grouped by seed (rows in file order).
        pending: dict[int, list[PlannedRow]] = {}
        for seed in seed_list:
            for plan in planned:
                previous = store.find_reusable_run(client, experiment_id, {**keys[plan.index], "seed": str(seed)})
                if previous is not None:
                    record(plan, seed, None, previous)
                else:
                    pending.setdefault(seed, []).append(plan)
        jobs = training_jobs(pending, lambda plan, seed: (plan.index, seed) in checkpointed)
        for seed, plans, trained in _train(jobs, workers, datasets, progress, task, table):
            for plan, done in zip(plans, trained, strict=True):
                record(plan, seed, done, None)
        client.log_metric(parent_id, "time/table_s", time.perf_counter() - started)
        client.log_param(parent_id, "workers", n_workers)
        result_rows = []
        for plan in planned:
            row_runs = [runs[plan.index, seed] for seed in seed_list]
            result_rows.append({"name": plan.row.name, **plan.keys, "runs": row_runs,
                                **summarize(row_runs, list(bench.metrics))})
        results = {
            "table": table,
            "paper": bench.paper,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git_commit": commit or "unknown",  # "unknown" outside a git checkout
            "git_dirty": dirty if dirty is not None else True,  # outside git: not a committed state
            "data": {"source": source, "profile": profile_name, "features": features, "checksum": checksum,
                     **data_variant, "segment_policy": segments.to_dict()},
            "eval": {"split": eval_split, "tiou_thresholds": planned[0].cfg["eval"]["tiou_thresholds"],
                     "predictions": (files.PREDICTIONS_DIR / table).as_posix()},
            "tracking_uri": store.display_uri(uri),
            "experiment": experiment,
            "parent_run_id": parent_id,
            "seeds": seed_list,
            "devices": sorted(devices),
            "tuned": study,
            "rows": result_rows,
        }
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


def training_jobs(pending: dict[int, list[PlannedRow]],
                  trained_before: Callable[[PlannedRow, int], bool] | None = None) -> list[tuple[int, list[PlannedRow]]]:
    """The jobs a worker runs, ``(seed, rows in file order)``, seed by seed: all the seed's rows of families whose
    rows may share a trained network (:attr:`Family.rows_share_training`) in one job, and one job per training
    hash for the others (rows that differ only at test time share their checkpoint, so they stay together).
    With ``trained_before(plan, seed)`` (a checkpoint exists), the jobs whose every row only loads its network go
    last: short jobs then fill the tail, where one worker would wait for the other's last training."""
    jobs = []
    for seed, plans in pending.items():
        groups: dict[str, list[PlannedRow]] = {}
        for plan in plans:
            groups.setdefault("shared" if plan.family.rows_share_training else plan.keys["train_hash"], []).append(plan)
        jobs += [(seed, group) for group in groups.values()]
    if trained_before is not None:
        jobs.sort(key=lambda job: all(trained_before(plan, job[0]) for plan in job[1]))
    return jobs


def has_checkpoint(plan: PlannedRow, seed: int, keys: dict[str, str]) -> bool:
    """Whether the row's checkpoint folder for ``seed`` holds a checkpoint trained by this code on this data
    (``keys``: :func:`input_keys`); an ordering hint, the runner still checks everything it loads."""
    from talbench.runners.common.checkpoints import MANIFEST, checkpoint_dir

    try:
        inputs = json.loads((checkpoint_dir(plan.cfg, seed) / MANIFEST).read_text(encoding="utf-8"))["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return inputs.get("code") == keys["code_hash"] and inputs.get("data") == keys["data_checksum"]


def _warm_up(modules: tuple[str, ...]) -> None:
    """Import ``modules`` and what a training's first optimiser imports (``torch._dynamo``) in a worker."""
    import importlib

    for module in (*modules, "torch._dynamo"):
        importlib.import_module(module)


class Workers:
    """The processes that run a table's jobs (spawned: a clean interpreter, no forked torch or MLflow state).
    :meth:`start` spawns them and has them import the families' runners while the caller sets up the table
    (their start-up, about 3 s, then overlaps the MLflow store's); otherwise :meth:`executor` spawns them when
    the first job comes."""

    def __init__(self, count: int):
        self.count = count
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._other_children: set[multiprocessing.Process] = set()  # the caller's, before the pool existed

    @property
    def started(self) -> bool:
        return self._executor is not None

    def executor(self, jobs: int) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            self._other_children = set(multiprocessing.active_children())
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=min(self.count, jobs), mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    def start(self, modules: tuple[str, ...]) -> None:
        pool = self.executor(self.count)
        for _ in range(self.count):
            pool.submit(_warm_up, modules)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        """Wait for the workers when the table is done; on an error or an interrupt that reached this process
        alone (``kill -TERM``; Ctrl-C reaches the workers too), cancel the jobs not started and terminate the
        workers, whose runs only the caller logs, instead of waiting for their trainings to end."""
        if self._executor is None:
            return
        if exc_type is None:
            self._executor.shutdown()
            return
        self._executor.shutdown(wait=False, cancel_futures=True)
        pool = set(multiprocessing.active_children()) - self._other_children
        for process in pool:
            process.terminate()
        for process in pool:
            process.join()


def _train(jobs: list[tuple[int, list[PlannedRow]]], workers: Workers, datasets: DatasetCache, progress, task,
           table: str):
    """Yield ``(seed, plans, trained runs)`` as each job finishes; jobs spread over the ``workers`` processes
    (the caller's process, with its ``datasets``, when one worker is asked for or one job is left: an
    interrupt then stops the training itself, not a worker the caller would wait for)."""
    if workers.count == 1 or len(jobs) <= 1:
        for seed, plans in jobs:
            progress.update(task, description=f"{table}: seed {seed}")
            yield seed, plans, train_seed([p.cfg for p in plans], seed, datasets)
        return
    pool = workers.executor(len(jobs))
    futures = {pool.submit(train_seed, [p.cfg for p in plans], seed): (seed, plans) for seed, plans in jobs}
    seeds = sorted({seed for seed, _ in jobs})
    progress.update(task, description=f"{table}: {len(jobs)} jobs of seeds {', '.join(map(str, seeds))} on "
                                      f"{workers.count} workers")
    for future in concurrent.futures.as_completed(futures):
        seed, plans = futures[future]
        yield seed, plans, future.result()


def reused_predictions(client, run_id: str, streams: set[str]):
    """The predictions (ActivityNet JSON artifacts) and per-video components of a recorded run (downloaded
    without MLflow's progress bar, which would print between talbench's for every reused run)."""
    import os
    import tempfile

    import pandas as pd

    from talbench.eval.io import load_predictions

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    with tempfile.TemporaryDirectory(prefix="talbench-reused-") as tmp:
        out = {}
        for stream in streams:
            path = client.download_artifacts(run_id, f"predictions/{stream.replace('/', '_')}.json", tmp)
            out[stream] = load_predictions(path)
        names = {a.path for a in client.list_artifacts(run_id)}
        stats = None
        if "video_stats.json" in names:
            path = client.download_artifacts(run_id, "video_stats.json", tmp)
            stats = pd.DataFrame(json.loads(Path(path).read_text(encoding="utf-8")))
    return out, stats


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
