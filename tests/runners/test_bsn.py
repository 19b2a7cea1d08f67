"""BSN building blocks: TEM/PEM shapes and losses, labels, boundary candidates, BSP features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talbench.models import count_parameters
from talbench.models.bsn import PEM, TEM, pem_loss, tem_loss, weighted_binary_logistic_loss
from talbench.runners.bsn.pgm import (
    boundary_candidates,
    bsp_features,
    candidate_proposals,
    tem_targets,
    window_offsets,
)


def test_tem_shapes_and_paper_parameter_count():
    tem = TEM(in_dim=2048, hidden=512)
    out = tem(torch.randn(2, 2048, 100))
    assert out.shape == (2, 3, 100)
    assert torch.all((out > 0) & (out < 1))
    # conv1d(2048,512,3) + conv1d(512,512,3) + conv1d(512,3,1), with biases
    expected = (2048 * 512 * 3 + 512) + (512 * 512 * 3 + 512) + (512 * 3 + 3)
    assert count_parameters(tem) == expected == 3_934_723  # docs/proposals.md


def test_pem_shapes():
    pem = PEM(in_dim=32, hidden=512)
    out = pem(torch.randn(7, 32))
    assert out.shape == (7,)
    assert count_parameters(pem) == 32 * 512 + 512 + 512 + 1 == 17_409  # docs/proposals.md


def test_tem_targets_on_hand_built_instance():
    # one instance from cell 10 to cell 30: boundary regions are 2 cells wide (0.1 x 20)
    targets = tem_targets(40, np.array([[10.0, 30.0]]), boundary_ratio=0.1)
    action, start, end = targets
    assert action[20] == pytest.approx(1.0)
    assert action[5] == 0.0
    assert action[10] == pytest.approx(0.5)  # cell 10 spans [9.5, 10.5], half inside
    assert start[10] == pytest.approx(1.0) and start[9] == pytest.approx(0.5) and start[12] == 0.0
    assert end[30] == pytest.approx(1.0) and end[20] == 0.0
    assert np.all(tem_targets(5, np.zeros((0, 2))) == 0)


def test_weighted_logistic_loss_balances_classes():
    match = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    perfect = torch.tensor([[0.999, 0.001, 0.001, 0.001]])
    wrong = torch.tensor([[0.001, 0.999, 0.999, 0.999]])
    assert weighted_binary_logistic_loss(perfect, match) < 0.01
    assert weighted_binary_logistic_loss(wrong, match) > 5.0
    # missing the single positive costs as much as missing all three negatives (alpha+ = l/l+, alpha- = l/l-)
    miss_pos = weighted_binary_logistic_loss(torch.tensor([[0.5, 0.001, 0.001, 0.001]]), match)
    miss_neg = weighted_binary_logistic_loss(torch.tensor([[0.999, 0.5, 0.5, 0.5]]), match)
    assert miss_pos.item() == pytest.approx(miss_neg.item(), rel=1e-2)


def test_tem_loss_weights_actionness_and_backpropagates():
    out = torch.full((1, 3, 8), 0.5, requires_grad=True)
    targets = torch.zeros(1, 3, 8)
    targets[:, :, 2:5] = 1.0
    total, parts = tem_loss(out, targets, action_weight=2.0)
    assert total.item() == pytest.approx(2 * parts["action"] + parts["start"] + parts["end"], rel=1e-5)
    # RefactorNet eq. 6: L_P = L_s + gamma L_e
    weighted, _ = tem_loss(out, targets, action_weight=2.0, end_weight=3.0)
    assert weighted.item() == pytest.approx(2 * parts["action"] + parts["start"] + 3 * parts["end"], rel=1e-5)
    total.backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()


def test_pem_loss_samples_by_iou_and_is_zero_when_exact():
    iou = torch.tensor([0.9, 0.8, 0.4, 0.1, 0.05, 0.0])
    gen = torch.Generator().manual_seed(0)
    assert pem_loss(iou.clone(), iou, gen).item() == pytest.approx(0.0)
    # a bad prediction on high-IoU proposals (always kept) gives a positive loss
    score = iou.clone()
    score[:2] = 0.0
    assert pem_loss(score, iou, torch.Generator().manual_seed(0)).item() > 0.05


def test_boundary_candidates_peaks_and_threshold():
    curve = np.array([0.1, 0.3, 0.2, 0.2, 0.9, 0.85, 0.5, 0.1, 0.15, 0.1])
    mask = boundary_candidates(curve, peak_threshold=0.5)
    # local peaks: 1 (0.3), 4 (0.9), 8 (0.15); above 0.45: 4, 5, 6; ends always
    assert np.flatnonzero(mask).tolist() == [0, 1, 4, 5, 6, 8, 9]


def test_candidate_proposals_pairs_inside_windows_vectorised():
    start = np.zeros(20)
    end = np.zeros(20)
    start[[3, 12]] = 1.0
    end[[7, 16]] = 1.0
    cells = candidate_proposals(start, end, window=10, stride=5, peak_threshold=0.9, max_duration=None)
    pairs = {tuple(p) for p in cells.tolist()}
    assert (3, 7) in pairs and (12, 16) in pairs
    assert (3, 16) not in pairs  # 13 cells apart: never inside one 10-cell window
    assert all(s < e for s, e in pairs)
    assert len(pairs) == len(cells)  # unique
    short = candidate_proposals(start, end, window=10, stride=5, peak_threshold=0.9, max_duration=3)
    assert np.all(short[:, 1] - short[:, 0] <= 3)


def test_window_offsets_cover_the_sequence():
    assert window_offsets(10, 100, 50).tolist() == [0]
    assert window_offsets(230, 100, 50).tolist() == [0, 50, 100, 130]


def test_bsp_features_sample_actionness():
    actionness = np.zeros(60)
    actionness[20:41] = 1.0
    feats = bsp_features(actionness, np.array([[20.0, 40.0], [0.0, 10.0]]))
    assert feats.shape == (2, 32)
    inside, start_region, end_region = feats[0, :16], feats[0, 16:24], feats[0, 24:]
    assert np.all(inside[1:-1] == pytest.approx(1.0))
    # the start region straddles the rise: low before, high after
    assert start_region[0] < 0.2 and start_region[-1] > 0.8
    assert end_region[0] > 0.8 and end_region[-1] < 0.2
    assert np.all(feats[1] < 0.01)  # a proposal on background
    # padding outside the video is zero
    edge = bsp_features(np.ones(10), np.array([[0.0, 9.0]]))
    assert edge[0, 16] < 0.5 and edge[0, -1] < 0.5

