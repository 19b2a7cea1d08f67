"""``talbench server``: the command it starts (127.0.0.1 by default, the password off the command line), its
one-line errors, and for real: PostgreSQL on 127.0.0.1, the MLflow server on it, two ``talbench run``
processes in two project copies (two "machines") writing different tables at once, every row x seed run
recorded exactly once, then one machine reusing the other's finished runs through the server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.linear_runner_b import RUNNER as RUNNER_B
from helpers.paths import REPO
from helpers.postgres import free_port, unavailable
from helpers.project import TABLE, benchmark_yaml, write_project
from typer.testing import CliRunner

from talbench.benchmark.run import run_table
from talbench.cli import app
from talbench.tracking.server import ServerSettings, server_command

TABLE_B = "dnet.table98"  # a second test table, rows of another family: nothing to reuse between the two


@pytest.fixture
def no_exec(monkeypatch):
    """Record the command ``talbench server`` would become instead of replacing the test process."""
    calls = []

    def record(path, argv, env):
        calls.append((argv, env))
        raise SystemExit(0)

    monkeypatch.setattr("talbench.tracking.server.os.execve", record)
    return calls


def test_command_binds_loopback_and_keeps_the_password_off_the_command_line(tmp_path):
    settings = ServerSettings(backend_store_uri="postgresql://talbench:secret@db.lab:5432/mlflow",
                              artifacts_destination=str(tmp_path / "artifacts"))
    argv, env = server_command(settings)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "5000"
    assert "--serve-artifacts" in argv and not any("secret" in a or "db.lab" in a for a in argv)
    assert env["MLFLOW_BACKEND_STORE_URI"] == "postgresql://talbench:secret@db.lab:5432/mlflow"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == str(tmp_path / "artifacts")
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    wide = ServerSettings(backend_store_uri="sqlite:////x.db", host="0.0.0.0", port=5001, allowed_hosts="lab-1")
    argv, _ = server_command(wide)
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--allowed-hosts") + 1] == "lab-1"
    assert server_command(ServerSettings(backend_store_uri="sqlite:////x.db", artifacts_destination="s3://b/a"))[1][
        "MLFLOW_ARTIFACTS_DESTINATION"] == "s3://b/a"


def test_cli_checks_then_starts_mlflow_on_loopback(tmp_path, no_exec):
    result = CliRunner().invoke(app, ["server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                                      "--artifacts-destination", str(tmp_path / "artifacts"),
                                      "--port", str(free_port())])
    assert result.exit_code == 0, result.output
    (argv, env), = no_exec
    assert argv[1:4] == ["-m", "mlflow", "server"] and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert env["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:" in result.output and "warning" not in result.output
    result = CliRunner().invoke(app, ["server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                                      "--host", "0.0.0.0", "--port", str(free_port())])
    assert "warning: listening on 0.0.0.0" in result.output and "<this machine's IP address>" in result.output


def test_unreachable_backend_or_taken_port_is_one_line(tmp_path, no_exec):
    def fails(*args: str) -> str:
        result = CliRunner().invoke(app, ["server", *args])
        assert result.exit_code == 2 and not no_exec
        assert result.output.startswith("error: --") and result.output.count("\n") == 1, result.output
        return result.output

    out = fails("--backend-store-uri", f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'mlflow.db'}")
    assert "cannot connect: unable to open database file" in out
    assert "not a database URL" in fails("--backend-store-uri", "mlflow.db")
    assert "not a database URL SQLAlchemy knows" in fails("--backend-store-uri", "file:///tmp/mlruns")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        out = fails("--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--port", port)
    assert f"--host 127.0.0.1 --port {port}: cannot listen there" in out
    try:
        import psycopg2  # noqa: F401
    except ModuleNotFoundError:
        unavailable("psycopg2-binary missing: pip install -c constraints.txt '.[postgres]'")
    out = fails("--backend-store-uri", f"postgresql://talbench:secret@127.0.0.1:{free_port()}/mlflow")
    assert "postgresql://talbench:***@127.0.0.1" in out and "Connection refused" in out and "secret" not in out


# --- the real thing: PostgreSQL, the server, two machines ------------------------------------------------------


def _environment(**extra: str) -> dict[str, str]:
    paths = [str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "OMP_NUM_THREADS": "1", **extra}


def _talbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "talbench.cli", *args]


def _wait_healthy(server: subprocess.Popen, url: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"talbench server exited ({server.returncode}):\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"talbench server not healthy after {timeout_s} s:\n{log.read_text()[-2000:]}")


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (mlflow, uvicorn and its workers), SIGKILL after 15 s."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait_s)
            time.sleep(0.5)  # the group's other processes follow their parent
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def tracking_server(postgres_database, tmp_path):
    """``talbench server`` on a new PostgreSQL database, on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            _talbench("server", "--backend-store-uri", postgres_database("mlflow"), "--artifacts-destination",
                      str(tmp_path / "artifacts"), "--port", str(port), "--workers", "1"),
            env=_environment(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, url, log)
        yield url
    finally:
        _stop(server)


def _machines(root: Path) -> tuple[Path, Path]:
    """Two copies of one project (the same params, benchmarks and data), as two machines would hold."""
    first = write_project(root / "machine-a")
    (first / "benchmarks" / f"{TABLE_B}.yaml").write_text(
        yaml.safe_dump(benchmark_yaml(table=TABLE_B, runner_path=RUNNER_B)), encoding="utf-8")
    second = root / "machine-b"
    shutil.copytree(first, second)
    return first, second


def _run(machine: Path, table: str, url: str) -> subprocess.Popen:
    return subprocess.Popen(_talbench("run", table), cwd=machine, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=_environment(MLFLOW_TRACKING_URI=url, TALBENCH_MODELS_DIR=str(machine / "models")))


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output[-3000:]
    return output


def _results(machine: Path, table: str) -> dict:
    return json.loads((machine / "results" / f"{table}.json").read_text())


def _runs(results: dict) -> dict[tuple[str, int], dict]:
    """``(row name, seed) -> run`` of a results file."""
    return {(row["name"], run["seed"]): run for row in results["rows"] for run in row["runs"]}


@pytest.mark.slow
def test_two_machines_share_one_server(tracking_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    machine_a, machine_b = _machines(tmp_path)
    processes = [_run(machine_a, TABLE, tracking_server), _run(machine_b, TABLE_B, tracking_server)]
    outputs = [_finish(process) for process in processes]
    assert not any("View run" in output for output in outputs)  # MLflow's per-run links stay out of the progress
    first, second = _results(machine_a, TABLE), _results(machine_b, TABLE_B)
    assert first["tracking_uri"] == second["tracking_uri"] == tracking_server

    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.get_experiment_by_name(first["experiment"])
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # uploads go through the server
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.info.run_id: r for r in runs if r.data.tags["kind"] == "table"}
    children = [r for r in runs if r.data.tags["kind"] == "row"]
    assert set(parents) == {first["parent_run_id"], second["parent_run_id"]}
    # every row x seed of each table recorded exactly once, FINISHED, trained (nothing to reuse yet), none lost
    assert len(runs) == 2 + 3 * 2 + 3 * 2 and {r.info.status for r in runs} == {"FINISHED"}
    for results in (first, second):
        own = [r for r in children if r.data.tags["mlflow.parentRunId"] == results["parent_run_id"]]
        recorded = {(r.data.tags["row"], int(r.data.tags["seed"])): r.info.run_id for r in own}
        assert len(recorded) == len(own) and recorded == {k: r["run_id"] for k, r in _runs(results).items()}
        assert {r.data.tags["table"] for r in own} == {results["table"]}
        assert {r.data.tags["reused"] for r in own} == {"false"}
    # the two processes wrote at the same time
    spans = [(parents[p].info.start_time, parents[p].info.end_time) for p in parents]
    assert max(s for s, _ in spans) < min(e for _, e in spans), "the two table runs did not overlap"

    # machine A runs machine B's table (here in the test's process, with training forbidden): every run is found
    # on the server, and the reused runs' predictions come back through the server's artifact proxy equal to
    # those machine B wrote
    def must_not_train(*args, **kwargs):
        raise AssertionError("a run machine B finished was trained again on machine A")

    monkeypatch.setattr("talbench.runners.families.run_row", must_not_train)
    monkeypatch.chdir(machine_a)
    for name, value in {"MLFLOW_TRACKING_URI": tracking_server, "TALBENCH_MODELS_DIR": str(machine_a / "models"),
                        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
        monkeypatch.setenv(name, value)
    again = run_table(TABLE_B, results_dir=machine_a / "results")
    originals = _runs(second)
    assert _runs(again).keys() == originals.keys()
    for key, run in _runs(again).items():
        original = originals[key]
        assert run["reused"] is True and run["reused_from"] == original["run_id"]
        assert run["metrics"] == original["metrics"]
        pd.testing.assert_frame_equal(pd.read_parquet(machine_a / run["predictions"]),
                                      pd.read_parquet(machine_b / original["predictions"]))
        tags = client.get_run(run["run_id"]).data.tags
        assert tags["reused"] == "true" and tags["reused_from"] == original["run_id"]
    assert len(client.search_runs([experiment.experiment_id], max_results=1000)) == len(runs) + 1 + 3 * 2
    # machine A now holds both tables' results files, as the leaderboard reads them
    assert {p.name for p in (machine_a / "results").glob("*.json")} == {f"{TABLE}.json", f"{TABLE_B}.json"}
