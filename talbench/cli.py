"""The ``talbench`` command line.

Heavy modules (torch, mlflow, optuna) are imported inside the commands that need them, so that
``talbench eval`` and ``talbench synth`` start fast and never import mlflow.

Every command runs inside :func:`_command`: a user error (``ConfigError``, ``DataError``) is one line and exit
code 2; Ctrl-C (SIGINT) and SIGTERM stop it with one line and exit code 130 / 143, after the MLflow runs it had
open are marked KILLED (SIGTERM is raised as :class:`talbench.errors.Terminated`, a ``KeyboardInterrupt``, so
both take the same path). User text (messages, warnings, file names) is printed as plain text, never as rich markup: a
``[start, end]`` in a message stays visible.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

HELP = (
    "Reproduce the ablation tables of Temporal Action Localization papers and judge their claims: every "
    "row x seed an MLflow run, the tables a DVC pipeline, loss weights tuned with Optuna, leaderboards of "
    "published vs reproduced numbers."
)
EXIT_USER_ERROR = 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as a shell reports it

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
console = Console()


def _raise_terminated(signum, frame) -> None:
    from talbench.errors import Terminated

    raise Terminated()


def _print_line(label: str, style: str, message: object) -> None:
    """``label: message`` on one line; the message is plain text (no markup), not wrapped by rich."""
    console.print(Text.assemble((f"{label}:", style), " ", str(message)), soft_wrap=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as tidy ``warning:`` lines (no source path), above any progress bar."""
    _print_line("warning", "yellow", message)


def _lean_process() -> list:
    """Settings of a short command that only reads, computes and prints (``talbench eval``), each worth 0.05
    to 0.1 s of its 1 s on a busy 2-core machine (benchmarks/perf/eval_speed.py); returns the undo steps.

    * The garbage collector is paused for the command: its passes over every imported module and parsed
      prediction cost more than they free (the command makes few reference cycles).
    * numpy, when the command loads it, starts OpenBLAS with one thread: the evaluation makes no BLAS call,
      and OpenBLAS's idle worker threads spin on a core the evaluation needs. The environment is restored
      once numpy is loaded; a numpy already loaded keeps its threads.
    * At exit the collector is frozen (``gc.freeze``) before the interpreter tears down its modules, which
      otherwise collects over every live object again (0.1 s after a 200k-prediction evaluation).
    * pydantic (which typer imports to read the options) does not look for plugins among the installed
      packages' entry points (0.01 s)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    enabled = gc.isenabled()
    gc.disable()
    if "numpy" not in sys.modules and "OPENBLAS_NUM_THREADS" not in os.environ:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            import numpy  # noqa: F401  (OpenBLAS reads the variable when numpy loads it)
        finally:
            del os.environ["OPENBLAS_NUM_THREADS"]
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    return [gc.enable] if enabled else []


@app.callback()
def _main(ctx: typer.Context) -> None:
    """Install the SIGTERM handler and the warning printer for the command (and the lean process settings of
    ``eval``); all are restored after it."""
    previous_show = warnings.showwarning
    warnings.showwarning = _show_warning
    restore = [lambda: setattr(warnings, "showwarning", previous_show)]
    if threading.current_thread() is threading.main_thread():
        previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
        restore.append(lambda: signal.signal(signal.SIGTERM, previous_term))
    if ctx.invoked_subcommand == "eval":
        restore += _lean_process()
    ctx.call_on_close(lambda: [undo() for undo in restore])


def _fail(message: str) -> None:
    _print_line("error", "bold red", message)
    raise typer.Exit(code=EXIT_USER_ERROR)


@contextlib.contextmanager
def _command() -> Iterator[None]:
    """Bad parameters or data end the command with one line naming file and key (exit code 2), no traceback;
    SIGINT / SIGTERM with one line (exit code 130 / 143).

    ``ConfigError`` and ``DataError`` are both ``ValueError`` subclasses raised for user input."""
    from talbench.errors import ConfigError, DataError, Terminated

    try:
        yield
    except (ConfigError, DataError) as err:
        _fail(str(err))
    except KeyboardInterrupt as err:
        received = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
        _print_line("interrupted", "bold yellow", f"{received.name}: stopped; MLflow runs it had open are marked "
                    "KILLED, outputs not yet complete were not written")
        raise typer.Exit(code=EXIT_SIGNAL[received]) from None


@app.command()
def synth(
    profile: Annotated[str, typer.Option(help="synthetic profile in params.yaml: tiny, smoke or paper")] = "smoke",
    variant: Annotated[str | None, typer.Option(help="a params.yaml synthetic_variants entry: the profile's "
                                                     "synth with its overrides")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default: data.synthetic_root/<profile>, or "
                                                  "<profile>-<variant>); must be new, empty or an earlier output "
                                                  "of synth")] = None,
    params: Annotated[Path, typer.Option(help="parameter file")] = Path("params.yaml"),
) -> None:
    """Generate the embedded synthetic benchmark in the ActionFormer THUMOS14 layout."""
    from talbench.config import Layer, load_params, resolve
    from talbench.data import synthetic_name
    from talbench.data.synthetic import generate
    from talbench.errors import ConfigError

    with _command():
        values = load_params(params)
        overrides = None
        if variant is not None:
            variants = values.get("synthetic_variants") or {}
            if variant not in variants:
                raise ConfigError(f"{params}: synthetic_variants has no entry '{variant}' (known: {sorted(variants)})")
            overrides = Layer((variants[variant] or {}).get("synth") or {}, f"synthetic_variants.{variant}.synth",
                              "synth")
        cfg = resolve(values, profile, overrides)
        out = out or Path(cfg["data"]["synthetic_root"]) / synthetic_name(profile, variant)
        report = generate(cfg["synth"], out, progress=True)
    console.print(report.summary())


@app.command("eval")
def evaluate(
    gt: Annotated[Path, typer.Option(help="ground truth, ActivityNet/ActionFormer JSON layout")],
    pred: Annotated[Path, typer.Option(help="predictions, ActivityNet result layout")],
    subset: Annotated[str, typer.Option(help="ground-truth subset (case-insensitive)")] = "Test",
    tiou: Annotated[str, typer.Option(help="comma-separated tIoU thresholds in (0, 1]")] = "0.3,0.4,0.5,0.6,0.7",
    tie_break: Annotated[str, typer.Option(help="order of equal scores and equal tIoUs: canonical (the same on "
                                                "every CPU) or official (numpy's argsort on this machine, as "
                                                "the official code)")] = "canonical",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results as JSON")] = None,
) -> None:
    """Detection mAP of a prediction file with the official ActivityNet semantics."""
    from talbench.eval.report import evaluate_files

    try:
        thresholds = [float(t) for t in tiou.split(",")]
    except ValueError:
        _fail(f"--tiou must be comma-separated numbers, got '{tiou}'")
    with _command():
        evaluate_files(gt, pred, subset=subset, tiou_thresholds=thresholds, tie_break=tie_break,
                       json_out=json_out, console=console)


@app.command()
def proposals(
    profile: Annotated[str | None, typer.Option(help="params profile (default: data.profile)")] = None,
    data: Annotated[str | None, typer.Option(help="data source: synthetic or thumos14")] = None,
    train_split: Annotated[str | None, typer.Option(help="train BSN on this split (default: bsn.train_split); "
                                                         "train_fit: the tuning's proposals, AR on the holdout")] = None,
) -> None:
    """Train BSN on the training videos and write its proposals for every video (a DVC stage)."""
    from talbench.runners.bsn.stage import run_proposal_stage

    with _command():
        run_proposal_stage(profile=profile, data_source=data, console=console, train_split=train_split)


@app.command()
def premises(
    profile: Annotated[str | None, typer.Option(help="params profile (default: data.profile)")] = None,
    data: Annotated[str | None, typer.Option(help="data source: synthetic, thumos14 or activitynet")] = None,
    out: Annotated[Path, typer.Option(help="where to write the measurements")] = Path("results/premises.json"),
    reference: Annotated[Path | None, typer.Option(help="also the annotation statistics of real annotations: "
                                                        "a THUMOS14 JSON or a folder of BMN ActivityNet files")] = None,
) -> None:
    """Measure the data's premises (multi-class videos, context reliability, video-level classifier, ...)."""
    from talbench.premises import run_premises_stage

    with _command():
        run_premises_stage(profile=profile, data_source=data, out=out, reference=reference, console=console)


@app.command()
def run(
    table: Annotated[str, typer.Argument(help="benchmark id, e.g. dnet.table1")],
    rows: Annotated[str | None, typer.Option(help="comma-separated row names or indices")] = None,
    seeds: Annotated[int | None, typer.Option(help="number of seeds (default: pipeline.seeds)")] = None,
    first_seed: Annotated[int | None, typer.Option(help="first seed (default: pipeline.first_seed)")] = None,
    workers: Annotated[int | None, typer.Option(help="processes training seeds in parallel (default: "
                                                    "pipeline.workers)")] = None,
    profile: Annotated[str | None, typer.Option(help="tiny, smoke or paper (default: data.profile)")] = None,
    data: Annotated[str | None, typer.Option(help="data source: synthetic or thumos14")] = None,
    tuned: Annotated[bool, typer.Option(help="use the loss weights found by `talbench tune`")] = False,
    results_dir: Annotated[Path | None, typer.Option(
        help="folder of <table>.json (default: results/ for the pipeline's own run; scratch/results/ for a "
             "row subset or another profile, seed count or data source)")] = None,
) -> None:
    """Run a benchmark table: every row x seed is one MLflow run nested under the table's run."""
    from talbench.benchmark.run import run_table

    with _command():
        results = run_table(table, rows=rows, seeds=seeds, first_seed=first_seed, workers=workers, profile=profile,
                            data_source=data, tuned=tuned, console=console, results_dir=results_dir)
    if results is None:  # a pending table: nothing was run
        raise typer.Exit(code=EXIT_USER_ERROR)


@app.command()
def leaderboard(
    results_dir: Annotated[Path, typer.Option(help="folder of results/<table>.json")] = Path("results"),
    out_dir: Annotated[Path, typer.Option(help="folder of the generated markdown")] = Path("leaderboards"),
) -> None:
    """Generate leaderboards/<paper>.md from the recorded results (published vs reproduced, claims judged)."""
    from talbench.leaderboard.generate import write_leaderboards

    with _command():
        write_leaderboards(results_dir, out_dir, console=console)


@app.command()
def verdicts(
    results_dir: Annotated[Path, typer.Option(help="folder of results/<table>.json")] = Path("results"),
    compare: Annotated[tuple[Path, Path] | None, typer.Option(
        help="two results folders (each with predictions/ beside it): list every verdict that differs")] = None,
) -> None:
    """Every claim's verdict on the reproduction; with --compare A B, the verdicts that differ between two
    reproductions (holds <-> fails is an error, exit code 1; decisive <-> inconclusive a warning)."""
    from talbench.leaderboard.compare import compare as compare_verdicts
    from talbench.leaderboard.compare import counts
    from talbench.leaderboard.compare import verdicts as judge
    from talbench.leaderboard.generate import load_rule

    with _command():
        rule = load_rule()
        if compare is None:
            found = judge(results_dir, rule)
            for v in found.values():
                console.print(f"{v.table} claim {v.claim}: {v.judgement.verdict}: {v.text}", markup=False)
            console.print(f"{counts(found)}", markup=False)
            return
        first, second = (judge(folder, rule) for folder in compare)
        changes = compare_verdicts(first, second)
    console.print(f"{compare[0]}: {counts(first)}; {compare[1]}: {counts(second)}", markup=False)
    for change in changes:
        level = "error" if change.flip else "warning"
        console.print(f"{level}: {change.table} claim {change.claim} ({change.text}): {change.before} in "
                      f"{compare[0]}, {change.after} in {compare[1]}", markup=False)
    flips = sum(change.flip for change in changes)
    console.print(f"{len(first.keys() & second.keys())} claims compared: {flips} holds <-> fails, "
                  f"{len(changes) - flips} decisive <-> inconclusive", markup=False)
    if flips:
        raise typer.Exit(code=1)


@app.command()
def tune(
    study: Annotated[str, typer.Argument(help="study name in params.yaml, e.g. dnet-lambdas")],
    trials: Annotated[int | None, typer.Option(help="number of trials (default: from params.yaml)")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL (default: sqlite:///optuna.db)")] = None,
    workers: Annotated[int, typer.Option(help="worker processes on this machine")] = 1,
) -> None:
    """Tune a paper's loss weights on held-out training videos (never the test split)."""
    from talbench.tune.study import run_study

    with _command():
        run_study(study, trials=trials, storage=storage, workers=workers, console=console)


def _mlflow_ui_command(uri: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
            "--port", str(port)]


def _check_port_free(port: int) -> None:
    """A ConfigError when 127.0.0.1:``port`` is taken (the server would fail after its start-up)."""
    import socket

    from talbench.errors import ConfigError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise ConfigError(f"--port {port}: 127.0.0.1:{port} is not free ({err.strerror}); "
                              "choose another port") from None


def _serve(command: list[str]) -> int:
    """Run ``command`` in its own process group until it exits (its exit code) or this process is
    interrupted: then the whole group (a server and its workers) is stopped before the interruption goes on."""
    import os
    import subprocess

    child = subprocess.Popen(command, start_new_session=True)
    try:
        return child.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        raise


@app.command()
def ui(port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 5000) -> None:
    """Start the MLflow UI on 127.0.0.1 over the project's tracking store (exit code: the server's)."""
    from talbench.tracking.store import tracking_uri

    with _command():
        _check_port_free(port)
        uri = tracking_uri()
        console.print(Text(f"MLflow UI for {uri} on http://127.0.0.1:{port}"))
        code = _serve(_mlflow_ui_command(uri, port))
    if code:
        raise typer.Exit(code=code)


@app.command()
def server(
    backend_store_uri: Annotated[str, typer.Option(
        envvar="MLFLOW_BACKEND_STORE_URI", show_default=False,
        help="database of the runs: postgresql://user@host:5432/db (several machines; password in ~/.pgpass "
             "or this variable) or sqlite:////abs/mlflow.db (one machine)")],
    artifacts_destination: Annotated[str | None, typer.Option(
        envvar="MLFLOW_ARTIFACTS_DESTINATION",
        help="where the server keeps the artifacts it receives: a folder or s3://... "
             "(default: <repo root>/mlartifacts)")] = None,
    host: Annotated[str, typer.Option(help="interface to listen on; 0.0.0.0 or this machine's IP for other "
                                          "machines")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 5000,
    workers: Annotated[int, typer.Option(help="server processes")] = 2,
    allowed_hosts: Annotated[str | None, typer.Option(
        help="host names workers may use besides localhost and private IPs (MLflow's --allowed-hosts)")] = None,
) -> None:
    """Start a shared MLflow tracking server (127.0.0.1 unless --host): point workers at it with
    MLFLOW_TRACKING_URI; runs, reuse look-ups and artifacts all go through it."""
    from talbench.tracking.server import DEFAULT_ARTIFACTS, ServerSettings, serve

    settings = ServerSettings(backend_store_uri=backend_store_uri,
                              artifacts_destination=artifacts_destination or str(DEFAULT_ARTIFACTS),
                              host=host, port=port, workers=workers, allowed_hosts=allowed_hosts)
    with _command():
        serve(settings, console)


if __name__ == "__main__":
    app()
