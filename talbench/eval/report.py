"""``talbench eval``: evaluate a prediction file against a GT file and print rich tables.

Imports only numpy, orjson and rich (never pandas, mlflow, torch or optuna): files are read into numpy columns
(:func:`talbench.eval.io.read_prediction_columns`), so the command starts fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from talbench.errors import ConfigError
from talbench.eval.detection import DetectionResult, check_thresholds, check_tie_break, evaluate_detection
from talbench.eval.io import read_ground_truth_columns, read_prediction_columns
from talbench.io import atomic_write_json


def map_table(result: DetectionResult, title: str = "Detection mAP (%)") -> Table:
    table = Table(title=title)
    for t in result.tiou:
        table.add_column(f"tIoU {t:g}", justify="right")
    table.add_column("Avg", justify="right", style="bold")
    table.add_row(*[f"{m:.2f}" for m in result.map], f"{result.average_map:.2f}")
    return table


def per_class_table(result: DetectionResult, title: str = "Per-class AP (%)") -> Table:
    table = Table(title=title)
    table.add_column("class")
    for t in result.tiou:
        table.add_column(f"{t:g}", justify="right")
    for label, row in zip(result.classes, result.class_ap, strict=True):
        table.add_row(Text(str(label)), *[f"{v:.2f}" for v in row])
    return table


def evaluate_files(
    gt_path: str | Path,
    pred_path: str | Path,
    *,
    subset: str = "Test",
    tiou_thresholds: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7),
    tie_break: str = "canonical",
    json_out: str | Path | None = None,
    console: Console | None = None,
) -> DetectionResult:
    """Evaluate ``pred_path`` (ActivityNet result JSON) against the ``subset`` of ``gt_path``
    (ActivityNet/ActionFormer JSON); print the tables and write ``json_out`` atomically when given.

    The thresholds, the tie order and ``json_out`` are checked before any file is read. A prediction file
    that is empty, or has no prediction on a video of the subset's ground truth, gives a ``UserWarning``:
    its mAP of 0 says more about the file than about the detector."""
    thresholds = check_thresholds(tiou_thresholds)
    check_tie_break(tie_break)
    if json_out is not None and Path(json_out).is_dir():
        raise ConfigError(f"{json_out}: is a folder; --json needs a file name (e.g. {Path(json_out) / 'eval.json'})")
    gt = read_ground_truth_columns(gt_path, subset)
    pred = read_prediction_columns(pred_path)
    gt_videos = set(gt["video_id"].tolist())
    n_gt, n_pred = len(gt["video_id"]), len(pred["video_id"])
    if n_pred == 0:
        warnings.warn(f"{pred_path}: the file holds no prediction; every class has AP 0", UserWarning, stacklevel=2)
    elif gt_videos.isdisjoint(pred["video_id"].tolist()):
        warnings.warn(
            f"{pred_path}: none of its {n_pred} predictions is on a video with ground truth in subset "
            f"'{subset}' of {gt_path} ({len(gt_videos)} videos); every class has AP 0 "
            "(wrong --subset or video ids?)", UserWarning, stacklevel=2)
    result = evaluate_detection(gt, pred, thresholds, tie_break=tie_break)
    if console is not None:
        console.print(Text(f"{gt_path}: {n_gt} GT instances in subset '{subset}'; {pred_path}: {n_pred} "
                           f"predictions; tie order {tie_break}"))
        console.print(map_table(result))
        console.print(per_class_table(result))
    if json_out is not None:
        atomic_write_json(json_out, result.to_json())
        if console is not None:
            console.print(Text(f"wrote {json_out}"))
    return result
