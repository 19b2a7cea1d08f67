"""The MLflow tracking store: an absolute URI, the experiment, the run look-ups used for reuse, and the
clean-up of runs whose process died.

The default store is ``sqlite:///<repo root>/mlflow.db`` with artifacts in ``<repo root>/mlartifacts``, both
absolute, so that queued ``dvc exp run --queue`` experiments (which run in ``.dvc/tmp/exps/tmpXXX`` and are
deleted afterwards) log into the same store. ``MLFLOW_TRACKING_URI`` overrides it (a shared server).
mlflow is imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from talbench.config import REPO_ROOT

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

TRACKING_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_DB = REPO_ROOT / "mlflow.db"
OWNER_TAG = "talbench.owner"  # "<host>:<pid>:<process start time>" of the process that created a run
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on the runs, not GenAI


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the absolute ``sqlite:///<repo root>/mlflow.db``."""
    uri = os.environ.get(TRACKING_ENV, "").strip()
    return uri or f"sqlite:///{DEFAULT_DB.resolve().as_posix()}"


def display_uri(uri: str) -> str:
    """``uri`` as committed outputs may show it: the default store as ``sqlite:///mlflow.db`` (relative to the
    repository root), a server URL without credentials, any other local store as ``local store``; never a
    machine's absolute path."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix):])
        if path.is_absolute() and path.resolve().is_relative_to(REPO_ROOT.resolve()):
            return prefix + path.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
        return uri if not path.is_absolute() else "local store (outside the repository)"
    if "://" in uri:
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"
    return "local store (outside the repository)"


def redact(url: str) -> str:
    """``url`` without its password (for logs, error messages, MLflow tags and results files)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def artifact_location(uri: str, experiment: str) -> str | None:
    """Absolute artifact folder next to a local SQLite store (``<db folder>/mlartifacts/<experiment>``);
    ``None`` for a server, which chooses its own."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    db_path = Path(uri[len(prefix) :])
    if not db_path.is_absolute():
        db_path = Path.cwd() / db_path
    return (db_path.parent / "mlartifacts" / experiment).resolve().as_uri()


def client(uri: str | None = None) -> MlflowClient:
    """A client on ``uri`` (default :func:`tracking_uri`). Against a server MLflow would print two "View run"
    links for every run it ends, through talbench's progress display; they stay off unless
    ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`` is set (the commands print the parent run id)."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    return MlflowClient(tracking_uri=uri or tracking_uri())


def ensure_experiment(mlflow_client: MlflowClient, name: str) -> str:
    """Id of experiment ``name``, created with an absolute artifact location if missing, and tagged so that
    MLflow 3's UI opens it on its runs ("Model training") instead of the GenAI view, which shows no runs."""
    from mlflow.exceptions import MlflowException

    existing = mlflow_client.get_experiment_by_name(name)
    if existing is None:
        location = artifact_location(mlflow_client.tracking_uri, name)
        try:
            experiment_id = mlflow_client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except MlflowException:  # created meanwhile by a concurrent queued experiment
            existing = mlflow_client.get_experiment_by_name(name)
            if existing is None:
                raise
    if existing is not None:
        experiment_id = existing.experiment_id
        for key, value in EXPERIMENT_KIND.items():
            if existing.tags.get(key) != value:
                mlflow_client.set_experiment_tag(experiment_id, key, value)
    return experiment_id


def _process_id(pid: int) -> str | None:
    """``<host>:<pid>:<start time>`` of a running process, ``None`` if there is none with that id (a process id
    alone is reused by the system; with its start time it names one process)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{socket.gethostname()}:{pid}:{process.create_time():.3f}"
    except psutil.NoSuchProcess:
        return None


def owner() -> str:
    """The value of :data:`OWNER_TAG` for runs created by this process."""
    return _process_id(os.getpid())


def mark_orphans_killed(mlflow_client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment_id`` created on this host by a process that is gone (killed
    with SIGKILL, a crashed machine: nothing could end them), with the tag ``error`` saying so. Runs of other
    hosts, of live processes and without the owner tag are left alone. Returns the ids marked."""
    host = socket.gethostname()
    runs = mlflow_client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                     max_results=1000)
    marked = []
    for run in runs:
        owner_id = run.data.tags.get(OWNER_TAG, "")
        run_host, _, rest = owner_id.partition(":")
        pid = rest.partition(":")[0]
        if run_host != host or not pid.isdigit() or _process_id(int(pid)) == owner_id:
            continue
        line = f"process {pid} on {host} ended without closing the run (killed?); marked KILLED by a later run"
        mlflow_client.set_tag(run.info.run_id, "error", line)
        mlflow_client.set_tag(run.info.run_id, "mlflow.note.content", line)
        mlflow_client.set_terminated(run.info.run_id, status="KILLED")
        marked.append(run.info.run_id)
    return marked


def find_reusable_run(mlflow_client: MlflowClient, experiment_id: str, keys: dict[str, str]) -> Run | None:
    """The latest FINISHED run tagged with every ``keys`` value (configuration hash, seed, data and code
    fingerprints) that trained and evaluated itself (runs that reused another run are skipped: they point at
    the original)."""
    conditions = [f"tags.{name} = '{value}'" for name, value in sorted(keys.items())]
    filter_string = " and ".join([*conditions, "tags.reused = 'false'", "attributes.status = 'FINISHED'"])
    runs = mlflow_client.search_runs(
        [experiment_id], filter_string=filter_string, max_results=1, order_by=["attributes.start_time DESC"]
    )
    return runs[0] if runs else None
