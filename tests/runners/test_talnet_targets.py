"""TAL-Net's grid (talbench/runners/talnet), anchors, box coding (supplementary eq. 2), label assignment and mini-batch sampling
(supplementary A.1) and proposal generation (NMS 0.7, top 300)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from talbench.runners.talnet.anchors import anchor_lengths, decode, encode, inside_window, make_anchors
from talbench.runners.talnet.grid import grid_features, grid_geometry
from talbench.runners.talnet.inference import generate_proposals
from talbench.runners.talnet.sampling import label_anchors, label_proposals, sample_balanced


def test_grids_average_one_paper_cell_of_suite_cells():
    features = np.arange(30, dtype=np.float32)[:, None] * np.array([[1.0, -2.0]], np.float32)  # (T=30, D=2)
    centers = (np.arange(30) * 4 + 8) / 30.0  # stride 4 at 30 fps
    pooled = grid_features(features, "pooled", 12)
    assert pooled.shape == (3, 2)
    assert pooled[:, 0].tolist() == [5.5, 17.5, 26.5]  # cells 0-11, 12-23, 24-29 (last one partial)
    geometry = grid_geometry(centers, "pooled", 12)
    assert geometry.cells == 3 and geometry.step == pytest.approx(1.6)  # 0.625 fps
    assert geometry.first_center == pytest.approx(centers[:12].mean())
    native = grid_features(features, "native", 12)
    assert native.shape == (30, 2)
    assert native[10, 0] == pytest.approx(np.arange(4, 16).mean())  # window [j - 6, j + 6)
    assert native[0, 0] == pytest.approx(np.arange(0, 6).mean())  # clipped at the start
    geometry = grid_geometry(centers, "native", 12)
    assert geometry.cells == 30 and geometry.step == pytest.approx(4 / 30)
    assert geometry.first_center + 10 * geometry.step == pytest.approx(centers[4:16].mean())
    # grid coordinates: cell j covers [j, j + 1); seconds and cells round trip
    assert geometry.to_seconds(10.5) == pytest.approx(geometry.first_center + 10 * geometry.step)
    assert geometry.to_cells(geometry.to_seconds(np.array([0.0, 7.25]))) == pytest.approx([0.0, 7.25])
    with pytest.raises(ValueError, match="grid"):
        grid_features(features, "dense", 12)


def test_anchors_are_scale_major_and_centred_on_cells():
    lengths = anchor_lengths([1, 2, 16], 12)
    assert lengths.tolist() == [12, 24, 192]  # spans of 1.6, 3.2 and 25.6 s at 30 fps
    anchors = make_anchors(50, lengths)
    assert anchors.shape == (150, 2)
    assert anchors[0].tolist() == [-5.5, 6.5] and anchors[50 + 3].tolist() == [3.5 - 12, 3.5 + 12]
    inside = inside_window(anchors, 50)
    assert inside.reshape(3, 50).sum(axis=1).tolist() == [38, 26, 0]  # a 192-cell anchor never fits 50 cells


def test_box_coding_scales_and_round_trip():
    anchor = torch.tensor([[8.0, 12.0]], dtype=torch.float64)  # centre 10, length 4
    truth = torch.tensor([[7.0, 15.0]], dtype=torch.float64)  # centre 11, length 8
    t = encode(truth, anchor)
    assert t[0, 0] == pytest.approx(10 * 1 / 4) and t[0, 1] == pytest.approx(5 * math.log(2))
    rng = np.random.default_rng(0)
    starts = rng.uniform(-10, 100, 50)
    references = torch.from_numpy(np.stack([starts, starts + rng.uniform(0.5, 40, 50)], axis=1))
    offsets = torch.from_numpy(rng.normal(0, 3, (50, 2)))
    assert torch.allclose(encode(decode(offsets, references), references), offsets, atol=1e-6)
    # decoding broadcasts references (class-specific offsets of each proposal)
    assert decode(offsets.view(25, 2, 2), references[:25, None, :]).shape == (25, 2, 2)


def test_anchor_labels_thresholds_and_the_forced_positive():
    truth = np.array([[10.0, 20.0], [40.0, 44.0]])
    anchors = np.array([
        [10.0, 19.0],  # tIoU 0.9 with truth 0 -> positive
        [12.0, 22.0],  # 8 / 12 = 0.667: ignored
        [15.0, 25.0],  # 5 / 15 = 0.333: ignored
        [17.0, 27.0],  # 3 / 17 = 0.176: negative
        [41.0, 47.0],  # 3 / 7 = 0.43 with truth 1, its best anchor: forced positive
        [40.0, 48.0],  # 4 / 8 = 0.5: second best, ignored
        [60.0, 70.0],  # no overlap: negative
    ])
    result = label_anchors(anchors, truth, 0.7, 0.3)
    # tIoU([41, 47], [40, 44]) = 3 / 7 = 0.43 < tIoU([40, 48], [40, 44]) = 4 / 8 = 0.5: the latter is forced
    assert result.labels.tolist() == [1, -1, -1, 0, -1, 1, 0]
    assert result.matched.tolist() == [0, -1, -1, -1, -1, 1, -1]
    # two ground truths forcing the same anchor: it goes to the first of them
    twins = label_anchors(np.array([[0.0, 10.0], [50.0, 60.0]]), np.array([[1.0, 8.0], [2.0, 9.0]]), 0.7, 0.3)
    assert twins.labels.tolist() == [1, 0] and twins.matched.tolist() == [0, -1]
    # a ground truth that no anchor overlaps forces nothing; no ground truth: all negative
    far = label_anchors(np.array([[0.0, 10.0]]), np.array([[20.0, 30.0]]), 0.7, 0.3)
    assert far.labels.tolist() == [0] and far.matched.tolist() == [-1]
    assert label_anchors(anchors, np.zeros((0, 2)), 0.7, 0.3).labels.tolist() == [0] * 7


def test_proposal_labels_take_the_best_ground_truth_above_one_half():
    truth = np.array([[0.0, 10.0], [8.0, 20.0]])
    proposals = np.array([[0.0, 9.0], [9.0, 19.0], [4.0, 14.0], [30.0, 40.0], [0.0, 20.0]])
    result = label_proposals(proposals, truth, np.array([3, 1]), 0.5)
    # tIoU: 0.9 | 10/12 | 6/14 and 6/16 | 0 | 0.5 and 0.6
    assert result.labels.tolist() == [3, 1, 0, 0, 1]
    assert result.matched.tolist() == [0, 1, -1, -1, 1]


def test_balanced_sampling_fractions():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(500, np.int64), np.zeros(1000, np.int64), -np.ones(100, np.int64)]
    picked = sample_balanced(labels == 1, labels == 0, 256, 0.5, rng)
    assert picked.size == 256 and (labels[picked] == 1).sum() == 128 and (labels[picked] == 0).sum() == 128
    assert np.unique(picked).size == 256 and np.all(np.diff(picked) > 0)
    few = np.r_[np.ones(10, np.int64), np.zeros(1000, np.int64)]
    picked = sample_balanced(few == 1, few == 0, 256, 0.5, rng)  # fewer positives: negatives fill the batch
    assert picked.size == 256 and (few[picked] == 1).sum() == 10
    classes = np.r_[np.full(40, 2), np.zeros(300, np.int64)]
    picked = sample_balanced(classes > 0, classes == 0, 64, 0.25, rng)
    assert picked.size == 64 and (classes[picked] > 0).sum() == 16
    tiny = sample_balanced(np.array([True, False]), np.array([False, True]), 64, 0.25, rng)
    assert tiny.tolist() == [0, 1]
    again = sample_balanced(labels == 1, labels == 0, 256, 0.5, np.random.default_rng(7))
    assert np.array_equal(again, sample_balanced(labels == 1, labels == 0, 256, 0.5, np.random.default_rng(7)))


def test_proposals_are_decoded_clipped_and_suppressed():
    anchors = torch.tensor([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0], [45.0, 55.0], [60.0, 70.0]])
    offsets = torch.zeros(5, 2)
    logits = torch.tensor([[0.0, 3.0], [0.0, 2.0], [0.0, 1.0], [0.0, 4.0], [0.0, 5.0]])
    proposals, scores = generate_proposals(logits, offsets, anchors, 50, nms_iou=0.7, max_proposals=300)
    # [1, 11] overlaps [0, 10] with tIoU 9/11 > 0.7: suppressed; [45, 55] clipped to [45, 50];
    # [60, 70] lies outside the video: empty after clipping, dropped
    assert proposals.tolist() == [[45.0, 50.0], [0.0, 10.0], [20.0, 30.0]]
    assert scores == pytest.approx(1 / (1 + np.exp(-np.array([4.0, 3.0, 1.0]))))
    top, _ = generate_proposals(logits, offsets, anchors, 50, nms_iou=0.7, max_proposals=2)
    assert top.tolist() == [[45.0, 50.0], [0.0, 10.0]]
