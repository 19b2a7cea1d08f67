"""Reference detection AP: the official ActivityNet ``eval_detection.py`` transcribed literally (loops and all).

``compute_average_precision_detection``, ``segment_iou`` and ``interpolated_prec_rec`` follow the official
Python-3 port line by line (column names adapted to talbench's ``video_id, label, start, end, score``).
The wrapper computes mAP over the GT classes, skipping predicted labels absent from the GT (the official
code raises KeyError there) and defining tIoU 0 where the union is <= 0 (the official code gets NaN) so
that it states the same definition as ``talbench.eval.detection``. It is the slow per-prediction loop
the vectorized evaluator is checked and timed against.

``tie_break="official"`` sorts as the official code does (numpy's default ``argsort()[::-1]``, for the scores
and for each prediction's tIoUs), so it gives the official numbers of the machine it runs on; "canonical"
sorts with ``argsort(kind="stable")[::-1]`` and "reverse" with ``argsort(-x, kind="stable")``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def segment_iou(target_segment, candidate_segments):
    tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
    tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
    segments_intersection = (tt2 - tt1).clip(0)
    segments_union = (candidate_segments[:, 1] - candidate_segments[:, 0]) + (
        target_segment[1] - target_segment[0]
    ) - segments_intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        tiou = segments_intersection.astype(float) / segments_union
    tiou[~(segments_union > 0)] = 0.0  # talbench's decision for 0/0 (official: NaN)
    return tiou


def interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    ap = np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])
    return ap


def descending(values, tie_break):
    if tie_break == "official":
        return values.argsort()[::-1]
    if tie_break == "canonical":
        return values.argsort(kind="stable")[::-1]
    return np.argsort(-values, kind="stable")


def compute_average_precision_detection(ground_truth, prediction, tiou_thresholds, tie_break="official"):
    ap = np.zeros(len(tiou_thresholds))
    if prediction.empty:
        return ap

    npos = float(len(ground_truth))
    lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
    sort_idx = descending(prediction["score"].values, tie_break)  # official: .argsort()[::-1]
    prediction = prediction.loc[sort_idx].reset_index(drop=True)

    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))

    ground_truth_gbvn = ground_truth.groupby("video_id")

    for idx, this_pred in prediction.iterrows():
        try:
            ground_truth_videoid = ground_truth_gbvn.get_group(this_pred["video_id"])
        except KeyError:  # official: `except Exception`
            fp[:, idx] = 1
            continue

        this_gt = ground_truth_videoid.reset_index()
        tiou_arr = segment_iou(this_pred[["start", "end"]].values.astype(float), this_gt[["start", "end"]].values)
        tiou_sorted_idx = descending(tiou_arr, tie_break)  # official: tiou_arr.argsort()[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt.loc[jdx]["index"]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt.loc[jdx]["index"]] = idx
                break

            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1

    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos

    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)

    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])

    return ap


def reference_map(gt: pd.DataFrame, pred: pd.DataFrame, tiou_thresholds, tie_break="official"):
    """Per-class AP (classes in GT order of appearance) x thresholds and mAP, in percent."""
    thresholds = np.asarray(tiou_thresholds, dtype=float)
    labels = list(pd.unique(gt["label"]))
    gt_by_label = gt.groupby("label")
    pred_by_label = pred.groupby("label")
    ap = np.zeros((len(labels), len(thresholds)))
    for cidx, label in enumerate(labels):
        this_pred = (
            pred_by_label.get_group(label).reset_index(drop=True)
            if label in pred_by_label.groups
            else pd.DataFrame(columns=pred.columns)
        )
        ap[cidx] = compute_average_precision_detection(
            gt_by_label.get_group(label).reset_index(drop=True), this_pred, thresholds, tie_break
        )
    return ap * 100.0, ap.mean(axis=0) * 100.0
