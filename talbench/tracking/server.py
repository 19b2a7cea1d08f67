"""``talbench server``: one MLflow tracking server that several processes or machines log to.

The server keeps the runs in a database (PostgreSQL for several machines; any SQLAlchemy URL MLflow accepts)
and serves the artifacts itself (``--serve-artifacts``: uploads and downloads go through the server to
``artifacts_destination``, a folder on its machine or an object store), so a worker needs only
``MLFLOW_TRACKING_URI=http://<server>:<port>``, no shared filesystem. It binds to 127.0.0.1 unless another
host is asked for. Before ``mlflow server`` starts, the backend is connected to once and the port bound once,
so an unreachable database or a taken port ends with one line instead of MLflow's traceback. The backend URI
(it may hold a password) reaches ``mlflow server`` through ``MLFLOW_BACKEND_STORE_URI``, not its command
line, so ``ps`` does not show it. MLflow's job runner (seven ``huey`` processes for its GenAI scorers and
trace archival, which talbench does not use) stays off unless ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` is set.
sqlalchemy is imported inside the check; mlflow runs in its own process.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from talbench.config import REPO_ROOT
from talbench.errors import ConfigError
from talbench.tracking.store import redact

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::")
DEFAULT_ARTIFACTS = REPO_ROOT / "mlartifacts"
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class ServerSettings:
    """What ``mlflow server`` is started with (see :func:`server_command`)."""

    backend_store_uri: str
    artifacts_destination: str = str(DEFAULT_ARTIFACTS)
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    allowed_hosts: str | None = None

    @property
    def is_local(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    @property
    def tracking_uri(self) -> str:
        """What workers set ``MLFLOW_TRACKING_URI`` to. Bound to every interface, the address to use is the
        machine's IP (MLflow's host check accepts private IPs and localhost; names only via allowed_hosts)."""
        host = "<this machine's IP address>" if self.host in WILDCARD_HOSTS else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


def artifacts_location(destination: str) -> str:
    """An object-store or file URI as given; a plain path made absolute (the server may start elsewhere)."""
    return destination if "://" in destination else str(Path(destination).expanduser().resolve())


def check_backend(uri: str, timeout_s: int = CONNECT_TIMEOUT_S) -> None:
    """Connect to the backend store once; a :class:`ConfigError` of one line when that fails."""
    import sqlalchemy
    import sqlalchemy.exc

    where = f"--backend-store-uri {redact(uri)}"
    if "://" not in uri:
        raise ConfigError(f"{where}: not a database URL (postgresql://user@host:5432/db or sqlite:////abs/path.db)")
    try:
        url = sqlalchemy.engine.make_url(uri)
        connect_args = {"connect_timeout": timeout_s} if url.get_backend_name() in ("postgresql", "mysql") else {}
        engine = sqlalchemy.create_engine(url, connect_args=connect_args)
    except ModuleNotFoundError as err:
        hint = "pip install -c constraints.txt '.[postgres]'" if uri.startswith("postgresql") else "install it"
        raise ConfigError(f"{where}: the database driver '{err.name}' is not installed ({hint})") from err
    except sqlalchemy.exc.ArgumentError as err:
        raise ConfigError(f"{where}: not a database URL SQLAlchemy knows ({err})") from err
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise ConfigError(f"{where}: cannot connect: {reason}") from err
    finally:
        engine.dispose()


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once (as the server will, address reuse on); a :class:`ConfigError` when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as err:
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err}); "
                          "choose another --port") from err


def server_command(settings: ServerSettings) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow server`` command line and its environment (the backend URI only in the environment)."""
    argv = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts",
            "--host", settings.host, "--port", str(settings.port), "--workers", str(settings.workers)]
    if settings.allowed_hosts:
        argv += ["--allowed-hosts", settings.allowed_hosts]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ,
           "MLFLOW_BACKEND_STORE_URI": settings.backend_store_uri,
           "MLFLOW_ARTIFACTS_DESTINATION": artifacts_location(settings.artifacts_destination)}
    return argv, env


def serve(settings: ServerSettings, console) -> None:
    """Check the backend and the port, say where workers should point, then become ``mlflow server``."""
    check_backend(settings.backend_store_uri)
    check_port(settings.host, settings.port)
    argv, env = server_command(settings)
    console.print(f"MLflow server: runs in {redact(settings.backend_store_uri)}, artifacts in "
                  f"{env['MLFLOW_ARTIFACTS_DESTINATION']}", markup=False)
    console.print(f"workers: export MLFLOW_TRACKING_URI={settings.tracking_uri}", markup=False)
    if not settings.is_local:
        console.print(f"[yellow]warning:[/] listening on {settings.host}: every machine that reaches this port "
                      "can read and write runs (MLflow has no login here); keep it behind a firewall. "
                      "Workers must connect by IP address unless --allowed-hosts lists the host name.")
    sys.stdout.flush()
    os.execve(argv[0], argv, env)
