"""Where a number came from: git commit (+ dirty flag), DVC experiment name and code hash. The device a row ran
on is described where it is resolved, by the row execution (:func:`talbench.runners.common.device.describe`).

No mlflow import here: the checkpoint helpers use :func:`code_hash` too.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from pathlib import Path

from talbench.config import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "talbench"


def _git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd or Path.cwd(), capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip()


def git_commit(cwd: Path | None = None) -> str | None:
    """Commit of the working tree the command runs in (``None`` outside git)."""
    return _git("rev-parse", "HEAD", cwd=cwd)


PIPELINE_OUTPUTS = ("dvc.lock", "tuning/dvc.lock", "results", "leaderboards", "tuned")
"""Committed files that ``dvc repro`` and the studies rewrite: they are what a run produces, not its source."""


def git_dirty(cwd: Path | None = None) -> bool | None:
    """True when tracked sources or configs differ from the commit (MLflow's own git tag has no dirty flag).

    The pipeline's own committed outputs (:data:`PIPELINE_OUTPUTS`) do not count: ``dvc repro`` rewrites them
    while it runs, so counting them would mark every table after the first as dirty.
    """
    excluded = [f":(top,exclude){path}" for path in PIPELINE_OUTPUTS]
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded, cwd=cwd)
    return None if status is None else bool(status)


def dvc_experiment_name() -> str | None:
    """``DVC_EXP_NAME`` as set by ``dvc exp run`` (MLflow records the baseline commit only)."""
    return os.environ.get("DVC_EXP_NAME") or None


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """sha1 over the package's Python sources: a reused run or checkpoint must come from the same code."""
    digest = hashlib.sha1()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]

