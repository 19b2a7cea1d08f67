"""The MLflow store, provenance and run lifecycle: URIs, display URIs, git dirty flag, the tracked run."""

from __future__ import annotations

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


def test_tracked_run_ends_finished_or_failed(tmp_path):
    from mlflow.tracking import MlflowClient

    from talbench.tracking.runs import tracked_run

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("t")
    with tracked_run(client, experiment, name="ok", tags={"kind": "x"}) as ok:
        pass
    with pytest.raises(KeyError), tracked_run(client, experiment, name="bad", tags={}) as bad:
        raise KeyError("boom")
    with pytest.raises(KeyError), tracked_run(client, experiment, name="killed", tags={},
                                                status_on_error=lambda err: "KILLED") as killed:
        raise KeyError("pruned")
    assert [client.get_run(r).info.status for r in (ok, bad, killed)] == ["FINISHED", "FAILED", "KILLED"]
    assert client.get_run(ok).data.tags["kind"] == "x"


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
