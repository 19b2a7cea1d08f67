"""The suite's one progress bar (rich): description, bar, done/total, extra columns, elapsed and remaining time."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def task_progress(console: Console | None = None, *extra: ProgressColumn, disable: bool = False,
                  transient: bool = False) -> Progress:
    """A ``Progress`` for long work (training epochs, table rows, trials, videos); the description (row names)
    is plain text, never markup."""
    return Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
                    MofNCompleteColumn(), *extra, TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console, disable=disable, transient=transient)
