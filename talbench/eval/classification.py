"""RefactorNet (CVPR'22) Table 3 metrics: classification accuracy and mean tIoU of high-quality proposals.

Definitions (Sec. 4.3, "Analysis of Performance Improvements"; the paper gives no formula, these are the
precise ones used here):

* a proposal is a predicted segment *after* boundary regression with its top-1 predicted label
  (``video_id, label, start, end``); every proposal of the table counts once, with no one-to-one matching;
* its localization quality is its highest tIoU with any GT instance of its video, whatever the label;
* it is *high-quality* when that tIoU is > 0.7 (strictly);
* **Class** = percent of high-quality proposals whose label equals the label of a GT instance of the video
  with which it has tIoU > 0.7 (a segment annotated with two labels accepts either);
* **tIoU** = mean, over high-quality proposals, of their highest tIoU (percent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from talbench.errors import DataError
from talbench.eval.detection import shared_video_codes, validate_frame
from talbench.eval.tiou import candidate_pairs

HIGH_QUALITY_TIOU = 0.7


def high_quality_proposal_metrics(
    gt: pd.DataFrame, proposals: pd.DataFrame, tiou_threshold: float = HIGH_QUALITY_TIOU
) -> dict:
    """``{"class_accuracy", "mean_tiou"}`` in percent over the high-quality proposals (tIoU > threshold),
    with ``n_high_quality``, ``n_proposals`` and ``per_video``: a DataFrame ``video_id, n_high_quality,
    n_correct, sum_tiou`` whose column sums give the two metrics (the bootstrap over videos resamples its rows);
    NaN metrics when no proposal is high-quality."""
    validate_frame(gt, ("video_id", "label", "start", "end"), "ground truth")
    validate_frame(proposals, ("video_id", "label", "start", "end"), "proposals")
    if not 0.0 <= tiou_threshold < 1.0:
        raise ValueError(f"tiou_threshold must be in [0, 1), got {tiou_threshold}")
    if len(gt) == 0:
        raise DataError("ground truth: no instances")
    gt_video, prop_video = shared_video_codes(gt, proposals)
    gt_order = np.lexsort((gt["start"].to_numpy(np.float64), gt_video))
    pair_prop, pair_gt, pair_tiou = candidate_pairs(
        prop_video, proposals["start"].to_numpy(np.float64), proposals["end"].to_numpy(np.float64),
        gt_video[gt_order], gt["start"].to_numpy(np.float64)[gt_order],
        gt["end"].to_numpy(np.float64)[gt_order], np.nextafter(tiou_threshold, np.inf),
    )
    n = len(proposals)
    best_tiou = np.zeros(n)
    np.maximum.at(best_tiou, pair_prop, pair_tiou)
    high = best_tiou > tiou_threshold
    gt_labels = gt["label"].to_numpy()[gt_order][pair_gt]
    same_label = gt_labels == proposals["label"].to_numpy()[pair_prop]
    correct = np.zeros(n, bool)
    correct[pair_prop[same_label]] = True
    videos = pd.Index(pd.unique(proposals["video_id"]))
    code = videos.get_indexer(proposals["video_id"])
    per_video = pd.DataFrame({
        "video_id": videos.to_numpy(dtype=object),
        "n_high_quality": np.bincount(code[high], minlength=len(videos)),
        "n_correct": np.bincount(code[high & correct], minlength=len(videos)),
        "sum_tiou": np.bincount(code[high], weights=best_tiou[high], minlength=len(videos)),
    })
    n_high = int(high.sum())
    return {
        "class_accuracy": ratio_percent(per_video["n_correct"], per_video["n_high_quality"]),
        "mean_tiou": ratio_percent(per_video["sum_tiou"], per_video["n_high_quality"]),
        "n_high_quality": n_high,
        "n_proposals": n,
        "per_video": per_video,
    }


def ratio_percent(numerator: pd.Series | np.ndarray, denominator: pd.Series | np.ndarray) -> float:
    """``100 x sum(numerator) / sum(denominator)`` (NaN for an empty denominator): how the table-3 metrics are
    computed from per-video components, for the whole split and for a resample of its videos alike."""
    total = float(np.sum(denominator))
    return 100.0 * float(np.sum(numerator)) / total if total > 0 else float("nan")
