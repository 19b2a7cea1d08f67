"""Per-run predictions as files: what the verdicts' bootstrap over test videos reads, without the MLflow store.

``talbench run TABLE`` writes, next to ``results/<table>.json``, the folder ``predictions/<table>/`` (a DVC
output of the table's stage):

* ``ground_truth.parquet``: the evaluation split's instances ``video_id, label, start, end`` and the list of
  evaluation videos (``videos.json``: videos without any instance count in the resampling too);
* ``row<index>-seed<k>.parquet``: the run's detections ``stream, video_id, label, start, end, score`` of the
  streams the table's columns read (``fusion/mAP_0.5`` -> stream ``fusion``), in float64 as evaluated (the
  mAP recomputed from the file equals the logged one bit for bit);
* ``row<index>-seed<k>.videos.parquet`` (when the runner reports them): per-video components ``metric,
  video_id, numerator, denominator`` of ratio metrics (RefactorNet's table-3 accuracy and mean tIoU), whose
  value is ``sum(numerator) / sum(denominator)``.

Categorical columns and zstd compression keep them small (sizes in docs/leaderboards.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from talbench.io import atomic_path, atomic_write_json

DETECTION_METRIC = re.compile(r"^(?P<stream>.+)/(?:mAP_(?P<tiou>[0-9.]+)|average_mAP)$")
PREDICTIONS_DIR = Path("predictions")


def metric_stream(metric: str) -> str | None:
    """The prediction stream a detection metric is computed from (``fusion/mAP_0.5`` -> ``fusion``)."""
    match = DETECTION_METRIC.match(metric)
    return match.group("stream") if match else None


def table_folder(table: str, root: Path = Path(".")) -> Path:
    return Path(root) / PREDICTIONS_DIR / table


def run_file(row_index: int, seed: int) -> str:
    return f"row{row_index}-seed{seed}.parquet"


RUN_FILE = re.compile(r"^row[0-9]+-seed[0-9]+(?:\.videos)?\.parquet$")


def owned(name: str) -> bool:
    """An entry ``talbench run`` writes into a table's prediction folder (anything else there is the user's)."""
    return name in ("ground_truth.parquet", "videos.json") or RUN_FILE.match(name) is not None


def is_predictions_folder(path: Path) -> bool:
    """An earlier prediction folder of ``talbench run`` (it always holds the ground truth)."""
    return (Path(path) / "ground_truth.parquet").is_file()


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd")


def write_ground_truth(folder: Path, gt: pd.DataFrame, videos: list[str]) -> None:
    """The evaluation instances and videos of the table's runs."""
    table = gt[["video_id", "label", "start", "end"]].astype({"video_id": "category", "label": "category"})
    _write_parquet(table.reset_index(drop=True), folder / "ground_truth.parquet")
    atomic_write_json(folder / "videos.json", list(videos))


def write_run(folder: Path, name: str, predictions: dict[str, pd.DataFrame], streams: set[str],
              video_stats: pd.DataFrame | None) -> None:
    """One run's detections of ``streams`` (and its per-video ratio components) as ``folder/name``."""
    frames = []
    for stream in sorted(streams):
        if stream not in predictions:
            raise KeyError(f"the runner reported no predictions of stream '{stream}' (has {sorted(predictions)})")
        frame = predictions[stream][["video_id", "label", "start", "end", "score"]]
        frames.append(frame.assign(stream=stream))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["stream", "video_id", "label", "start", "end", "score"])
    table = table[["stream", "video_id", "label", "start", "end", "score"]].astype(
        {"stream": "category", "video_id": "category", "label": "category",
         "start": "float64", "end": "float64", "score": "float64"})
    _write_parquet(table, folder / name)
    if video_stats is not None:
        _write_parquet(video_stats.astype({"metric": "category", "video_id": "category"}),
                       folder / name.replace(".parquet", ".videos.parquet"))


def read_ground_truth(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    gt = pd.read_parquet(folder / "ground_truth.parquet")
    gt = gt.astype({"video_id": str, "label": str})
    return gt, json.loads((folder / "videos.json").read_text(encoding="utf-8"))


def read_detections(folder: Path, name: str, stream: str) -> pd.DataFrame:
    """A run's detections of one stream (empty when the run has none): the other streams' rows are filtered
    out by the parquet reader, never converted."""
    table = pd.read_parquet(folder / name, columns=["video_id", "label", "start", "end", "score"],
                            filters=[("stream", "==", stream)])
    return table.astype({"video_id": str, "label": str}).reset_index(drop=True)


def read_video_stats(folder: Path, name: str) -> pd.DataFrame | None:
    """A run's per-video ratio components (None when it has none)."""
    videos_file = folder / name.replace(".parquet", ".videos.parquet")
    if not videos_file.is_file():
        return None
    return pd.read_parquet(videos_file).astype({"metric": str, "video_id": str})
