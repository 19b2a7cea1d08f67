"""The ``talbench`` command line (typer + rich).

Heavy modules (torch, mlflow, optuna) are imported inside the commands that need them, so that
``talbench eval`` and ``talbench synth`` start fast and never import mlflow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Bad parameters or data end the command with one line naming file and key (exit code 2), no traceback.

    ``ConfigError`` and ``DataError`` are both ``ValueError`` subclasses raised for user input."""
    from talbench.errors import ConfigError, DataError

    try:
        yield
    except (ConfigError, DataError) as err:
        _fail(str(err))


@app.command()
def synth(
    profile: Annotated[str, typer.Option(help="synthetic profile in params.yaml: tiny, smoke or paper")] = "smoke",
    out: Annotated[Path | None, typer.Option(help="output folder (default: data.synthetic_root/<profile>)")] = None,
    params: Annotated[Path, typer.Option(help="parameter file")] = Path("params.yaml"),
) -> None:
    """Generate the embedded synthetic benchmark in the ActionFormer THUMOS14 layout."""
    from talbench.config import load_params, resolve
    from talbench.data.synthetic import generate

    with _user_errors():
        cfg = resolve(load_params(params), profile)
        out = out or Path(cfg["data"]["synthetic_root"]) / profile
        report = generate(cfg["synth"], out, progress=True)
    console.print(report.summary())


@app.command("eval")
def evaluate(
    gt: Annotated[Path, typer.Option(help="ground truth, ActivityNet/ActionFormer JSON layout")],
    pred: Annotated[Path, typer.Option(help="predictions, ActivityNet result layout")],
    subset: Annotated[str, typer.Option(help="ground-truth subset (case-insensitive)")] = "Test",
    tiou: Annotated[str, typer.Option(help="comma-separated tIoU thresholds")] = "0.3,0.4,0.5,0.6,0.7",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results as JSON")] = None,
) -> None:
    """Detection mAP of a prediction file, identical to the official ActivityNet evaluation."""
    from talbench.eval.report import evaluate_files

    try:
        thresholds = [float(t) for t in tiou.split(",")]
    except ValueError:
        _fail(f"--tiou must be comma-separated numbers, got '{tiou}'")
    with _user_errors():
        evaluate_files(gt, pred, subset=subset, tiou_thresholds=thresholds, json_out=json_out, console=console)


@app.command()
def proposals(
    profile: Annotated[str | None, typer.Option(help="params profile (default: data.profile)")] = None,
    data: Annotated[str | None, typer.Option(help="data source: synthetic or thumos14")] = None,
    train_split: Annotated[str | None, typer.Option(help="train BSN on this split (default: bsn.train_split); "
                                                         "train_fit: the tuning's proposals, AR on the holdout")] = None,
) -> None:
    """Train BSN on the training videos and write its proposals for every video (a DVC stage)."""
    from talbench.runners.bsn.stage import run_proposal_stage

    with _user_errors():
        run_proposal_stage(profile=profile, data_source=data, console=console, train_split=train_split)


@app.command()
def run(
    table: Annotated[str, typer.Argument(help="benchmark id, e.g. dnet.table1")],
    rows: Annotated[str | None, typer.Option(help="comma-separated row names or indices")] = None,
    seeds: Annotated[int | None, typer.Option(help="number of seeds (default: pipeline.seeds)")] = None,
    first_seed: Annotated[int | None, typer.Option(help="first seed (default: pipeline.first_seed)")] = None,
    workers: Annotated[int | None, typer.Option(help="processes training seeds in parallel (default: "
                                                    "pipeline.workers)")] = None,
    profile: Annotated[str | None, typer.Option(help="smoke or paper (default: data.profile)")] = None,
    data: Annotated[str | None, typer.Option(help="data source: synthetic or thumos14")] = None,
    tuned: Annotated[bool, typer.Option(help="use the loss weights found by `talbench tune`")] = False,
) -> None:
    """Run a benchmark table: every row x seed is one MLflow run nested under the table's run."""
    from talbench.benchmark.run import run_table

    with _user_errors():
        run_table(table, rows=rows, seeds=seeds, first_seed=first_seed, workers=workers, profile=profile,
                  data_source=data, tuned=tuned, console=console)


@app.command()
def leaderboard(
    results_dir: Annotated[Path, typer.Option(help="folder of results/<table>.json")] = Path("results"),
    out_dir: Annotated[Path, typer.Option(help="folder of the generated markdown")] = Path("leaderboards"),
) -> None:
    """Generate leaderboards/<paper>.md from the recorded results (published vs reproduced, claims judged)."""
    from talbench.leaderboard.generate import write_leaderboards

    with _user_errors():
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

    with _user_errors():
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

    with _user_errors():
        run_study(study, trials=trials, storage=storage, workers=workers, console=console)


@app.command()
def ui(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 5000) -> None:
    """Start the MLflow UI on 127.0.0.1 over the project's tracking store."""
    import subprocess
    import sys

    from talbench.tracking.store import tracking_uri

    uri = tracking_uri()
    console.print(f"MLflow UI for {uri} on http://127.0.0.1:{port}")
    subprocess.run(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
        check=False,
    )


if __name__ == "__main__":
    app()
