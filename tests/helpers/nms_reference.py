"""The plain per-group NMS loop: the reference ``talbench.ops.nms.batched_nms`` must equal bit for bit (tests and
benchmarks/perf/nms_speed.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def plain_loop_nms(segments, scores, groups=None, *, method="hard", iou_threshold=0.5, sigma=0.5, min_score=0.0,
                   top_k=None):
    """The plain per-group numpy loop (reference for ``batched_nms`` and for benchmarks/perf/nms_speed.py).

    Each group separately, arrays kept in input order: take the first argmax of the current scores,
    compute its tIoU with all remaining segments (talbench.eval.tiou's operation order), rescore or remove
    them, drop the selected one and those below ``min_score``; at most ``top_k`` per group. Returns kept
    input indices and scores by descending score, ties by input index.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    codes = np.zeros(len(scores), np.int64) if groups is None else pd.factorize(np.asarray(groups))[0]
    by_group = np.argsort(codes, kind="stable")
    limit = len(scores) if top_k is None else int(top_k)
    keep, kept = [], []
    for idx in np.split(by_group, np.flatnonzero(np.diff(codes[by_group])) + 1):
        idx = idx[scores[idx] >= min_score]
        start, end, score = segments[idx, 0], segments[idx, 1], scores[idx]
        n_kept = 0
        while idx.size and n_kept < limit:
            m = int(np.argmax(score))
            keep.append(idx[m])
            kept.append(score[m])
            n_kept += 1
            inter = np.clip(np.minimum(end, end[m]) - np.maximum(start, start[m]), 0.0, None)
            union = (end[m] - start[m]) + (end - start) - inter
            iou = np.divide(inter, union, out=np.zeros(len(inter)), where=union > 0)
            if method == "hard":
                alive = iou <= iou_threshold
            else:
                if method == "linear":
                    decay = np.where(iou >= iou_threshold, 1.0 - iou, 1.0)
                else:
                    decay = np.exp(-np.square(iou) / sigma)
                score = score * decay
                alive = score >= min_score
            alive[m] = False
            idx, start, end, score = idx[alive], start[alive], end[alive], score[alive]
    keep, kept = np.asarray(keep, np.int64), np.asarray(kept, np.float64)
    order = np.lexsort((keep, -kept))
    return keep[order], kept[order]
