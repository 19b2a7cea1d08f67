"""Training objectives of the one-stage decoders against hand-computed values (one level, logits 0 so that every
probability is 1/2: focal = alpha_t (1/2)^2 log 2, varifocal positive = log 2, negative = 0.25 (1/2)^2 log 2)."""

from __future__ import annotations

import math

import pytest
import torch

from talbench.models.actionformer import ActionFormerOutputs
from talbench.models.cltdr_gmg.detector import CLTDROutputs
from talbench.models.one_stage.losses import PositiveCountNormalizer
from talbench.models.tridet import TridentOutputs
from talbench.runners.one_stage.objective import LossSettings, actionformer_loss, cltdr_loss, trident_loss

LOG2 = math.log(2.0)
FOCAL_POS = 0.25 * 0.25 * LOG2
FOCAL_NEG = 0.75 * 0.25 * LOG2
VFL_POS = LOG2
VFL_NEG = 0.25 * 0.25 * LOG2


def targets():
    """3 points (the last one padded), 2 classes: point 0 is class 1 with distances (1, 3)."""
    cls = torch.tensor([[[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]]])  # the padded point's target must not count
    reg = torch.tensor([[[1.0, 3.0], [0.0, 0.0], [5.0, 5.0]]])
    valid = torch.tensor([[True, True, False]])
    return cls, reg, valid


def test_actionformer_loss_by_hand():
    cls, reg, valid = targets()
    offsets = torch.tensor([[[1.0, 9.0, 9.0], [1.0, 9.0, 9.0]]])  # point 0 predicts (1, 1)
    outputs = ActionFormerOutputs([torch.zeros(1, 2, 3)], [offsets], [valid])
    normalizer = PositiveCountNormalizer(100.0, 0.9)
    terms = actionformer_loss(outputs, cls, reg, valid, normalizer, LossSettings())
    norm = 0.9 * 100 + 0.1 * 1
    assert normalizer.value == pytest.approx(norm)
    assert terms.cls.item() == pytest.approx((FOCAL_POS + 3 * FOCAL_NEG) / norm, rel=1e-5)
    # (1, 1) vs (1, 3): IoU 2/4, enclosing 4, centres differ by 1: 1 - 1/2 + (1/4)^2
    assert terms.reg.item() == pytest.approx((1 - 0.5 + 1 / 16) / norm, rel=1e-5)
    assert terms.total.item() == pytest.approx(terms.cls.item() + terms.reg.item())


def peaked_offsets(left_bin: int, right_bin: int, bins: int = 2, t: int = 3) -> torch.Tensor:
    """Trident centre offsets whose softmax is (almost exactly) one-hot: d_left = bins - left_bin,
    d_right = right_bin (zero boundary logits)."""
    offsets = torch.zeros(1, 2, bins + 1, t)
    offsets[:, 0, left_bin] = 60.0
    offsets[:, 1, right_bin] = 60.0
    return offsets


def test_trident_loss_weights_positives_by_iou_power():
    cls, reg, valid = targets()
    zeros = torch.zeros(1, 2, 3)
    outputs = TridentOutputs([zeros], [zeros], [zeros], [peaked_offsets(1, 2)], [valid])  # predicts (1, 2)
    terms = trident_loss(outputs, cls, reg, valid, PositiveCountNormalizer(100.0, 0.9), LossSettings())
    norm = 90.1
    iou = 3 / 4  # (1, 2) vs (1, 3)
    assert terms.cls.item() == pytest.approx((FOCAL_POS * iou**0.2 + 3 * FOCAL_NEG) / norm, rel=1e-5)
    diou = 1 - iou + (0.5 / 4) ** 2  # enclosing 4, centres 1/2 apart
    assert terms.reg.item() == pytest.approx(diou / norm, rel=1e-5)


def test_multi_label_point_regresses_each_of_its_classes():
    cls, reg, valid = targets()
    cls[0, 0] = torch.tensor([1.0, 1.0])  # point 0 is both classes (a tie of equally long ground truths)
    zeros = torch.zeros(1, 2, 3)
    outputs = TridentOutputs([zeros], [zeros], [zeros], [peaked_offsets(1, 2)], [valid])
    terms = trident_loss(outputs, cls, reg, valid, PositiveCountNormalizer(100.0, 0.9), LossSettings())
    assert terms.cls.item() == pytest.approx((2 * FOCAL_POS * 0.75**0.2 + 2 * FOCAL_NEG) / 90.1, rel=1e-5)
    assert terms.reg.item() == pytest.approx(2 * (1 - 0.75 + (0.5 / 4) ** 2) / 90.1, rel=1e-5)


def test_cltdr_loss_mixes_refined_and_coarse_with_two_normaliser_updates():
    """Refined: varifocal x IoU^0.2 on the refined (point, class) distances; coarse: plain focal on the Trident
    distances; 0.7 / 0.3; the positive-count EMA updated once in each part."""
    cls, reg, valid = targets()
    zeros = torch.zeros(1, 2, 3)
    refine_start = torch.zeros(1, 2, 3)
    refine_end = torch.full((1, 2, 3), 1.0)  # R_eo = +1 input step at stride 1: refined (1, 3) = ground truth
    outputs = CLTDROutputs([zeros], [zeros], [zeros], [zeros], [peaked_offsets(1, 2)], [refine_start], [refine_end],
                           [valid])
    normalizer = PositiveCountNormalizer(100.0, 0.9)
    terms = cltdr_loss(outputs, [1], cls, reg, valid, normalizer, LossSettings())
    n1 = 0.9 * 100 + 0.1
    n2 = 0.9 * n1 + 0.1
    assert normalizer.value == pytest.approx(n2)
    refined_cls = (VFL_POS * 1.0**0.2 + 3 * VFL_NEG) / n1  # refined distances equal the ground truth: IoU 1
    refined_reg = 0.0
    coarse_cls = (FOCAL_POS + 3 * FOCAL_NEG) / n2
    coarse_reg = (1 - 0.75 + (0.5 / 4) ** 2) / n2
    assert terms.cls.item() == pytest.approx(0.7 * refined_cls + 0.3 * coarse_cls, rel=1e-5)
    assert terms.reg.item() == pytest.approx(0.7 * refined_reg + 0.3 * coarse_reg, rel=1e-5, abs=1e-7)
    assert terms.total.item() == pytest.approx(terms.cls.item() + terms.reg.item(), rel=1e-6)


def test_label_smoothing_moves_the_targets():
    cls, reg, valid = targets()
    offsets = torch.ones(1, 2, 3)
    outputs = ActionFormerOutputs([torch.zeros(1, 2, 3)], [offsets], [valid])
    smooth = actionformer_loss(outputs, cls, reg, valid, PositiveCountNormalizer(100.0, 0.9),
                               LossSettings(label_smoothing=0.1))
    plain = actionformer_loss(outputs, cls, reg, valid, PositiveCountNormalizer(100.0, 0.9), LossSettings())
    assert smooth.cls.item() != pytest.approx(plain.cls.item())
    assert smooth.reg.item() == pytest.approx(plain.reg.item())
