"""A runner that waits: it appends its process id to the file named by ``TALBENCH_TEST_READY`` when its row
starts, then sleeps, so that a test can interrupt ``talbench run`` in the middle of a row run."""

from __future__ import annotations

import os
import time
from pathlib import Path

SECTIONS: tuple[str, ...] = ("baseline",)


def run_row(cfg: dict, seed: int, dataset, console=None, report=None):
    with Path(os.environ["TALBENCH_TEST_READY"]).open("a") as ready:
        ready.write(f"{os.getpid()}\n")
    time.sleep(120)
    raise AssertionError("the test did not interrupt the row")
