"""``talbench eval``: evaluate a prediction file against a GT file and print rich tables.

Imports only numpy, pandas and rich (never mlflow, torch or optuna), so the command starts fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from talbench.eval.detection import DetectionResult, evaluate_detection
from talbench.eval.io import load_ground_truth, load_predictions
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
    for label, row in result.per_class_ap.iterrows():
        table.add_row(str(label), *[f"{v:.2f}" for v in row])
    return table


def evaluate_files(
    gt_path: str | Path,
    pred_path: str | Path,
    *,
    subset: str = "Test",
    tiou_thresholds: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7),
    json_out: str | Path | None = None,
    console: Console | None = None,
) -> DetectionResult:
    """Evaluate ``pred_path`` (ActivityNet result JSON) against the ``subset`` of ``gt_path``
    (ActivityNet/ActionFormer JSON); print the tables and write ``json_out`` atomically when given."""
    gt = load_ground_truth(gt_path, subset)
    pred = load_predictions(pred_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = evaluate_detection(gt, pred, tiou_thresholds)
    if console is not None:
        console.print(f"{gt_path}: {len(gt)} GT instances in subset '{subset}'; {pred_path}: {len(pred)} predictions")
        for warning in caught:
            console.print(f"[yellow]warning:[/] {warning.message}")
        console.print(map_table(result))
        console.print(per_class_table(result))
    if json_out is not None:
        atomic_write_json(json_out, result.to_json())
        if console is not None:
            console.print(f"wrote {json_out}")
    return result
