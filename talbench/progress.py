"""The suite's one progress bar (rich): description, bar, done/total, extra columns, elapsed time."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


def task_progress(console: Console | None = None, *extra: ProgressColumn, disable: bool = False,
                  transient: bool = False) -> Progress:
    """A ``Progress`` for long work (training epochs, table rows, trials, videos)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *extra,
                    TimeElapsedColumn(), console=console, disable=disable, transient=transient)
