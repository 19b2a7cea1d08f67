"""Losses and decoding against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from talbench.models.cltdr_gmg.refine_head import refine_class_logits, refine_distances
from talbench.models.one_stage.losses import (
    PositiveCountNormalizer,
    ctr_diou_loss_1d,
    ctr_iou_loss_1d,
    iou_1d,
    sigmoid_focal_loss,
    varifocal_loss,
    weight_positives_by_iou,
)
from talbench.models.one_stage.trident import boundary_windows, trident_distances

LN2 = math.log(2.0)


def test_sigmoid_focal_loss():
    logits = torch.tensor([0.0, 0.0, math.log(3.0)])
    targets = torch.tensor([1.0, 0.0, 1.0])
    # alpha_t (1 - p_t)^2 BCE: 0.25 * 0.25 * ln2, 0.75 * 0.25 * ln2, 0.25 * 0.0625 * -ln(0.75)
    expected = torch.tensor([0.0625 * LN2, 0.1875 * LN2, 0.25 * 0.0625 * -math.log(0.75)])
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), expected)


def test_varifocal_loss():
    logits = torch.tensor([0.0, math.log(3.0)])
    targets = torch.tensor([0.8, 0.0])
    # positive: weight = target (0.8) x BCE(0, 0.8) = ln2; negative: 0.25 * 0.75^2 x -ln(0.25)
    expected = torch.tensor([0.8 * LN2, 0.25 * 0.5625 * math.log(4.0)])
    torch.testing.assert_close(varifocal_loss(logits, targets), expected)
    torch.testing.assert_close(varifocal_loss(logits, targets, iou_weighted=False)[0], torch.tensor(LN2))


def test_iou_losses():
    pred = torch.tensor([[1.0, 3.0], [2.0, 2.0]])  # segments [-1, 3] and [-2, 2] around the point
    gt = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
    # intersection 1 + 2 = 3, union 4 + 4 - 3 = 5; centres 1 and 0, enclosing [-2, 3] of length 5
    torch.testing.assert_close(iou_1d(pred, gt), torch.tensor([0.6, 1.0]))
    torch.testing.assert_close(ctr_iou_loss_1d(pred, gt), torch.tensor([0.4, 0.0]))
    torch.testing.assert_close(ctr_diou_loss_1d(pred, gt), torch.tensor([0.4 + 0.04, 0.0]))
    with pytest.raises(ValueError):
        iou_1d(torch.tensor([[-1.0, 1.0]]), gt[:1])


def test_iou_weighting_of_positive_entries():
    loss = torch.ones(2, 3)
    positive = torch.tensor([[True, False, False], [False, True, True]])
    out = weight_positives_by_iou(loss, positive, torch.tensor([0.5, 0.25, 1.0]), power=0.5)
    torch.testing.assert_close(out, torch.tensor([[math.sqrt(0.5), 1.0, 1.0], [1.0, 0.5, 1.0]]))
    with pytest.raises(ValueError):
        weight_positives_by_iou(loss, positive, torch.tensor([0.5]), 0.5)


def test_positive_count_normalizer():
    norm = PositiveCountNormalizer(100.0, 0.9)
    assert norm.update(20) == pytest.approx(92.0)
    assert norm.update(0) == pytest.approx(82.9)  # max(num_pos, 1)


def test_boundary_windows():
    logits = torch.tensor([[[1.0, 2.0, 3.0]]])  # (B=1, C=1, T=3)
    start = boundary_windows(logits, 2, "start")  # positions t-2 .. t
    end = boundary_windows(logits, 2, "end")  # positions t .. t+2
    assert start.shape == (1, 3, 1, 3)
    assert start[0, :, 0].tolist() == [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]
    assert end[0, :, 0].tolist() == [[1.0, 2.0, 3.0], [2.0, 3.0, 0.0], [3.0, 0.0, 0.0]]


def test_trident_distances_hand_case():
    e = math.e
    logits = torch.tensor([[[1.0, 2.0, 3.0]]])
    offsets = torch.zeros(1, 2, 3, 3)  # (B, 2, bins + 1, T), bins = 2
    d = trident_distances(logits, logits, offsets)
    assert d.shape == (1, 3, 1, 2)
    # t = 0: start window logits (0, 0, 1) -> d_left = (2 * 1 + 1 * 1 + 0 * e) / (2 + e)
    torch.testing.assert_close(d[0, 0, 0, 0], torch.tensor(3 / (2 + e)))
    # t = 2: start window (1, 2, 3) -> (2 e + e^2) / (e + e^2 + e^3); end window (3, 0, 0) -> (1 + 2) / (e^3 + 2)
    torch.testing.assert_close(d[0, 2, 0, 0], torch.tensor((2 + e) / (1 + e + e * e)))
    torch.testing.assert_close(d[0, 2, 0, 1], torch.tensor(3 / (e**3 + 2)))
    offsets[0, 0, :, 0] = torch.tensor([0.0, 0.0, -1.0])  # start bins at t = 0 become (0, 0, 0): uniform
    torch.testing.assert_close(trident_distances(logits, logits, offsets)[0, 0, 0, 0], torch.tensor(1.0))


def test_refine_distances_eqs_11_12():
    distances = torch.tensor([2.0, 3.0]).view(1, 1, 1, 2)  # (B, T, C, 2) in stride units
    # stride 4, point t = 8: s_r = 8 - 2 * 4 + 4 = 4 -> (8 - 4) / 4 = 1; e_r = 8 + 3 * 4 - 2 = 18 -> 10 / 4 = 2.5
    out = refine_distances(distances, torch.tensor([[[4.0]]]), torch.tensor([[[-2.0]]]), stride=4)
    assert out.flatten().tolist() == [1.0, 2.5]
    clamped = refine_distances(distances, torch.tensor([[[12.0]]]), torch.tensor([[[-20.0]]]), stride=4)
    assert clamped.flatten().tolist() == [0.0, 0.0]


def test_refine_class_logits_code_and_paper_forms():
    coarse, refine = torch.tensor([0.0, 2.0]), torch.tensor([math.log(3.0), 3.0])
    torch.testing.assert_close(refine_class_logits(coarse, refine, "code"), torch.tensor([0.0, 6.0]))
    paper = torch.sigmoid(refine_class_logits(coarse, refine, "paper"))
    expected = torch.sqrt(torch.sigmoid(coarse) * torch.sigmoid(refine))  # eq. 10, sqrt(a x R)
    torch.testing.assert_close(paper, expected)
    torch.testing.assert_close(paper[0], torch.tensor(math.sqrt(0.5 * 0.75)))
    with pytest.raises(ValueError):
        refine_class_logits(coarse, refine, "other")
