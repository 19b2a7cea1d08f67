"""The MLflow store, provenance and run lifecycle: URIs, display URIs, git dirty flag, the tracked run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from talbench.tracking.provenance import git_dirty


def test_tracking_uri_is_absolute_and_overridable(monkeypatch):
    from talbench.config import REPO_ROOT
    from talbench.tracking.store import artifact_location, tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{REPO_ROOT.resolve().as_posix()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"
    assert artifact_location("http://127.0.0.1:5000", "talbench") is None
    assert artifact_location("sqlite:////srv/x/mlflow.db", "talbench") == "file:///srv/x/mlartifacts/talbench"


def test_display_uri_never_shows_a_machine_path():
    """Committed outputs (results, leaderboards) show the store relative to the repository or not at all."""
    from talbench.config import REPO_ROOT
    from talbench.tracking.store import display_uri

    assert display_uri(f"sqlite:///{REPO_ROOT.resolve().as_posix()}/mlflow.db") == "sqlite:///mlflow.db"
    assert display_uri(f"sqlite:///{REPO_ROOT.resolve().as_posix()}/optuna.db") == "sqlite:///optuna.db"
    assert display_uri("sqlite:////srv/elsewhere/mlflow.db") == "local store (outside the repository)"
    assert display_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"  # already relative
    assert display_uri("postgresql://user:secret@db.lab:5432/tal") == "postgresql://db.lab:5432/tal"
    assert display_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_tracked_run_ends_finished_failed_or_killed_and_says_why(tmp_path):
    from mlflow.tracking import MlflowClient

    from talbench.errors import Terminated
    from talbench.tracking.runs import tracked_run
    from talbench.tracking.store import OWNER_TAG, owner

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("t")
    with tracked_run(client, experiment, name="ok", tags={"kind": "x"}) as ok:
        pass
    with pytest.raises(KeyError), tracked_run(client, experiment, name="bad", tags={}) as bad:
        raise KeyError("boom")
    with pytest.raises(KeyError), tracked_run(client, experiment, name="pruned", tags={},
                                                status_on_error=lambda err: "KILLED") as pruned:
        raise KeyError("pruned")
    with pytest.raises(KeyboardInterrupt), tracked_run(client, experiment, name="ctrl-c", tags={}) as ctrl_c:
        raise KeyboardInterrupt
    with pytest.raises(Terminated), tracked_run(client, experiment, name="sigterm", tags={},
                                                status_on_error=lambda err: "FAILED") as sigterm:
        raise Terminated
    runs = {r: client.get_run(r) for r in (ok, bad, pruned, ctrl_c, sigterm)}
    assert [run.info.status for run in runs.values()] == ["FINISHED", "FAILED", "KILLED", "KILLED", "KILLED"]
    assert runs[ok].data.tags["kind"] == "x" and runs[ok].data.tags[OWNER_TAG] == owner()
    assert "error" not in runs[ok].data.tags
    why = {r: (run.data.tags["error"], run.data.tags["mlflow.note.content"]) for r, run in runs.items() if r != ok}
    assert why[bad] == ("KeyError: 'boom'",) * 2
    assert why[ctrl_c] == ("interrupted by SIGINT (Ctrl-C)",) * 2
    assert why[sigterm] == ("interrupted by SIGTERM",) * 2


def test_runs_of_a_dead_process_are_marked_killed(tmp_path):
    """A process killed without a word (SIGKILL) leaves its runs RUNNING; the next command marks them KILLED,
    and leaves alone the runs of live processes and of other machines."""
    from mlflow.tracking import MlflowClient

    from talbench.config import REPO_ROOT
    from talbench.tracking.store import OWNER_TAG, mark_orphans_killed, owner

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("t")
    code = ("import os, signal; from mlflow.tracking import MlflowClient; "
            "from talbench.tracking.runs import tracked_run; "
            f"client = MlflowClient(tracking_uri={uri!r}); "
            f"context = tracked_run(client, {experiment!r}, name='doomed', tags={{}}); context.__enter__(); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    died = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          check=False)
    assert died.returncode == -9
    live = client.create_run(experiment, tags={OWNER_TAG: owner()}).info.run_id
    elsewhere = client.create_run(experiment, tags={OWNER_TAG: "another-host:1:12.000"}).info.run_id
    untagged = client.create_run(experiment).info.run_id
    doomed = client.search_runs([experiment], "tags.mlflow.runName = 'doomed'")[0]
    assert doomed.info.status == "RUNNING"
    assert mark_orphans_killed(client, experiment) == [doomed.info.run_id]
    doomed = client.get_run(doomed.info.run_id)
    assert doomed.info.status == "KILLED" and "ended without closing the run" in doomed.data.tags["error"]
    assert {client.get_run(r).info.status for r in (live, elsewhere, untagged)} == {"RUNNING"}


def test_experiment_opens_on_its_runs(tmp_path):
    """MLflow 3 opened the experiment in its GenAI view, which shows no runs."""
    from mlflow.tracking import MlflowClient

    from talbench.tracking.store import ensure_experiment

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    new = ensure_experiment(client, "fresh")
    old = client.create_experiment("made-before")
    assert ensure_experiment(client, "made-before") == old
    for experiment in (new, old):
        assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"


def test_metric_keys_of_row_names():
    from talbench.tracking.runs import metric_key

    assert metric_key("+ D-Net") == "D-Net"
    assert metric_key("F_pro / F_loc") == "F_pro F_loc"
    assert metric_key("Baseline (A-Net)") == "Baseline A-Net"


def test_tracking_modules_do_not_import_mlflow():
    """`talbench eval`/`synth` stay fast: importing the CLI and the tracking modules loads neither mlflow nor torch."""
    code = (
        "import sys, talbench.cli, talbench.tracking.store, talbench.tracking.runs, talbench.benchmark.run, "
        "talbench.runners.common.checkpoints; print(sorted(m for m in ('mlflow', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_git_dirty_ignores_the_pipeline_outputs(tmp_path):
    """`dvc repro` rewrites results/, leaderboards/ and dvc.lock while it runs: they must not mark a run dirty."""

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    for name in ("dvc.lock", "results/dnet.table1.json", "leaderboards/dnet.md", "params.yaml", "talbench/x.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("committed\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "state")
    assert git_dirty(tmp_path) is False
    for name in ("dvc.lock", "results/dnet.table1.json", "leaderboards/dnet.md"):
        (tmp_path / name).write_text("rewritten by dvc repro\n")
    assert git_dirty(tmp_path / "results") is False  # from a subfolder too
    (tmp_path / "params.yaml").write_text("changed by hand\n")
    assert git_dirty(tmp_path) is True
    git("checkout", "-q", "params.yaml")
    (tmp_path / "talbench/x.py").write_text("changed code\n")
    assert git_dirty(tmp_path / "results") is True
