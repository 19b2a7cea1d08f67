"""Each reproduced row's values of a column, per seed and per resample of the evaluation videos, read from the
files ``talbench run`` writes (``results/<table>.json`` and ``predictions/<table>/``), never from MLflow.

How a column is recomputed on a weighting of the videos (a video drawn k times counts k times):

* detection columns (``<stream>/mAP_<t>``, ``<stream>/average_mAP``): the run's predictions of that stream are
  matched once against the ground truth (once per run and stream, whichever columns read it) (:func:`talbench.eval.detection.match_detections`) and the mAP is
  recomputed for every resample at once (:func:`talbench.eval.detection.average_precision`);
* ratio columns (RefactorNet's table-3 accuracy and mean tIoU): ``100 sum_v w_v num_v / sum_v w_v den_v`` from
  the run's per-video components;
* any other column (parameter counts, timings) does not depend on the test videos: no resamples.

The resamples are multinomial draws of the evaluation video list from a seeded generator
(``leaderboard.bootstrap_seed``), identical for every run of a table, so that comparisons are paired over the
test videos. The recomputed full-split value equals the recorded one (checked, an error otherwise).
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talbench.benchmark import predictions as files
from talbench.benchmark.results import TableResult
from talbench.benchmark.schema import Benchmark
from talbench.errors import ConfigError
from talbench.leaderboard.intervals import Samples

if TYPE_CHECKING:
    from talbench.eval.detection import Matching

_TOLERANCE = 1e-9


def video_weights(n_videos: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(B, V)`` multinomial counts: each row one bootstrap resample of ``n_videos`` videos."""
    rng = np.random.default_rng([seed, n_videos])
    return rng.multinomial(n_videos, np.full(n_videos, 1.0 / n_videos), size=n_resamples).astype(np.float64)


class TableSamples:
    """Lazily computed :class:`Samples` of every (row, column) of one table's recorded result."""

    def __init__(self, bench: Benchmark, result: TableResult, root: Path, *, resamples: int, seed: int):
        self.bench, self.result, self.root = bench, result, Path(root)
        self.folder = self.root / result.eval.predictions if result.eval is not None else None
        self.resamples, self.seed = resamples, seed
        self._samples: dict[tuple[str, str], Samples | None] = {}
        self._matchings: dict[tuple[str, str], Matching] = {}  # (run file, stream)

    @functools.cached_property
    def _ground_truth(self):
        if self.folder is None or not (self.folder / "ground_truth.parquet").is_file():
            raise ConfigError(f"{self.root / 'results' / (self.result.table + '.json')}: eval.predictions: no "
                              f"prediction files at {self.folder} (run `talbench run {self.result.table}`)")
        gt, videos = files.read_ground_truth(self.folder)
        return gt, videos, video_weights(len(videos), self.resamples, self.seed)

    def samples(self, row: str, column: str) -> Samples | None:
        """The row's values of ``column`` (None when a run does not report it), computed once."""
        if (row, column) not in self._samples:
            self._samples[row, column] = self._compute(row, column)
        return self._samples[row, column]

    def _compute(self, row: str, column: str) -> Samples | None:
        record = next((r for r in self.result.rows if r.name == row), None)
        if record is None:
            return None
        runs = sorted(record.runs, key=lambda r: r.seed)
        values = [r.metrics.get(column) for r in runs]
        if any(v is None for v in values):
            return None
        values = np.asarray(values, dtype=np.float64)
        metric = self.bench.metrics.get(column, column)
        resampled = self._resampled(runs, metric, values)
        return Samples(tuple(r.seed for r in runs), values, resampled)

    def _resampled(self, runs, metric: str, values: np.ndarray) -> np.ndarray | None:
        stream = files.metric_stream(metric)
        out = []
        for run, recorded in zip(runs, values, strict=True):
            if run.predictions is None:
                return None
            full, resampled = self._run_metric(Path(run.predictions).name, metric, stream)
            if full is None:
                return None
            if not math.isclose(full, recorded, rel_tol=0, abs_tol=_TOLERANCE):
                raise ConfigError(f"{self.folder / Path(run.predictions).name}: {metric} recomputed from the "
                                  f"predictions is {full}, the results file records {recorded}")
            out.append(resampled)
        return np.stack(out)

    def _run_metric(self, name: str, metric: str, stream: str | None) -> tuple[float | None, np.ndarray | None]:
        _, videos, weights = self._ground_truth
        if stream is not None:
            from talbench.eval.detection import average_precision

            matching = self._matching(name, stream)
            columns = _threshold_columns(metric, self.result.eval.tiou_thresholds)
            full = np.nanmean(average_precision(matching, thresholds=columns)[0], axis=0).mean() * 100.0
            ap = average_precision(matching, weights, thresholds=columns)  # (B, C, T')
            return float(full), np.nanmean(ap, axis=1).mean(axis=1) * 100.0
        stats = files.read_video_stats(self.folder, name)
        if stats is None or metric not in set(stats["metric"]):
            return None, None
        part = stats[stats["metric"] == metric]
        index = {v: i for i, v in enumerate(videos)}
        code = part["video_id"].map(index).to_numpy()
        numerator = np.zeros(len(videos))
        denominator = np.zeros(len(videos))
        np.add.at(numerator, code, part["numerator"].to_numpy(np.float64))
        np.add.at(denominator, code, part["denominator"].to_numpy(np.float64))
        full = 100.0 * numerator.sum() / denominator.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(full), 100.0 * (weights @ numerator) / (weights @ denominator)


    def _matching(self, name: str, stream: str) -> Matching:
        """The run's detections of ``stream`` matched against the ground truth at every evaluated threshold:
        read and matched once, whichever columns (thresholds) of the stream the table reads."""
        if (name, stream) not in self._matchings:
            from talbench.eval.detection import match_detections

            gt, videos, _ = self._ground_truth
            self._matchings[name, stream] = match_detections(gt, files.read_detections(self.folder, name, stream),
                                                             self.result.eval.tiou_thresholds, videos=videos)
        return self._matchings[name, stream]


def _threshold_columns(metric: str, thresholds: list[float]) -> list[int]:
    match = re.search(r"mAP_([0-9.]+)$", metric)
    if match is None:  # average_mAP: every threshold
        return list(range(len(thresholds)))
    wanted = float(match.group(1))
    hits = [i for i, t in enumerate(thresholds) if math.isclose(t, wanted)]
    if not hits:
        raise ConfigError(f"metric {metric}: tIoU {wanted} is not among the evaluated thresholds {thresholds}")
    return hits
