"""Summary statistics of repeated runs (seeds): the suite's one mean and standard deviation."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value) of ``values``."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("mean_std needs at least one value")
    return statistics.fmean(data), statistics.stdev(data) if len(data) > 1 else 0.0
