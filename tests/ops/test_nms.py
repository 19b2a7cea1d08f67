"""NMS and Soft-NMS: hand-computed cases, agreement with a literal per-box loop, and identical output (indices,
order, scores bit for bit) to the plain per-group numpy loop on randomized cases, through every code path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.nms_reference import plain_loop_nms

from talbench.ops import nms as postprocess
from talbench.ops.nms import batched_nms, nms, nms_per_class, nms_per_video, soft_nms


def _loop_soft_nms(segments, scores, method, iou_threshold, sigma, min_score):
    """Bodla et al.'s Soft-NMS algorithm box by box (the textbook loop)."""
    segs, sc, idx = segments.copy(), scores.astype(float).copy(), list(range(len(scores)))
    out_idx, out_score = [], []
    while idx:
        m = max(idx, key=lambda i: (sc[i], -i))
        out_idx.append(m)
        out_score.append(sc[m])
        idx.remove(m)
        for i in list(idx):
            inter = max(0.0, min(segs[m, 1], segs[i, 1]) - max(segs[m, 0], segs[i, 0]))
            union = (segs[m, 1] - segs[m, 0]) + (segs[i, 1] - segs[i, 0]) - inter
            iou = inter / union
            if method == "hard":
                if iou > iou_threshold:
                    idx.remove(i)
                continue
            if method == "linear":
                sc[i] *= (1 - iou) if iou >= iou_threshold else 1.0
            else:
                sc[i] *= np.exp(-iou**2 / sigma)
            if sc[i] < min_score:
                idx.remove(i)
    return np.array(out_idx), np.array(out_score)


def test_hard_nms_hand_case():
    segs = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 4.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms(segs, scores, 0.5).tolist() == [0, 2, 3]  # [1,10] has tIoU 0.9 with [0,10]
    assert nms(segs, scores, 0.95).tolist() == [0, 1, 2, 3]
    assert nms(segs, scores, 0.5, top_k=2).tolist() == [0, 2]
    assert nms(segs, scores, 0.5, min_score=0.65).tolist() == [0, 2]


def test_gaussian_soft_nms_hand_case():
    segs = np.array([[0.0, 10.0], [0.0, 5.0]])
    kept_segs, kept_scores, keep = soft_nms(segs, np.array([1.0, 0.8]), sigma=0.5)
    assert keep.tolist() == [0, 1]
    np.testing.assert_allclose(kept_scores, [1.0, 0.8 * np.exp(-0.25 / 0.5)])
    np.testing.assert_array_equal(kept_segs, segs)


def test_linear_soft_nms_threshold():
    segs = np.array([[0.0, 10.0], [0.0, 5.0], [0.0, 9.0]])
    _, scores, keep = soft_nms(segs, np.array([1.0, 0.8, 0.7]), method="linear", iou_threshold=0.6)
    # [0,5] tIoU 0.5 < 0.6 untouched; [0,9] tIoU 0.9 -> 0.7 * 0.1; then [0,9] vs [0,5]: tIoU 5/9 < 0.6
    assert keep.tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores, [1.0, 0.8, 0.07])


@pytest.mark.parametrize("method", ["hard", "linear", "gaussian"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_box_by_box_loop(method, seed):
    rng = np.random.default_rng(seed)
    starts = rng.uniform(0, 50, 120)
    segs = np.stack([starts, starts + rng.uniform(0.5, 10, 120)], axis=1)
    scores = np.round(rng.uniform(0, 1, 120), 2)  # ties broken by input order in both
    ref_idx, ref_score = _loop_soft_nms(segs, scores, method, 0.4, 0.5, 0.001)
    keep, new_scores = batched_nms(segs, scores, None, method=method, iou_threshold=0.4, sigma=0.5,
                                   min_score=0.001)
    order = np.lexsort((ref_idx, -ref_score))
    np.testing.assert_array_equal(keep, ref_idx[order])
    np.testing.assert_allclose(new_scores, ref_score[order], rtol=1e-12)


def _assert_same(result, reference):
    """Same kept indices in the same order and bit-identical scores."""
    np.testing.assert_array_equal(result[0], reference[0])
    np.testing.assert_array_equal(result[1].view(np.int64), reference[1].view(np.int64))


def _random_case(rng, kind, n):
    """Segments, scores and groups: ``grid`` (integer bounds and scores: many ties, identical and zero-length
    segments, scores tying after rescoring), ``continuous``, ``wide`` (lengths over 7 orders of magnitude,
    negative bounds), ``duplicates`` (a few distinct segments, repeated), ``fpn`` (detector-like: lengths
    log-uniform, scores rounded), ``signed`` (some negative scores)."""
    if kind == "grid":
        start = rng.integers(0, 30, n).astype(float)
        segments = np.stack([start, start + rng.integers(0, 8, n)], axis=1)
        scores = rng.integers(0, 6, n) / 5
    elif kind == "continuous":
        start = rng.uniform(0, 300, n)
        segments = np.stack([start, start + rng.exponential(5, n) * (rng.random(n) > 0.05)], axis=1)
        scores = np.round(rng.uniform(0, 1, n), 2)
    elif kind == "wide":
        start = rng.uniform(-1e3, 1e3, n)
        segments = np.stack([start, start + np.exp(rng.uniform(-8, 7, n))], axis=1)
        scores = rng.uniform(0, 1, n) ** 3
    elif kind == "duplicates":
        distinct = np.sort(rng.uniform(0, 50, (max(n // 10, 1), 2)), axis=1)
        segments = distinct[rng.integers(0, len(distinct), n)]
        scores = np.round(rng.uniform(0, 1, n), 1)
    elif kind == "fpn":
        length = np.exp(rng.uniform(np.log(0.1), np.log(300), n))
        start = rng.uniform(0, 600, n)
        segments = np.stack([start, start + length], axis=1)
        scores = np.round(rng.uniform(0, 1, n) ** 3, 4)
    else:  # signed
        start = rng.integers(0, 30, n).astype(float)
        segments = np.stack([start, start + rng.integers(0, 8, n)], axis=1)
        scores = rng.integers(-3, 6, n) / 5
    groups = rng.integers(0, rng.integers(1, 12), n)
    return segments, scores, groups


KINDS = ["grid", "continuous", "wide", "duplicates", "fpn", "signed"]


def _check_against_plain_loop(rng, method, kinds=KINDS, sizes=(1, 40, 400), repeats=2):
    for kind in kinds:
        for n in sizes:
            for _ in range(repeats):
                segments, scores, groups = _random_case(rng, kind, n)
                min_scores = [0.0, 0.001, 0.2] + ([-0.5] if kind == "signed" else [])
                kwargs = {"method": method, "iou_threshold": float(rng.choice([0.0, 0.3, 0.5, 1.0])),
                          "sigma": float(rng.choice([0.1, 0.5, 1.0])), "top_k": rng.choice([None, 1, 3, 50]),
                          "min_score": float(rng.choice(min_scores))}
                _assert_same(batched_nms(segments, scores, groups, **kwargs),
                             plain_loop_nms(segments, scores, groups, **kwargs))


@pytest.mark.parametrize("method", ["hard", "linear", "gaussian"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_plain_loop(method, seed):
    _check_against_plain_loop(np.random.default_rng(seed), method)


@pytest.mark.parametrize("settings", [
    {"_COMPACT_EVERY": 1, "_COMPACT_MIN": 0, "_COMPACT": 1.2},  # compaction after every round
    {"_CANDIDATES": 1},  # one selection per group and round
    {"_CANDIDATES": 3, "_SUPERBLOCKS": 1, "_LEXSORT_MAX": 0},  # few candidates, argsort path
    {"_SUPERBLOCKS": 4096, "_CANDIDATES": 64},  # large blocks, many candidates
    {"_MIN_BIN": 1, "_CLASS_LOG2": 0},  # a window bin per binary order of length
    {"_MIN_BIN": 10**9},  # one window bin per group
    {"_HARD_LOOP_MAX_GROUP": -1},  # hard NMS by rounds too
])
@pytest.mark.parametrize("method", ["hard", "linear", "gaussian"])
def test_matches_plain_loop_on_every_path(monkeypatch, settings, method):
    for name, value in settings.items():
        monkeypatch.setattr(postprocess, name, value)
    _check_against_plain_loop(np.random.default_rng(7), method, sizes=(30, 300), repeats=1)


@pytest.mark.parametrize("method", ["hard", "linear", "gaussian"])
@pytest.mark.parametrize("min_score", [0.0, 0.001])
def test_matches_plain_loop_on_large_groups(method, min_score):
    rng = np.random.default_rng(3)
    segments, scores, _ = _random_case(rng, "fpn", 6000)
    groups = rng.integers(0, 3, 6000)
    kwargs = {"method": method, "iou_threshold": 0.5, "sigma": 0.5, "min_score": min_score}
    _assert_same(batched_nms(segments, scores, groups, **kwargs), plain_loop_nms(segments, scores, groups, **kwargs))


def test_tie_after_rescoring_goes_by_input_order():
    # A (input 2) rescores B (input 1) to 0.8 * (1 - 0.5) = 0.4, the score of C (input 0): C comes first
    # (input order) and rescores B (tIoU 4 / 16) to 0.4 * 0.75, not the other way round
    segs = np.array([[12.0, 20.0], [4.0, 16.0], [0.0, 12.0]])
    keep, scores = batched_nms(segs, np.array([0.4, 0.8, 1.0]), method="linear", iou_threshold=0.0)
    assert keep.tolist() == [2, 0, 1]
    assert scores.tolist() == [1.0, 0.4, 0.4 * 0.75]


def test_identical_segments_and_zero_length_and_min_score():
    segs = np.array([[0.0, 10.0], [0.0, 10.0], [3.0, 3.0], [0.0, 10.0]])
    keep, scores = batched_nms(segs, np.array([0.5, 0.5, 0.9, 0.5]), method="gaussian", sigma=0.5)
    decay = np.exp(-np.square(1.0) / 0.5)
    assert keep.tolist() == [2, 0, 1, 3]  # the zero-length segment overlaps nothing; ties by input order
    assert scores.tolist() == [0.9, 0.5, 0.5 * decay, 0.5 * decay * decay]
    # linear: an identical segment's score becomes 0, below min_score it is dropped
    keep, scores = batched_nms(segs[:2], np.array([0.9, 0.8]), method="linear", iou_threshold=0.5)
    assert keep.tolist() == [0, 1] and scores.tolist() == [0.9, 0.0]
    keep, _ = batched_nms(segs[:2], np.array([0.9, 0.8]), method="linear", iou_threshold=0.5, min_score=0.1)
    assert keep.tolist() == [0]


def test_non_finite_inputs():
    with pytest.raises(ValueError, match="finite segment bounds"):
        batched_nms(np.array([[0.0, np.nan], [0.0, 1.0]]), np.ones(2), method="gaussian")
    # NaN and -inf scores never take part (the -inf one even with min_score -inf)
    keep, _ = batched_nms(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]), np.array([np.nan, -np.inf, 0.5]),
                          method="gaussian", min_score=-np.inf)
    assert keep.tolist() == [2]


def test_groups_are_independent():
    segs = np.array([[0.0, 10.0], [0.0, 10.0], [0.0, 10.0]])
    scores = np.array([0.9, 0.8, 0.7])
    keep, _ = batched_nms(segs, scores, np.array(["a", "b", "a"]), method="hard", iou_threshold=0.5)
    assert keep.tolist() == [0, 1]
    keep, _ = batched_nms(segs, scores, None, method="hard", iou_threshold=0.5)  # class-agnostic
    assert keep.tolist() == [0]


def test_nms_per_video_per_class_and_agnostic():
    pred = pd.DataFrame({
        "video_id": ["v1", "v1", "v1", "v2", "v2"],
        "label": ["x", "x", "y", "x", "x"],
        "start": [0.0, 0.5, 0.0, 0.0, 30.0], "end": [10.0, 10.0, 10.0, 10.0, 40.0],
        "score": [0.9, 0.8, 0.7, 0.6, 0.95], "extra": [1, 2, 3, 4, 5],
    })
    per_class = nms_per_video(pred, "hard", iou_threshold=0.5)
    assert per_class["extra"].tolist() == [1, 3, 5, 4]
    agnostic = nms_per_video(pred, "hard", iou_threshold=0.5, per_class=False)
    assert agnostic["extra"].tolist() == [1, 5, 4]
    capped = nms_per_video(pred, "gaussian", sigma=0.5, max_per_video=1)
    assert capped["extra"].tolist() == [1, 5]
    pre = nms_per_video(pred, "hard", iou_threshold=0.99, pre_nms_top_k=1)
    assert pre["extra"].tolist() == [1, 3, 5]


def test_nms_per_class_uses_label_id():
    cand = pd.DataFrame({"video_id": ["v"] * 3, "label_id": [0, 0, 1], "start": [0.0, 1.0, 0.0],
                         "end": [10.0, 10.0, 10.0], "score": [0.5, 0.4, 0.3]})
    out = nms_per_class(cand, iou_threshold=0.5, max_per_video=10)
    assert out["label_id"].tolist() == [0, 1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        batched_nms(np.zeros((1, 2)), np.ones(1), method="soft")
    with pytest.raises(ValueError, match="sigma must be positive"):
        soft_nms(np.zeros((1, 2)), np.ones(1), sigma=0.0)
    with pytest.raises(ValueError, match="differ in length"):
        nms(np.zeros((2, 2)), np.ones(3))
    assert nms(np.zeros((0, 2)), np.zeros(0)).size == 0
