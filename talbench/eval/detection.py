"""Detection mAP with the semantics of the official ActivityNet ``eval_detection.py``, vectorized.

Per class and tIoU threshold (ActivityNet ``compute_average_precision_detection``):

1. predictions of the class are ranked by descending score;
2. each prediction, in rank order, takes the unmatched ground truth (GT) of its video and label with the
   highest tIoU, provided that tIoU >= threshold (true positive); otherwise it is a false positive;
3. AP is the VOC2011 all-point interpolated AP: ``AP = sum_k (r_k - r_{k-1}) * max_{k' >= k} p_{k'}``;
4. mAP averages AP over the classes present in the GT, the average mAP over the thresholds.

**Ties.** The official code orders equal scores (step 1) and equal tIoUs (step 2) with numpy's default
``argsort()[::-1]``, whose order among equal values depends on the sort's SIMD path, i.e. on the CPU (AVX-512,
AVX2 or none): the same file gets different mAPs on different machines. ``tie_break="canonical"`` (the
default) is the same everywhere: both sorts are ``argsort(kind="stable")[::-1]``, so among equal scores the
prediction listed later in the file ranks first, and among GTs with equal tIoU the one listed later in the GT
wins (the official code's own expression with a stable sort). ``tie_break="official"`` reproduces the
official code on the machine at hand (its numpy, its CPU); ``"reverse"`` breaks both kinds of ties the other
way. :func:`tie_sensitivity` reports the spread (docs/evaluation.md: measured on real files).

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
  and reported with a ``UserWarning``.

Inputs are pandas DataFrames or mappings of column name -> 1-D array (``talbench eval`` reads files into numpy
columns and never imports pandas: its start-up is a third of its time); :func:`frame_columns` turns either into
checked numpy columns.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import numpy as np

from talbench.errors import ConfigError, DataError
from talbench.eval.tiou import candidate_pairs, segment_tiou

GT_COLUMNS = ("video_id", "label", "start", "end")
PRED_COLUMNS = ("video_id", "label", "start", "end", "score")
TIE_BREAKS = ("canonical", "official", "reverse")


@dataclass(frozen=True)
class DetectionResult:
    """mAP per tIoU threshold (percent), their average and the AP of each GT class (``classes`` x tIoU, percent;
    :attr:`per_class_ap` as a table)."""

    tiou: np.ndarray
    map: np.ndarray
    average_map: float
    classes: tuple
    class_ap: np.ndarray
    n_gt: int = 0
    n_pred: int = 0
    ignored_predictions: dict = field(default_factory=dict)
    tie_break: str = "canonical"

    @property
    def per_class_ap(self):
        """The per-class AP as a DataFrame (index ``label``, one column per threshold)."""
        import pandas as pd

        return pd.DataFrame(self.class_ap, index=pd.Index(list(self.classes), name="label"),
                            columns=self.tiou.tolist())

    def to_json(self) -> dict:
        return {
            "tiou": [float(t) for t in self.tiou],
            "map": [float(m) for m in self.map],
            "average_map": float(self.average_map),
            "per_class_ap": {str(label): row.tolist() for label, row in zip(self.classes, self.class_ap, strict=True)},
            "tie_break": self.tie_break,
        }

    def map_at(self, threshold: float) -> float:
        """mAP (percent) at one of the evaluated thresholds."""
        hits = np.flatnonzero(np.isclose(self.tiou, threshold))
        if hits.size == 0:
            raise KeyError(f"tIoU {threshold} was not evaluated (evaluated: {self.tiou.tolist()})")
        return float(self.map[hits[0]])


@dataclass(frozen=True)
class TieSensitivity:
    """mAP of one prediction file under the three tie orders: how much of a number is the tie order's."""

    canonical: DetectionResult
    official: DetectionResult  # numpy's argsort()[::-1] on this machine
    reverse: DetectionResult
    n_tied_predictions: int  # predictions sharing their (label, score) with another

    @property
    def results(self) -> tuple[DetectionResult, DetectionResult, DetectionResult]:
        return self.canonical, self.official, self.reverse

    @property
    def spread(self) -> np.ndarray:
        """Per threshold, the largest minus the smallest mAP over the three orders (percentage points)."""
        maps = np.stack([r.map for r in self.results])
        return maps.max(axis=0) - maps.min(axis=0)

    @property
    def spread_average_map(self) -> float:
        averages = [r.average_map for r in self.results]
        return float(max(averages) - min(averages))

    @property
    def max_spread(self) -> float:
        return float(self.spread.max()) if self.spread.size else 0.0


def check_thresholds(tiou_thresholds: Sequence[float]) -> np.ndarray:
    """The thresholds as an array; a ConfigError unless there is at least one and each lies in (0, 1]."""
    thresholds = np.asarray(list(tiou_thresholds), dtype=np.float64).reshape(-1)
    if thresholds.size == 0:
        raise ConfigError("at least one tIoU threshold is needed")
    if not np.all((thresholds > 0) & (thresholds <= 1)):
        raise ConfigError(f"tIoU thresholds must lie in (0, 1], got {thresholds.tolist()}")
    return thresholds


NUMERIC_COLUMNS = ("start", "end", "score")


def _as_float(value: Any) -> float:
    """``value`` as a float (a number or numeric text, as ``pandas.to_numeric``), NaN when it is neither."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def frame_columns(frame, columns: Sequence[str], what: str) -> dict[str, np.ndarray]:
    """``columns`` of ``frame`` (a DataFrame or a mapping of column name -> 1-D array) as numpy arrays, times and
    scores as float64; a DataError naming the video and field of the first missing column or non-finite value."""
    have = list(frame.keys())
    missing = [c for c in columns if c not in have]
    if missing:
        raise DataError(f"{what}: missing column(s) {missing} (have {have})")
    out = {column: np.asarray(frame[column]) for column in columns}
    for column in (c for c in columns if c in NUMERIC_COLUMNS):
        raw = out[column]
        try:
            values = raw.astype(np.float64)
        except (TypeError, ValueError):
            values = np.array([_as_float(v) for v in raw.tolist()], dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{what}: video '{out['video_id'][row]}' field '{column}' is not a finite number "
                f"({raw[row]!r}; {int(bad.sum())} such row(s))"
            )
        out[column] = values
    return out


def validate_frame(frame, columns: Sequence[str], what: str) -> None:
    """Raise DataError naming the video and field of the first missing column or non-finite value."""
    frame_columns(frame, columns, what)


def check_tie_break(tie_break: str) -> str:
    if tie_break not in TIE_BREAKS:
        raise ConfigError(f"tie_break must be one of {', '.join(TIE_BREAKS)}, got '{tie_break}'")
    return tie_break


def descending(values: np.ndarray, tie_break: str) -> np.ndarray:
    """Indices of ``values`` by descending value, ties ordered by ``tie_break`` (see the module docstring):
    the official ``argsort()[::-1]``, its stable form (later element first) or the reverse of that."""
    if tie_break == "official":
        return values.argsort()[::-1]
    if tie_break == "canonical":
        return values.argsort(kind="stable")[::-1]
    return np.argsort(-values, kind="stable")


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """VOC2011 all-point interpolated AP of each ``(..., N)`` precision/recall curve:
    ``sum_k (r_k - r_{k-1}) max_{k' >= k} p_{k'}`` (``r_0 = 0``; the official code's padded form, whose last
    term ``(1 - r_N) * 0`` vanishes)."""
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
    return np.sum(np.diff(recall, axis=-1, prepend=0.0) * envelope, axis=-1)


def first_appearance_codes(index: dict, *columns: Iterable) -> list[np.ndarray]:
    """Integer codes of the values of ``columns``, one numbering in order of first appearance that extends
    ``index`` (value -> code, updated in place)."""
    values = [np.asarray(column).tolist() for column in columns]
    for value in dict.fromkeys(chain.from_iterable(values)):
        index.setdefault(value, len(index))
    return [np.fromiter(map(index.__getitem__, column), dtype=np.int64, count=len(column)) for column in values]


def shared_video_codes(gt, other) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``video_id``, one numbering for ``gt`` and ``other`` (predictions or proposals)."""
    return tuple(first_appearance_codes({}, gt["video_id"], other["video_id"]))


def _by_prediction_then_tiou(pair_pred: np.ndarray, pair_tiou: np.ndarray, pair_tie: np.ndarray) -> np.ndarray:
    """The order of the pairs by prediction, descending tIoU, ascending ``pair_tie``
    (``np.lexsort((pair_tie, -pair_tiou, pair_pred))``). Pairs listed by prediction already (as
    :func:`~talbench.eval.tiou.candidate_pairs` gives them) are sorted only where a prediction has several."""
    if np.any(pair_pred[1:] < pair_pred[:-1]):
        return np.lexsort((pair_tie, -pair_tiou, pair_pred))
    same = pair_pred[1:] == pair_pred[:-1]
    shared = np.flatnonzero(np.r_[same, False] | np.r_[False, same])  # pairs of a prediction with several
    order = np.arange(pair_pred.size)
    order[shared] = shared[np.lexsort((pair_tie[shared], -pair_tiou[shared], pair_pred[shared]))]
    return order


def greedy_match(
    pair_pred: np.ndarray, pair_gt: np.ndarray, pair_tiou: np.ndarray, n_pred: int, n_gt: int,
    thresholds: np.ndarray, pair_tie: np.ndarray,
) -> np.ndarray:
    """True-positive flags ``(T, n_pred)`` of the official greedy matching, by deferred acceptance.

    Predictions are identified by their rank (lower = matched first); a pair may only match at threshold
    t if its tIoU >= t. Each prediction proposes to its candidates in descending tIoU order, exact ties in
    ascending ``pair_tie``; each GT keeps the best-ranked proposer. Rounds are vectorized over every
    (threshold, prediction) agent.
    """
    n_thr = len(thresholds)
    tp = np.zeros((n_thr, n_pred), dtype=bool)
    if pair_pred.size == 0:
        return tp
    order = _by_prediction_then_tiou(pair_pred, pair_tiou, pair_tie)
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
        by_target = np.lexsort((agent_pred[active], target))  # by target, then rank
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


def official_gt_ties(pair_pred: np.ndarray, pair_gt: np.ndarray, pair_tiou: np.ndarray, pred_start: np.ndarray,
                     pred_end: np.ndarray, gt_key: np.ndarray, gt_start: np.ndarray, gt_end: np.ndarray,
                     pair_tie: np.ndarray) -> np.ndarray:
    """``pair_tie`` with, for each prediction that has two candidate GTs of exactly equal tIoU, the position of
    each of its GTs in the official order: ``tiou_arr.argsort()[::-1]`` over the GTs of its video and label
    in GT order (the array the official loop sorts). Such predictions are few: a loop over them."""
    pair_tie = pair_tie.copy()
    by_tiou = np.lexsort((-pair_tiou, pair_pred))  # pairs come by prediction (candidate_pairs), then GT start
    p, t = pair_pred[by_tiou], pair_tiou[by_tiou]
    tied = np.unique(p[1:][(p[1:] == p[:-1]) & (t[1:] == t[:-1])])
    groups = np.lexsort((np.arange(gt_key.size), gt_key))  # GT rows by (video, label), then file order
    sorted_keys = gt_key[groups]
    pair_first = np.searchsorted(pair_pred, tied, side="left")
    pair_last = np.searchsorted(pair_pred, tied, side="right")
    for pred, first, last in zip(tied, pair_first, pair_last, strict=True):
        key = gt_key[pair_gt[first]]
        rows = groups[np.searchsorted(sorted_keys, key, "left"):np.searchsorted(sorted_keys, key, "right")]
        tiou = segment_tiou(pred_start[pred], pred_end[pred], gt_start[rows], gt_end[rows])
        position = np.empty(rows.size, dtype=np.int64)
        position[tiou.argsort()[::-1]] = np.arange(rows.size)
        position_of_row = dict(zip(rows.tolist(), position.tolist(), strict=True))
        pair_tie[first:last] = [position_of_row[row] for row in pair_gt[first:last].tolist()]
    return pair_tie


@dataclass(frozen=True)
class Matching:
    """The official matching of one prediction table against the ground truth, the part of the evaluation that
    does not depend on how often each video counts: ``tp`` ``(T, N)`` flags of the predictions ranked per class
    (class ``c`` holds ranks ``class_offsets[c]:class_offsets[c + 1]``), the video of each ranked prediction
    (codes into ``videos``) and the ground-truth count per class and video ``npos`` ``(C, V)``."""

    thresholds: np.ndarray
    classes: tuple
    videos: tuple
    class_offsets: np.ndarray
    tp: np.ndarray
    pred_video: np.ndarray
    npos: np.ndarray
    n_gt: int
    n_pred: int
    ignored_predictions: dict


def match_detections(
    gt, pred, tiou_thresholds: Sequence[float], *, tie_break: str = "canonical",
    videos: Sequence[str] | None = None,
) -> Matching:
    """Rank and match ``pred`` against ``gt`` (DataFrames or mappings of columns; see the module docstring).
    ``videos`` (default: those of the GT and the predictions) fixes the video numbering, e.g. every evaluation
    video for a bootstrap."""
    thresholds = check_thresholds(tiou_thresholds)
    check_tie_break(tie_break)
    gt = frame_columns(gt, GT_COLUMNS, "ground truth")
    pred = frame_columns(pred, PRED_COLUMNS, "predictions")
    n_gt, n_pred = len(gt["video_id"]), len(pred["video_id"])
    if n_gt == 0:
        raise DataError("ground truth: no instances to evaluate against")

    class_index: dict = {}
    (gt_class,) = first_appearance_codes(class_index, gt["label"])
    pred_class = np.fromiter(map(class_index.get, pred["label"].tolist(), repeat(-1, n_pred)), dtype=np.int64,
                             count=n_pred)
    unknown = pred_class < 0
    ignored = {}
    if unknown.any():
        ignored = {str(k): v for k, v in Counter(pred["label"][unknown].tolist()).items()}
        warnings.warn(
            f"{int(unknown.sum())} prediction(s) with label(s) absent from the ground truth were ignored: "
            f"{ignored}",
            UserWarning,
            stacklevel=3,
        )

    video_index = {video: code for code, video in enumerate(dict.fromkeys(() if videos is None else videos))}
    gt_video, pred_video = first_appearance_codes(video_index, gt["video_id"], pred["video_id"])
    n_classes = len(class_index)
    gt_key_all = gt_video * n_classes + gt_class
    pred_key_all = pred_video * n_classes + pred_class

    # GT grouped by (video, label) and sorted by start (candidate search); gt_order maps back to GT rows.
    gt_start_all, gt_end_all = gt["start"], gt["end"]
    gt_order = np.lexsort((np.arange(n_gt), gt_start_all, gt_key_all))

    # Predictions ranked per class, classes concatenated: rank = position in this order.
    scores = pred["score"]
    by_class = np.argsort(pred_class, kind="stable")  # each class's rows in file order
    bounds = np.searchsorted(pred_class[by_class], np.arange(n_classes + 1))
    ranked, class_offsets = [], [0]
    for c in range(n_classes):
        rows = by_class[bounds[c]:bounds[c + 1]]
        ranked.append(rows[descending(scores[rows], tie_break)])
        class_offsets.append(class_offsets[-1] + rows.size)
    ranked = np.concatenate(ranked) if ranked else np.zeros(0, np.int64)
    ranked_start = pred["start"][ranked]
    ranked_end = pred["end"][ranked]

    pair_pred, pair_gt, pair_tiou = candidate_pairs(
        pred_key_all[ranked], ranked_start, ranked_end,
        gt_key_all[gt_order], gt_start_all[gt_order], gt_end_all[gt_order], thresholds.min(),
    )
    pair_gt = gt_order[pair_gt]  # GT rows from here on
    # equal tIoUs: canonical -> the later GT row first, reverse -> the earlier, official -> numpy's order
    pair_tie = pair_gt if tie_break == "reverse" else -pair_gt
    if tie_break == "official":
        pair_tie = official_gt_ties(pair_pred, pair_gt, pair_tiou, ranked_start, ranked_end, gt_key_all,
                                    gt_start_all, gt_end_all, pair_tie)
    tp = greedy_match(pair_pred, pair_gt, pair_tiou, ranked.size, n_gt, thresholds, pair_tie)
    npos = np.zeros((n_classes, len(video_index)), dtype=np.int64)
    np.add.at(npos, (gt_class, gt_video), 1)
    return Matching(thresholds, tuple(class_index), tuple(video_index), np.asarray(class_offsets), tp,
                    pred_video[ranked], npos, n_gt, n_pred, ignored)


def average_precision(matching: Matching, video_weights: np.ndarray | None = None,
                      thresholds: Sequence[int] | None = None) -> np.ndarray:
    """AP ``(W, C, T)`` of every class and threshold (``thresholds``: only those indices, in that order) when
    each video counts ``video_weights[w, v]`` times (``(W, V)``; None: once each, the plain evaluation,
    ``W = 1``). A video drawn k times by a bootstrap over videos is k copies of its predictions and ground truth;
    copies of one prediction are adjacent in the ranking and matched alike, so counting each with weight k gives
    exactly the AP of the copied list. A class without ground truth under a weighting has AP NaN (left out of the
    mAP, as the official code leaves out absent classes).

    Under weights only the true positives' ranks are visited: recall moves only there, and the interpolated
    precision at a rank is the largest precision at a true positive at or after it (a false positive's precision
    is below that of the true positive before it), so each class costs one cumulative weight over its ranking
    and, per threshold, work in its true positives alone."""
    tp_all = matching.tp if thresholds is None else matching.tp[list(thresholds)]
    n_classes, n_thr = len(matching.classes), tp_all.shape[0]
    if video_weights is None:
        npos = matching.npos.sum(axis=1, dtype=np.float64)[None, :]
        ap = np.zeros((1, n_classes, n_thr))
    else:
        weights = np.asarray(video_weights, dtype=np.float64)
        npos = weights @ matching.npos.T.astype(np.float64)  # (W, C)
        ap = np.zeros((weights.shape[0], n_classes, n_thr))
    for c in range(n_classes):
        lo, hi = matching.class_offsets[c], matching.class_offsets[c + 1]
        if hi == lo:
            continue
        if video_weights is None:
            tp = tp_all[None, :, lo:hi]  # (1, T, n)
            tp_cum = np.cumsum(tp, axis=2, dtype=np.float64)
            fp_cum = np.cumsum(~tp, axis=2, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                ap[:, c] = interpolated_ap(tp_cum / (tp_cum + fp_cum), tp_cum / npos[:, c, None, None])
            continue
        w = weights[:, matching.pred_video[lo:hi]]  # (W, n)
        drawn = np.cumsum(w, axis=1)  # predictions drawn up to each rank
        for t in range(n_thr):
            ranks = np.flatnonzero(tp_all[t, lo:hi])
            if ranks.size == 0:
                continue  # no true positive: AP 0
            w_tp = w[:, ranks]  # (W, k)
            tp_cum = np.cumsum(w_tp, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):  # a prediction not drawn has no precision
                precision = np.where(w_tp > 0, tp_cum / drawn[:, ranks], 0.0)
                ap[:, c, t] = interpolated_ap(precision, tp_cum / npos[:, c, None])
    ap[npos == 0] = np.nan
    return ap


def evaluate_detection(gt, pred, tiou_thresholds: Sequence[float], *, tie_break: str = "canonical") -> DetectionResult:
    """Detection mAP of ``pred`` (video_id, label, start, end, score) against ``gt`` (video_id, label,
    start, end), times in seconds, with the official ActivityNet semantics and the ``tie_break`` order of
    equal scores and equal tIoUs (see the module docstring)."""
    matching = match_detections(gt, pred, tiou_thresholds, tie_break=tie_break)
    ap = average_precision(matching)[0]
    mean_ap = ap.mean(axis=0) * 100.0
    return DetectionResult(
        tiou=matching.thresholds,
        map=mean_ap,
        average_map=float(mean_ap.mean()),
        classes=matching.classes,
        class_ap=ap * 100.0,
        n_gt=matching.n_gt,
        n_pred=matching.n_pred,
        ignored_predictions=matching.ignored_predictions,
        tie_break=tie_break,
    )


def tie_sensitivity(gt, pred, tiou_thresholds: Sequence[float]) -> TieSensitivity:
    """(DataFrames) mAP under the canonical, the official (this machine) and the reverse tie order, and their spread.

    ``n_tied_predictions`` counts predictions sharing their (label, score) with another prediction.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results = {tie: evaluate_detection(gt, pred, tiou_thresholds, tie_break=tie) for tie in TIE_BREAKS}
    tied = int(pred.duplicated(subset=["label", "score"], keep=False).sum())
    return TieSensitivity(**results, n_tied_predictions=tied)
