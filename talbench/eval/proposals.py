"""Proposal evaluation: recall at a fixed average number of proposals per video (AN), and AR@AN.

As TAL-Net (CVPR'18, Sec. 4.1 / Fig. 5) and BSN evaluate THUMOS14 proposals: each video keeps its ``AN``
best-scored proposals (all of them if it has fewer); a GT instance is recalled at tIoU ``t`` when one of
them overlaps it with tIoU >= t (ActivityNet ``eval_proposal.py``: any proposal may recall several GT,
there is no one-to-one matching; labels are ignored). ``AR@AN`` is the recall averaged over
tIoU 0.5:0.05:1.0. Proposals on videos without GT are ignored; GT of videos without proposals count as
missed. Values are in percent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from talbench.errors import DataError
from talbench.eval.detection import shared_video_codes, validate_frame
from talbench.eval.tiou import candidate_pairs

TALNET_AR_TIOU = tuple(np.round(np.arange(0.5, 1.0001, 0.05), 2).tolist())


def _best_ranks(
    gt: pd.DataFrame, proposals: pd.DataFrame, an_values: Sequence[int], tiou_thresholds: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The AN values, ``best_rank`` ``(T, G)`` and the thresholds: for every tIoU threshold and GT instance (in
    ``gt``'s row order) the rank in its video of the best-ranked proposal that recalls it at that threshold
    (int64 max where none of the top ``max(AN)`` does)."""
    validate_frame(gt, ("video_id", "start", "end"), "ground truth")
    validate_frame(proposals, ("video_id", "start", "end", "score"), "proposals")
    an = np.asarray(list(an_values), dtype=np.int64)
    thresholds = np.asarray(list(tiou_thresholds), dtype=np.float64)
    if an.size == 0 or np.any(an < 1):
        raise ValueError(f"AN values must be positive integers, got {an.tolist()}")
    if thresholds.size == 0 or np.any((thresholds <= 0) | (thresholds > 1)):
        raise ValueError(f"tIoU thresholds must lie in (0, 1], got {thresholds.tolist()}")
    if len(gt) == 0:
        raise DataError("ground truth: no instances to compute recall against")

    gt_video, prop_video = shared_video_codes(gt, proposals)
    gt_order = np.lexsort((gt["start"].to_numpy(np.float64), gt_video))
    scores = proposals["score"].to_numpy(np.float64)
    prop_order = np.lexsort((np.arange(len(proposals)), -scores, prop_video))
    ranked_video = prop_video[prop_order]
    first_of_video = np.searchsorted(ranked_video, ranked_video, side="left")
    rank = np.arange(len(prop_order)) - first_of_video  # 0 = best proposal of its video
    top = rank < an.max()
    prop_order, rank = prop_order[top], rank[top]

    pair_prop, pair_gt, pair_tiou = candidate_pairs(
        prop_video[prop_order], proposals["start"].to_numpy(np.float64)[prop_order],
        proposals["end"].to_numpy(np.float64)[prop_order], gt_video[gt_order],
        gt["start"].to_numpy(np.float64)[gt_order], gt["end"].to_numpy(np.float64)[gt_order], thresholds.min(),
    )
    best_rank = np.full((thresholds.size, len(gt)), np.iinfo(np.int64).max)
    for t, threshold in enumerate(thresholds):
        hit = pair_tiou >= threshold
        np.minimum.at(best_rank[t], gt_order[pair_gt[hit]], rank[pair_prop[hit]])
    return an, best_rank, thresholds


def recall_table(
    gt: pd.DataFrame, proposals: pd.DataFrame, an_values: Sequence[int], tiou_thresholds: Sequence[float]
) -> pd.DataFrame:
    """Recall (percent) of ``gt`` (video_id, start, end) by the top-``AN`` ``proposals`` (video_id, start,
    end, score) of each video: rows AN, columns tIoU."""
    an, best_rank, thresholds = _best_ranks(gt, proposals, an_values, tiou_thresholds)
    recall = (best_rank[None, :, :] < an[:, None, None]).mean(axis=2) * 100.0
    return pd.DataFrame(recall, index=pd.Index(an, name="AN"), columns=thresholds.tolist())


def recall_by_video(
    gt: pd.DataFrame, proposals: pd.DataFrame, an_values: Sequence[int] = (50, 100, 200, 500, 1000),
    tiou_thresholds: Sequence[float] = TALNET_AR_TIOU,
) -> pd.DataFrame:
    """The per-video parts of AR@AN: ``an, video_id, recalled, instances``, ``recalled`` being the video's
    recalled GT count averaged over the tIoU thresholds, so that ``AR@AN = 100 sum(recalled) /
    sum(instances)`` over the videos (what a bootstrap over test videos resamples)."""
    an, best_rank, _ = _best_ranks(gt, proposals, an_values, tiou_thresholds)
    videos, codes = np.unique(gt["video_id"].to_numpy(), return_inverse=True)
    instances = np.bincount(codes, minlength=videos.size)
    frames = []
    for value in an:
        hits = (best_rank < value).mean(axis=0)  # per GT: share of the thresholds at which it is recalled
        frames.append(pd.DataFrame({"an": int(value), "video_id": videos,
                                    "recalled": np.bincount(codes, weights=hits, minlength=videos.size),
                                    "instances": instances}))
    return pd.concat(frames, ignore_index=True)


def average_recall(
    gt: pd.DataFrame, proposals: pd.DataFrame, an_values: Sequence[int] = (50, 100, 200, 500, 1000),
    tiou_thresholds: Sequence[float] = TALNET_AR_TIOU,
) -> dict:
    """AR@AN (percent) for every AN and the recall table behind it, as a JSON-ready dict:
    ``{"an": [...], "tiou": [...], "ar": {"50": x, ...}, "recall": {"50": [per tIoU], ...},
    "n_gt": int, "n_videos": int, "proposals_per_video": float}``."""
    table = recall_table(gt, proposals, an_values, tiou_thresholds)
    gt_videos = pd.unique(gt["video_id"])
    counts = proposals["video_id"].value_counts().reindex(gt_videos, fill_value=0)
    return {
        "an": [int(a) for a in table.index],
        "tiou": [float(t) for t in table.columns],
        "ar": {str(a): float(row.mean()) for a, row in table.iterrows()},
        "recall": {str(a): [float(v) for v in row] for a, row in table.iterrows()},
        "n_gt": len(gt),
        "n_videos": len(gt_videos),
        "proposals_per_video": float(counts.mean()),
    }
