"""1-D non-maximum suppression: hard NMS and Soft-NMS (Gaussian, linear), per class or class-agnostic.

Soft-NMS (Bodla et al., ICCV'17, Eq. 3 linear and the Gaussian rule) as ActionFormer / BSN apply it to
segments: repeatedly select the highest-scoring remaining segment M and rescore every other remaining
segment b_i of its group:

* hard:     remove b_i if tIoU(M, b_i) > iou_threshold
* linear:   s_i <- s_i * (1 - tIoU(M, b_i))  if tIoU(M, b_i) >= iou_threshold
* gaussian: s_i <- s_i * exp(-tIoU(M, b_i)^2 / sigma)

Segments whose score falls below ``min_score`` are dropped; at most ``top_k`` segments are selected per
group. All groups (videos, classes) are processed at once: each loop iteration selects one segment in
every group and rescoring is one vectorized numpy pass, so the loop runs over kept segments only.
Score ties are broken by input order (stable), so results are deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from talbench.eval.tiou import segment_tiou

METHODS = ("hard", "linear", "gaussian")


def _check(method: str, iou_threshold: float, sigma: float) -> None:
    if method not in METHODS:
        raise ValueError(f"NMS method must be one of {METHODS}, got '{method}'")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if method == "gaussian" and sigma <= 0:
        raise ValueError(f"Soft-NMS sigma must be positive, got {sigma}")


def batched_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    method: str = "hard",
    iou_threshold: float = 0.5,
    sigma: float = 0.5,
    min_score: float = 0.0,
    top_k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NMS / Soft-NMS of ``segments`` ``(N, 2)`` with ``scores`` ``(N,)`` inside each group (``groups``
    ``(N,)`` of any labels; None = one group, i.e. class-agnostic).

    Returns the kept indices into the input and their (rescored) scores, by descending score.
    """
    _check(method, iou_threshold, sigma)
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = scores.size
    if segments.shape[0] != n:
        raise ValueError(f"segments {segments.shape} and scores {scores.shape} differ in length")
    codes = np.zeros(n, np.int64) if groups is None else pd.factorize(np.asarray(groups))[0].astype(np.int64)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    n_groups = int(codes.max()) + 1
    order = np.lexsort((np.arange(n), -scores, codes))  # groups contiguous, score descending, stable
    seg, score, group = segments[order], scores[order].copy(), codes[order]
    limit = n if top_k is None else int(top_k)

    kept_pos, kept_score = [], []
    n_selected = np.zeros(n_groups, np.int64)
    remaining = np.flatnonzero(score >= min_score)
    while remaining.size and limit > 0:
        rem_group = group[remaining]
        if method == "hard":
            rank = np.arange(remaining.size)  # scores never change: already in group/score order
        else:
            rank = np.lexsort((remaining, -score[remaining], rem_group))
        ranked_group = rem_group[rank]
        first = np.ones(rank.size, bool)
        first[1:] = ranked_group[1:] != ranked_group[:-1]
        top = remaining[rank[first]]
        kept_pos.append(top)
        kept_score.append(score[top])
        n_selected[group[top]] += 1

        top_of_group = np.full(n_groups, -1, np.int64)
        top_of_group[group[top]] = top
        partner = top_of_group[rem_group]
        others = remaining != partner
        remaining, partner = remaining[others], partner[others]
        iou = segment_tiou(seg[remaining, 0], seg[remaining, 1], seg[partner, 0], seg[partner, 1])
        if method == "hard":
            keep = iou <= iou_threshold
        else:
            if method == "linear":
                decay = np.where(iou >= iou_threshold, 1.0 - iou, 1.0)
            else:
                decay = np.exp(-np.square(iou) / sigma)
            score[remaining] *= decay
            keep = score[remaining] >= min_score
        keep &= n_selected[group[remaining]] < limit
        remaining = remaining[keep]

    if not kept_pos:
        return np.zeros(0, np.int64), np.zeros(0)
    pos = np.concatenate(kept_pos)
    final = np.concatenate(kept_score)
    by_score = np.lexsort((order[pos], -final))
    return order[pos][by_score], final[by_score]


def nms(
    segments: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, *, top_k: int | None = None,
    min_score: float = 0.0,
) -> np.ndarray:
    """Hard NMS of one group: kept indices by descending score."""
    keep, _ = batched_nms(segments, scores, None, method="hard", iou_threshold=iou_threshold, top_k=top_k,
                          min_score=min_score)
    return keep


def soft_nms(
    segments: np.ndarray, scores: np.ndarray, *, method: str = "gaussian", sigma: float = 0.5,
    iou_threshold: float = 0.0, min_score: float = 0.0, top_k: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft-NMS of one group (Gaussian or linear): kept segments, rescored scores and input indices,
    by descending rescored score."""
    if method not in ("gaussian", "linear"):
        raise ValueError(f"soft_nms method must be 'gaussian' or 'linear', got '{method}'")
    keep, new_scores = batched_nms(segments, scores, None, method=method, iou_threshold=iou_threshold,
                                   sigma=sigma, min_score=min_score, top_k=top_k)
    return np.asarray(segments, dtype=np.float64).reshape(-1, 2)[keep], new_scores, keep


def _top_per_group(df: pd.DataFrame, keys: list[str], k: int | None) -> pd.DataFrame:
    if k is None:
        return df
    rank = df.groupby(keys, sort=False)["score"].rank(method="first", ascending=False)
    return df[rank.to_numpy() <= k]


def nms_per_video(
    pred: pd.DataFrame,
    method: str = "gaussian",
    *,
    iou_threshold: float = 0.5,
    sigma: float = 0.5,
    per_class: bool = True,
    label_column: str | None = None,
    pre_nms_top_k: int | None = None,
    max_per_video: int | None = None,
    min_score: float = 0.0,
) -> pd.DataFrame:
    """NMS of a prediction table grouped by video (and by label when ``per_class``).

    ``pre_nms_top_k`` keeps the best candidates of each group before NMS, ``max_per_video`` the best
    detections of each video after it (as ActionFormer's ``max_seg_num``). Other columns are carried;
    ``score`` holds the rescored value. Rows come out by video (first appearance) and descending score.
    """
    if label_column is None:
        label_column = "label_id" if "label_id" in pred.columns else "label"
    keys = ["video_id", label_column] if per_class else ["video_id"]
    missing = [c for c in [*keys, "start", "end", "score"] if c not in pred.columns]
    if missing:
        raise ValueError(f"nms_per_video: prediction table lacks column(s) {missing}")
    candidates = _top_per_group(pred.reset_index(drop=True), keys, pre_nms_top_k).reset_index(drop=True)
    groups = candidates.groupby(keys, sort=False).ngroup().to_numpy()
    keep, scores = batched_nms(
        candidates[["start", "end"]].to_numpy(np.float64), candidates["score"].to_numpy(np.float64), groups,
        method=method, iou_threshold=iou_threshold, sigma=sigma, min_score=min_score,
    )
    out = candidates.iloc[keep].assign(score=scores)
    out = _top_per_group(out, ["video_id"], max_per_video)
    video_rank = pd.Index(pd.unique(candidates["video_id"])).get_indexer(out["video_id"])
    order = np.lexsort((np.arange(len(out)), -out["score"].to_numpy(), video_rank))
    return out.iloc[order].reset_index(drop=True)


def nms_per_class(candidates: pd.DataFrame, iou_threshold: float, max_per_video: int | None = None) -> pd.DataFrame:
    """Hard NMS per video and class (``label_id`` if present, else ``label``), then the best
    ``max_per_video`` detections of each video (P-GCN / D-Net test-time post-processing)."""
    return nms_per_video(candidates, "hard", iou_threshold=iou_threshold, per_class=True,
                         max_per_video=max_per_video)
