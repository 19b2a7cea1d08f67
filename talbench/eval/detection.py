"""Detection mAP with the semantics of the official ActivityNet ``eval_detection.py``, vectorized.

Per class and tIoU threshold (ActivityNet ``compute_average_precision_detection``):

1. predictions of the class are ranked with ``scores.argsort()[::-1]`` on the rows in their given order
   (the official tie order; ``tie_break="stable"`` ranks ties in row order instead);
2. each prediction, in rank order, takes the unmatched ground truth (GT) of its video and label with the
   highest tIoU, provided that tIoU >= threshold (true positive); otherwise it is a false positive;
3. AP is the VOC2011 all-point interpolated AP: ``AP = sum_k (r_k - r_{k-1}) * max_{k' >= k} p_{k'}``;
4. mAP averages AP over the classes present in the GT, the average mAP over the thresholds.

The greedy matching of step 2 is a serial dictatorship in which every GT prefers the better-ranked
prediction. With such common preferences the stable matching is unique, so it equals the outcome of
deferred acceptance (Gale-Shapley with predictions proposing), which is computed here in vectorized
rounds over all predictions, classes and thresholds at once: no per-prediction Python loop.

Decisions where the official code is silent or errs (documented in docs/evaluation.md):

* predictions on videos without GT (of their label) are false positives, as in the official code;
* inverted segments (end < start) are scored as they stand (their tIoU is 0);
* tIoU is 0 where the union is <= 0 (zero-length GT vs zero-length prediction): the official code gets
  0/0 = NaN there and counts a true positive at every threshold;
* predictions whose label does not occur in the GT raise ``KeyError`` in the official code; here they are
  ignored (they cannot enter the AP of any GT class), counted in ``DetectionResult.ignored_predictions``
  and reported with a ``UserWarning``;
* among GTs with exactly equal tIoU to one prediction the one listed later in the GT wins (what numpy's
  stable small-array ``argsort()[::-1]`` yields in the official code; its SIMD sorts may differ).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from talbench.errors import DataError
from talbench.eval.tiou import candidate_pairs

GT_COLUMNS = ("video_id", "label", "start", "end")
PRED_COLUMNS = ("video_id", "label", "start", "end", "score")
TIE_BREAKS = ("official", "stable")


@dataclass(frozen=True)
class DetectionResult:
    """mAP per tIoU threshold (percent), their average and the per-class AP table (label x tIoU, percent)."""

    tiou: np.ndarray
    map: np.ndarray
    average_map: float
    per_class_ap: pd.DataFrame
    n_gt: int = 0
    n_pred: int = 0
    ignored_predictions: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "tiou": [float(t) for t in self.tiou],
            "map": [float(m) for m in self.map],
            "average_map": float(self.average_map),
            "per_class_ap": {str(label): [float(v) for v in row] for label, row in self.per_class_ap.iterrows()},
        }

    def map_at(self, threshold: float) -> float:
        """mAP (percent) at one of the evaluated thresholds."""
        hits = np.flatnonzero(np.isclose(self.tiou, threshold))
        if hits.size == 0:
            raise KeyError(f"tIoU {threshold} was not evaluated (evaluated: {self.tiou.tolist()})")
        return float(self.map[hits[0]])


@dataclass(frozen=True)
class TieSensitivity:
    """How much mAP moves when ties among equal scores are ranked in row order instead of the official order."""

    official: DetectionResult
    stable: DetectionResult
    n_tied_predictions: int

    @property
    def delta_map(self) -> np.ndarray:
        """``stable - official`` mAP per threshold (percentage points)."""
        return self.stable.map - self.official.map

    @property
    def delta_average_map(self) -> float:
        return float(self.stable.average_map - self.official.average_map)

    @property
    def max_abs_delta(self) -> float:
        return float(np.max(np.abs(self.delta_map))) if self.delta_map.size else 0.0


def check_thresholds(tiou_thresholds: Sequence[float]) -> np.ndarray:
    thresholds = np.asarray(list(tiou_thresholds), dtype=np.float64).reshape(-1)
    if thresholds.size == 0:
        raise ValueError("at least one tIoU threshold is needed")
    if not np.all((thresholds > 0) & (thresholds <= 1)):
        raise ValueError(f"tIoU thresholds must lie in (0, 1], got {thresholds.tolist()}")
    return thresholds


def validate_frame(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise DataError naming the video and field of the first missing column or non-finite value."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {missing} (have {list(df.columns)})")
    for column in (c for c in columns if c in ("start", "end", "score")):
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{what}: video '{df['video_id'].iloc[row]}' field '{column}' is not a finite number "
                f"({df[column].iloc[row]!r}; {int(bad.sum())} such row(s))"
            )


def rank_predictions(scores: np.ndarray, tie_break: str = "official") -> np.ndarray:
    """Descending-score order: ``argsort()[::-1]`` as the official code, or ties kept in row order."""
    if tie_break == "official":
        return scores.argsort()[::-1]
    if tie_break == "stable":
        return np.argsort(-scores, kind="stable")
    raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got '{tie_break}'")


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """VOC2011 all-point interpolated AP of each row of ``(T, N)`` precision/recall curves."""
    rows = precision.shape[0]
    mprec = np.hstack([np.zeros((rows, 1)), precision, np.zeros((rows, 1))])
    mrec = np.hstack([np.zeros((rows, 1)), recall, np.ones((rows, 1))])
    envelope = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    return np.sum((mrec[:, 1:] - mrec[:, :-1]) * envelope[:, 1:], axis=1)


def shared_video_codes(gt: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``video_id``, one numbering for ``gt`` and ``other`` (predictions or proposals)."""
    codes, _ = pd.factorize(pd.concat([gt["video_id"], other["video_id"]], ignore_index=True))
    return codes[: len(gt)], codes[len(gt) :]


def greedy_match(
    pair_pred: np.ndarray, pair_gt: np.ndarray, pair_tiou: np.ndarray, n_pred: int, n_gt: int,
    thresholds: np.ndarray, gt_tie_rank: np.ndarray | None = None,
) -> np.ndarray:
    """True-positive flags ``(T, n_pred)`` of the official greedy matching, by deferred acceptance.

    Predictions are identified by their rank (lower = matched first); a pair may only match at threshold
    t if its tIoU >= t. Each prediction proposes to its candidates in descending tIoU order; each GT keeps
    the best-ranked proposer. Rounds are vectorized over every (threshold, prediction) agent.
    Exact tIoU ties go to the GT with the higher ``gt_tie_rank`` (default: the GT index).
    """
    n_thr = len(thresholds)
    tp = np.zeros((n_thr, n_pred), dtype=bool)
    if pair_pred.size == 0:
        return tp
    # Candidates of each prediction: descending tIoU, exact ties to the later GT (see module docstring).
    tie = pair_gt if gt_tie_rank is None else gt_tie_rank[pair_gt]
    order = np.lexsort((-tie, -pair_tiou, pair_pred))
    pair_pred, pair_gt, pair_tiou = pair_pred[order], pair_gt[order], pair_tiou[order]
    block_start = np.searchsorted(pair_pred, np.arange(n_pred), side="left")
    valid = pair_tiou[None, :] >= thresholds[:, None]
    n_valid = np.stack([np.bincount(pair_pred, weights=v, minlength=n_pred) for v in valid]).astype(np.int64)
    agent_thr, agent_pred = np.nonzero(n_valid)
    agent_ptr = block_start[agent_pred].astype(np.int64)
    agent_end = agent_ptr + n_valid[agent_thr, agent_pred]
    holder = np.full(n_thr * n_gt, -1, dtype=np.int64)
    active = np.arange(agent_pred.size)
    while active.size:
        target = agent_thr[active] * n_gt + pair_gt[agent_ptr[active]]
        by_target = np.lexsort((agent_pred[active], target))
        sorted_target = target[by_target]
        first = np.ones(sorted_target.size, dtype=bool)
        first[1:] = sorted_target[1:] != sorted_target[:-1]
        proposer = active[by_target[first]]
        proposed = sorted_target[first]
        current = holder[proposed]
        accept = (current < 0) | (agent_pred[np.maximum(current, 0)] > agent_pred[proposer])
        holder[proposed[accept]] = proposer[accept]
        bumped = current[accept & (current >= 0)]
        rejected = np.concatenate([active[by_target[~first]], proposer[~accept], bumped])
        agent_ptr[rejected] += 1
        active = rejected[agent_ptr[rejected] < agent_end[rejected]]
    matched = holder[holder >= 0]
    tp[agent_thr[matched], agent_pred[matched]] = True
    return tp


@dataclass(frozen=True)
class Matching:
    """The official matching of one prediction table against the ground truth, the part of the evaluation that
    does not depend on how often each video counts: ``tp`` ``(T, N)`` flags of the predictions ranked per class
    (class ``c`` holds ranks ``class_offsets[c]:class_offsets[c + 1]``), the video of each ranked prediction
    (codes into ``videos``) and the ground-truth count per class and video ``npos`` ``(C, V)``."""

    thresholds: np.ndarray
    classes: pd.Index
    videos: pd.Index
    class_offsets: np.ndarray
    tp: np.ndarray
    pred_video: np.ndarray
    npos: np.ndarray
    n_gt: int
    n_pred: int
    ignored_predictions: dict


def match_detections(
    gt: pd.DataFrame, pred: pd.DataFrame, tiou_thresholds: Sequence[float], *, tie_break: str = "official",
    videos: Sequence[str] | None = None,
) -> Matching:
    """Rank and match ``pred`` against ``gt`` (see the module docstring). ``videos`` (default: those of the GT
    and the predictions) fixes the video numbering, e.g. every evaluation video for a bootstrap."""
    thresholds = check_thresholds(tiou_thresholds)
    validate_frame(gt, GT_COLUMNS, "ground truth")
    validate_frame(pred, PRED_COLUMNS, "predictions")
    if len(gt) == 0:
        raise DataError("ground truth: no instances to evaluate against")

    classes = pd.Index(pd.unique(gt["label"]))
    gt_class = classes.get_indexer(gt["label"])
    pred_class = classes.get_indexer(pred["label"])
    unknown = pred_class < 0
    ignored = {}
    if unknown.any():
        ignored = {str(k): int(v) for k, v in pred.loc[unknown, "label"].value_counts(sort=False).items()}
        warnings.warn(
            f"{int(unknown.sum())} prediction(s) with label(s) absent from the ground truth were ignored: "
            f"{ignored}",
            UserWarning,
            stacklevel=3,
        )

    gt_video, pred_video = shared_video_codes(gt, pred)
    video_index = pd.Index(pd.unique(pd.concat([gt["video_id"], pred["video_id"]], ignore_index=True)))
    if videos is not None:
        extra = video_index.difference(pd.Index(list(videos)), sort=False)
        video_index = pd.Index(list(videos)).append(extra)
        gt_video, pred_video = video_index.get_indexer(gt["video_id"]), video_index.get_indexer(pred["video_id"])
    n_classes = len(classes)
    gt_key_all = gt_video.astype(np.int64) * n_classes + gt_class
    pred_key_all = pred_video.astype(np.int64) * n_classes + pred_class

    # GT grouped by (video, label) and sorted by start; gt_order (the GT row) breaks exact tIoU ties.
    gt_start_all = gt["start"].to_numpy(dtype=np.float64)
    gt_order = np.lexsort((np.arange(len(gt)), gt_start_all, gt_key_all))
    gt_key = gt_key_all[gt_order]
    gt_start = gt_start_all[gt_order]
    gt_end = gt["end"].to_numpy(dtype=np.float64)[gt_order]

    # Predictions ranked per class (official order), classes concatenated: rank = position in this order.
    scores = pred["score"].to_numpy(dtype=np.float64)
    ranked, class_offsets = [], [0]
    for c in range(n_classes):
        rows = np.flatnonzero(pred_class == c)
        ranked.append(rows[rank_predictions(scores[rows], tie_break)])
        class_offsets.append(class_offsets[-1] + rows.size)
    ranked = np.concatenate(ranked) if ranked else np.zeros(0, np.int64)

    pair_pred, pair_gt, pair_tiou = candidate_pairs(
        pred_key_all[ranked],
        pred["start"].to_numpy(dtype=np.float64)[ranked],
        pred["end"].to_numpy(dtype=np.float64)[ranked],
        gt_key, gt_start, gt_end, thresholds.min(),
    )
    tp = greedy_match(pair_pred, pair_gt, pair_tiou, ranked.size, len(gt), thresholds, gt_tie_rank=gt_order)
    npos = np.zeros((n_classes, len(video_index)), dtype=np.int64)
    np.add.at(npos, (gt_class, gt_video), 1)
    return Matching(thresholds, classes, video_index, np.asarray(class_offsets), tp, pred_video[ranked], npos,
                    len(gt), len(pred), ignored)


def average_precision(matching: Matching, video_weights: np.ndarray | None = None) -> np.ndarray:
    """AP ``(W, C, T)`` of every class and threshold when each video counts ``video_weights[w, v]`` times
    (``(W, V)``; None: once each, the plain evaluation, ``W = 1``). A video drawn k times by a bootstrap over
    videos is k copies of its predictions and ground truth; copies of one prediction are adjacent in the ranking
    and matched alike, so counting each with weight k gives exactly the AP of the copied list. A class without
    ground truth under a weighting has AP NaN (left out of the mAP, as the official code leaves out absent
    classes)."""
    n_videos = len(matching.videos)
    weights = np.ones((1, n_videos)) if video_weights is None else np.asarray(video_weights, dtype=np.float64)
    n_classes, n_thr = len(matching.classes), matching.thresholds.size
    ap = np.zeros((weights.shape[0], n_classes, n_thr))
    npos = weights @ matching.npos.T.astype(np.float64) if video_weights is not None else \
        matching.npos.sum(axis=1, dtype=np.float64)[None, :]
    for c in range(n_classes):
        lo, hi = matching.class_offsets[c], matching.class_offsets[c + 1]
        if hi == lo:
            continue
        if video_weights is None:
            tp_cum = np.cumsum(matching.tp[:, lo:hi], axis=1, dtype=np.float64)[None]
            fp_cum = np.cumsum(~matching.tp[:, lo:hi], axis=1, dtype=np.float64)[None]
            counted = np.ones((1, hi - lo), dtype=bool)
        else:
            w = weights[:, matching.pred_video[lo:hi]][:, None, :]  # (W, 1, n)
            tp_cum = np.cumsum(w * matching.tp[None, :, lo:hi], axis=2)
            fp_cum = np.cumsum(w * ~matching.tp[None, :, lo:hi], axis=2)
            counted = w[:, 0, :] > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(counted[:, None, :], tp_cum / (tp_cum + fp_cum), 0.0)
            recall = tp_cum / npos[:, c, None, None]
        flat = interpolated_ap(precision.reshape(-1, hi - lo), recall.reshape(-1, hi - lo))
        ap[:, c] = flat.reshape(weights.shape[0], n_thr)
    ap[npos == 0] = np.nan
    return ap


def evaluate_detection(
    gt: pd.DataFrame, pred: pd.DataFrame, tiou_thresholds: Sequence[float], *, tie_break: str = "official"
) -> DetectionResult:
    """Detection mAP of ``pred`` (video_id, label, start, end, score) against ``gt`` (video_id, label,
    start, end), times in seconds, with the official ActivityNet semantics (see the module docstring)."""
    matching = match_detections(gt, pred, tiou_thresholds, tie_break=tie_break)
    ap = average_precision(matching)[0]
    per_class = pd.DataFrame(ap * 100.0, index=pd.Index(matching.classes, name="label"),
                             columns=matching.thresholds.tolist())
    mean_ap = ap.mean(axis=0) * 100.0
    return DetectionResult(
        tiou=matching.thresholds,
        map=mean_ap,
        average_map=float(mean_ap.mean()),
        per_class_ap=per_class,
        n_gt=matching.n_gt,
        n_pred=matching.n_pred,
        ignored_predictions=matching.ignored_predictions,
    )


def tie_sensitivity(gt: pd.DataFrame, pred: pd.DataFrame, tiou_thresholds: Sequence[float]) -> TieSensitivity:
    """mAP with the official tie order and with ties ranked in row order (stable descending sort).

    ``n_tied_predictions`` counts predictions sharing their (label, score) with another prediction.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        official = evaluate_detection(gt, pred, tiou_thresholds, tie_break="official")
        stable = evaluate_detection(gt, pred, tiou_thresholds, tie_break="stable")
    tied = int(pred.duplicated(subset=["label", "score"], keep=False).sum())
    return TieSensitivity(official=official, stable=stable, n_tied_predictions=tied)
