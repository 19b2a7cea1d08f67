"""The distributed path for real: a PostgreSQL server on 127.0.0.1, two worker processes on one study
(``talbench.tune.workers.spawn_workers``, as ``talbench tune --workers 2 --storage postgresql://...``), every
trial recorded exactly once. The objective is a cheap analytic function: this tests the storage path, not
a model. Skipped (with the reason) only where PostgreSQL is not installed or cannot start."""

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from talbench.tune.storage import open_storage
from talbench.tune.workers import spawn_workers, split_trials

pytestmark = pytest.mark.slow

OBJECTIVE_MODULE = '''
import time


def make_objective():
    def objective(trial):
        x = trial.suggest_float("x", -5.0, 5.0)
        y = trial.suggest_int("y", 0, 3)
        time.sleep(0.02)  # let the two workers interleave
        return (x - 1.0) ** 2 + y
    return objective
'''


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path):
    """A throw-away PostgreSQL cluster in ``tmp_path`` (run as the ``postgres`` user when we are root)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary missing: pip install -c constraints.txt '.[postgres]'")
    prefix: list[str] = []
    root = tmp_path / "pg"
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the cluster belongs to `postgres`
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
        prefix = [runuser, "-u", "postgres", "--"]
        # pytest's tmp_path lies under a 0700 root-owned folder: use a sibling the postgres user can reach
        root = Path(tempfile.mkdtemp(prefix="talbench-pg-"))
        shutil.chown(root, "postgres")
    data, sockets = root / "data", root / "sock"
    sockets.mkdir(parents=True)
    if prefix:
        shutil.chown(sockets, "postgres")
    port = _free_port()
    init = subprocess.run([*prefix, initdb, "-D", str(data), "-U", "talbench", "--auth=trust", "-E", "UTF8"],
                          check=False, capture_output=True, text=True)
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    start = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
                            "-t", "30", "start"], check=False, capture_output=True, text=True)
    if start.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")
    try:
        subprocess.run([*prefix, _pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port),
                        "-U", "talbench", "optuna"], check=True, capture_output=True)
        yield f"postgresql://talbench@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False,
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_worker_processes_record_every_trial_once(postgres, tmp_path, monkeypatch):
    (tmp_path / "pg_objective.py").write_text(OBJECTIVE_MODULE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    optuna.create_study(study_name="pg-study", storage=open_storage(postgres), direction="minimize")
    total = 24
    quotas = split_trials(total, 2)
    polls = []
    started = time.perf_counter()
    spawn_workers("pg-study", postgres, quotas, {"seed": 0, "n_startup_trials": 4}, {"type": "none"},
                  "pg_objective:make_objective", {}, poll=lambda: polls.append(len(optuna.load_study(study_name="pg-study", storage=postgres).trials)), poll_seconds=0.2)
    assert time.perf_counter() - started < 60
    assert polls and polls[-1] == total  # progress polled from the shared storage while the workers ran
    study = optuna.load_study(study_name="pg-study", storage=open_storage(postgres))
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(trials) == total and sorted(numbers) == list(range(total))  # distinct, no duplicate, no gap
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t._trial_id for t in trials}) == total
    # both processes wrote trials: their start times interleave (each worker runs its quota sequentially)
    assert quotas == [12, 12]
    by_start = sorted(trials, key=lambda t: t.datetime_start)
    overlaps = sum(a.datetime_complete > b.datetime_start for a, b in itertools.pairwise(by_start))
    assert overlaps >= 1, "the two workers never ran at the same time"
