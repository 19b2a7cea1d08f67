"""Label assignment and mini-batch sampling of TAL-Net's two stages (supplementary A.1), vectorised with numpy.

* Anchors (SPN): positive if their tIoU with some ground truth is higher than 0.7, negative if it is lower
  than 0.3 with every ground truth, ignored otherwise; each ground truth is in addition forced to have a
  positive anchor: its highest-tIoU anchor (first in anchor order on ties), matched to it (the TF OD API's
  ``ArgMaxMatcher(force_match_for_each_row=True)``; an anchor forced by several ground truths goes to the first
  of them, as the API's ``argmax`` of its one-hot indicators). A ground truth that no training anchor overlaps
  at all forces nothing. Positives regress towards their matched ground truth (the highest-tIoU one).
* Proposals (classifier): the label of the most-overlapping ground truth if that tIoU is higher than 0.5,
  else background (0), which is every proposal below 0.5 (the API's detection matcher has no ignore band).
* Mini-batches (one video): up to ``fraction x batch`` positives drawn at random, the rest of the batch filled
  with random negatives (the API's ``BalancedPositiveNegativeSampler`` with a batch size: 256 anchors, half
  positive; 64 proposals, a quarter foreground).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talbench.eval.tiou import pairwise_tiou


@dataclass(frozen=True)
class Assignment:
    """``labels`` per segment (anchors: 1 positive, 0 negative, -1 ignored; proposals: class 0..C) and the
    index of the matched ground truth (-1 where a segment is not positive / is background)."""

    labels: np.ndarray
    matched: np.ndarray


def label_anchors(anchors: np.ndarray, truth: np.ndarray, positive_iou: float = 0.7,
                  negative_iou: float = 0.3) -> Assignment:
    """SPN labels of ``anchors`` ``(A, 2)`` against ground-truth segments ``truth`` ``(G, 2)``."""
    count = anchors.shape[0]
    if truth.shape[0] == 0 or count == 0:
        return Assignment(np.zeros(count, np.int64), np.full(count, -1, np.int64))
    iou = pairwise_tiou(anchors, truth)
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(count), best]
    labels = np.full(count, -1, np.int64)
    labels[best_iou < negative_iou] = 0
    labels[best_iou > positive_iou] = 1
    forced = iou.argmax(axis=0)  # each ground truth's best anchor
    overlaps = iou[forced, np.arange(truth.shape[0])] > 0
    forced_anchor, first = np.unique(forced[overlaps], return_index=True)
    labels[forced_anchor] = 1
    best[forced_anchor] = np.flatnonzero(overlaps)[first]
    return Assignment(labels, np.where(labels == 1, best, -1))


def label_proposals(proposals: np.ndarray, truth: np.ndarray, truth_labels: np.ndarray,
                    foreground_iou: float = 0.5) -> Assignment:
    """Classifier labels of ``proposals`` ``(P, 2)``: ``truth_labels`` ``(G,)`` (1..C) of the best ground
    truth above ``foreground_iou``, else 0."""
    count = proposals.shape[0]
    if truth.shape[0] == 0 or count == 0:
        return Assignment(np.zeros(count, np.int64), np.full(count, -1, np.int64))
    iou = pairwise_tiou(proposals, truth)
    best = iou.argmax(axis=1)
    foreground = iou[np.arange(count), best] > foreground_iou
    return Assignment(np.where(foreground, np.asarray(truth_labels, np.int64)[best], 0),
                      np.where(foreground, best, -1))


def sample_balanced(positive: np.ndarray, negative: np.ndarray, batch_size: int, positive_fraction: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a mini-batch: ``min(#positive, int(fraction x batch))`` random positives, then random
    negatives up to ``batch_size`` (fewer when the segments run out)."""
    positives = np.flatnonzero(positive)
    negatives = np.flatnonzero(negative & ~positive)
    n_pos = min(int(positive_fraction * batch_size), positives.size)
    n_neg = min(batch_size - n_pos, negatives.size)
    picked = np.concatenate([rng.choice(positives, n_pos, replace=False),
                             rng.choice(negatives, n_neg, replace=False)])
    return np.sort(picked)
