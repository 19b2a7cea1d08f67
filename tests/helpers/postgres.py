"""A throw-away PostgreSQL server on 127.0.0.1 for the distributed tests (Optuna storage, MLflow server).

Skipped with the reason where PostgreSQL or psycopg2 is missing or the server cannot start, except under
``TALBENCH_REQUIRE_POSTGRES=1`` (set by ``.ci/run`` once PostgreSQL is installed): there every such reason
is a failure, so CI never passes with the distributed tests silently skipped."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REQUIRE_ENV = "TALBENCH_REQUIRE_POSTGRES"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable(reason: str) -> None:
    """Skip the test, or fail it where PostgreSQL is required (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextlib.contextmanager
def postgres_server(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start a cluster in a temporary folder (as the ``postgres`` user when we are root); yields
    ``database(name) -> URL``, which creates database ``name`` owned by the trusted user ``talbench``."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        unavailable("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
    try:
        import psycopg2  # noqa: F401
    except ModuleNotFoundError:
        unavailable("psycopg2-binary missing: pip install -c constraints.txt '.[postgres]'")
    prefix: list[str] = []
    root = tmp_path / "pg"
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the cluster belongs to `postgres`
        runuser = shutil.which("runuser")
        if runuser is None:
            unavailable("running as root without runuser: PostgreSQL refuses to run as root")
        prefix = [runuser, "-u", "postgres", "--"]
        # pytest's tmp_path lies under a 0700 root-owned folder: use a sibling the postgres user can reach
        root = Path(tempfile.mkdtemp(prefix="talbench-pg-"))
        shutil.chown(root, "postgres")
    data, sockets = root / "data", root / "sock"
    sockets.mkdir(parents=True)
    if prefix:
        shutil.chown(sockets, "postgres")
    port = free_port()
    init = subprocess.run([*prefix, initdb, "-D", str(data), "-U", "talbench", "--auth=trust", "-E", "UTF8"],
                          check=False, capture_output=True, text=True)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
    options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    start = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
                            "-t", "30", "start"], check=False, capture_output=True, text=True)
    if start.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")

    def database(name: str) -> str:
        subprocess.run([*prefix, _pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port),
                        "-U", "talbench", name], check=True, capture_output=True)
        return f"postgresql://talbench@127.0.0.1:{port}/{name}"

    try:
        yield database
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False,
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
