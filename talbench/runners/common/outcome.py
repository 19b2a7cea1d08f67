"""What a runner returns for one benchmark row and seed (the contract between runners and the orchestrator)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from talbench.errors import ConfigError

PREDICTION_COLUMNS = ("video_id", "label", "start", "end", "score")


@dataclass
class RowOutcome:
    """What a runner returns for one row and seed.

    ``metrics``: flat names (``rgb/mAP_0.5``, ``fusion/average_mAP``, ``params_m``, ``class_acc``, ...),
    percentages as the papers print them. ``predictions``: stream -> DataFrame ``video_id, label, start,
    end, score`` on the evaluation split. ``video_stats``: the per-video components of ratio metrics, a
    DataFrame ``metric, video_id, numerator, denominator`` with ``metric = 100 sum(numerator) /
    sum(denominator)`` (what the bootstrap over test videos resamples). ``timings``: seconds (``train``, ...).
    ``device_tags``: where the row ran (device, precision), set by the row execution, not by the runner.
    """

    metrics: dict[str, float]
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    video_stats: pd.DataFrame | None = None
    param_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    checkpoint_dir: Path | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    device_tags: dict[str, str] = field(default_factory=dict)

    def validate(self, runner: str) -> None:
        """Metric names MLflow accepts (no ``@``) and real numbers; prediction frames with the shared columns."""
        for name, value in self.metrics.items():
            if "@" in name:
                raise ConfigError(f"runner '{runner}': metric name '{name}' contains '@' (use 'mAP_0.5')")
            if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
                raise ConfigError(
                    f"runner '{runner}': metric '{name}' is {type(value).__name__}, not a number"
                )
            if math.isinf(float(value)):
                raise ConfigError(f"runner '{runner}': metric '{name}' is infinite")
        for stream, frame in self.predictions.items():
            missing = set(PREDICTION_COLUMNS) - set(frame.columns)
            if missing:
                raise ConfigError(
                    f"runner '{runner}': predictions of stream '{stream}' lack {sorted(missing)}"
                )
