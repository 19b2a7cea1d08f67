"""Optuna storage: a local SQLite file by default, PostgreSQL (or any SQLAlchemy URL) for several machines.

``None`` -> ``sqlite:///<repo root>/<tune.storage>`` (absolute, so that queued DVC experiments, which run in
temporary copies of the repository, share the one study); a bare file path -> ``sqlite:///<absolute path>``;
a URL (``postgresql://user:password@host:5432/db``, ``sqlite:///...``, ``mysql+pymysql://...``) is used as
given through ``optuna.storages.RDBStorage``.
"""

from __future__ import annotations

from pathlib import Path

from talbench.config import REPO_ROOT
from talbench.errors import ConfigError
from talbench.tracking.store import redact

DEFAULT_FILE = "optuna.db"


def storage_url(storage: str | None, default_file: str = DEFAULT_FILE) -> str:
    """The SQLAlchemy URL of ``storage`` (see the module docstring)."""
    if storage is None or not str(storage).strip():
        path = Path(default_file)
        return f"sqlite:///{(path if path.is_absolute() else REPO_ROOT / path).resolve().as_posix()}"
    storage = str(storage).strip()
    if "://" in storage:
        return storage
    return f"sqlite:///{Path(storage).resolve().as_posix()}"


def open_storage(url: str):
    """An ``optuna.storages.RDBStorage`` on ``url``; a clear error when the database cannot be reached."""
    import optuna
    import sqlalchemy.exc

    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except (sqlalchemy.exc.SQLAlchemyError, ModuleNotFoundError, ValueError) as err:
        hint = " (pip install -c constraints.txt '.[postgres]')" if isinstance(err, ModuleNotFoundError) else ""
        raise ConfigError(f"--storage {redact(url)}: cannot open the Optuna storage: {err}{hint}") from err
