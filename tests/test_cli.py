"""The command line as a user meets it: help texts, data safety of `synth --out`, tidy warnings, `talbench eval`'s
lean process, `talbench ui` (busy or invalid port, exit code, SIGTERM)."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers.paths import REPO, SHARED_DATA
from typer.testing import CliRunner

from talbench.cli import app
from talbench.eval import report

PARAMS = str(REPO / "params.yaml")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_help_says_what_the_tool_does():
    """`talbench --help` said "(typer + rich)" with RST backticks; `run --profile` did not name `tiny`."""
    top = invoke("--help")
    assert top.exit_code == 0
    assert "Temporal Action Localization" in top.output and "typer" not in top.output and "``" not in top.output
    assert "tiny, smoke or paper" in invoke("run", "--help").output


def test_synth_never_deletes_a_users_folder(tmp_path, monkeypatch):
    """`talbench synth --out DIR` deleted DIR wholesale (a user's notes, with exit 0); `--out .` emptied the
    working directory and then crashed."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ideas.txt").write_text("mine")
    result = invoke("synth", "--profile", "tiny", "--params", PARAMS, "--out", str(notes))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"error: {notes}: not empty and not a previous output of this command" in result.output
    assert [p.name for p in notes.iterdir()] == ["ideas.txt"] and (notes / "ideas.txt").read_text() == "mine"
    monkeypatch.chdir(notes)
    for target in (".", str(tmp_path)):
        result = invoke("synth", "--profile", "tiny", "--params", PARAMS, "--out", target)
        assert result.exit_code == 2 and "working directory or one of its parents" in result.output
    assert [p.name for p in notes.iterdir()] == ["ideas.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_synth_replaces_its_own_output_and_keeps_what_the_user_added(tmp_path):
    out = tmp_path / "tiny"
    assert invoke("synth", "--profile", "tiny", "--params", PARAMS, "--out", str(out)).exit_code == 0
    (out / "README.txt").write_text("my notes on this data")
    first = (out / "annotations" / "thumos14.json").read_bytes()
    result = invoke("synth", "--profile", "tiny", "--params", PARAMS, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "README.txt").read_text() == "my notes on this data"
    assert (out / "annotations" / "thumos14.json").read_bytes() == first and (out / "synth_meta.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no temporary left


def test_warnings_are_tidy_lines(tmp_path):
    """Python warnings printed with their source path between the progress bars; now `warning: ...` lines."""
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {"video_test_0000004": [
        {"label": "Not [a] class", "segment": [1.0, 2.0], "score": 0.5}]}}))
    gt = SHARED_DATA / "golden" / "autoloc_thumos14" / "autoloc_gt.json"
    result = invoke("eval", "--gt", str(gt), "--pred", str(pred))
    assert result.exit_code == 0, result.output
    assert ("warning: 1 prediction(s) with label(s) absent from the ground truth were ignored: "
            "{'Not [a] class': 1}") in result.output
    assert "UserWarning" not in result.output and ".py:" not in result.output


def test_eval_pauses_the_collector_and_restores_the_process(monkeypatch):
    """`talbench eval` runs with the garbage collector paused; after it the collector runs again and the
    environment is as before (the single-thread OpenBLAS setting only lives while numpy loads)."""
    seen = []
    monkeypatch.setattr(report, "evaluate_files", lambda *args, **kwargs: seen.append(gc.isenabled()))
    environment = dict(os.environ)
    assert gc.isenabled()
    result = invoke("eval", "--gt", "gt.json", "--pred", "pred.json")
    assert result.exit_code == 0, result.output
    assert seen == [False] and gc.isenabled() and dict(os.environ) == environment


def test_eval_in_a_fresh_process_loads_openblas_with_one_thread():
    """OpenBLAS's idle worker threads spin on a core the evaluation needs: `talbench eval` loads numpy with one
    BLAS thread, without leaving the setting in its environment. The child's evaluation is a probe (the real
    module would load numpy first)."""
    pytest.importorskip("threadpoolctl")
    script = (
        "import gc, os, sys, types\n"
        "def probe(*args, **kwargs):\n"
        "    import threadpoolctl\n"
        "    blas = [p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']\n"
        "    print('PROBE', blas, gc.isenabled(), 'OPENBLAS_NUM_THREADS' in os.environ)\n"
        "sys.modules['talbench.eval.report'] = types.SimpleNamespace(evaluate_files=probe)\n"
        "from talbench.cli import app\n"
        "sys.argv = ['talbench', 'eval', '--gt', 'gt.json', '--pred', 'pred.json']\n"
        "app()\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", script], env={**environment, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "PROBE [1] False False" in done.stdout, done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ui_refuses_a_busy_or_invalid_port():
    """`talbench ui` exited 0 when the port was busy or invalid."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke("ui", "--port", str(port))
    assert result.exit_code == 2 and f"--port {port}: 127.0.0.1:{port} is not free" in result.output
    for bad in ("0", "70000"):
        assert invoke("ui", "--port", bad).exit_code == 2


def test_ui_returns_the_servers_exit_code(monkeypatch):
    from talbench import cli

    monkeypatch.setattr(cli, "_mlflow_ui_command", lambda uri, port: [sys.executable, "-c", "raise SystemExit(3)"])
    assert invoke("ui", "--port", str(_free_port())).exit_code == 3


def test_sigterm_to_ui_stops_the_server():
    """SIGTERM to `talbench ui` left the MLflow server listening. The server here is Python's http.server in
    place of MLflow's (same process handling, a second's start-up instead of several)."""
    port = _free_port()
    script = ("import sys, talbench.cli as cli; "
              "cli._mlflow_ui_command = lambda uri, port: [sys.executable, '-m', 'http.server', str(port), "
              "'--bind', '127.0.0.1']; "
              f"sys.argv = ['talbench', 'ui', '--port', '{port}']; cli.app()")
    ui = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def listening() -> bool:
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", port)) == 0

    deadline = time.monotonic() + 60
    while not listening() and ui.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listening(), ui.communicate()[0]
    ui.send_signal(signal.SIGTERM)
    output = ui.communicate(timeout=30)[0]
    assert ui.returncode == 143, output
    assert "interrupted: SIGTERM" in output
    assert not listening()

