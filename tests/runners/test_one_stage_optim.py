"""Optimisation of the one-stage detectors: weight-decay groups, the warm-up + cosine schedule, the EMA."""

from __future__ import annotations

import math

import pytest
import torch

from talbench.models.cltdr_gmg.detector import build_cltdr_gmg
from talbench.models.tridet import build_tridet
from talbench.runners.one_stage.optim import ModelEMA, make_optimizer, parameter_groups, warmup_cosine_factor

SMALL = {"in_dim": 12, "num_classes": 3, "dim": 16, "head_dim": 16, "mlp_dim": 24, "num_bins": 4}


def test_decay_groups_follow_the_official_rules():
    model = build_cltdr_gmg(**SMALL)
    decay, no_decay = parameter_groups(model, 0.035)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.035 and no_decay["weight_decay"] == 0.0
    assert decayed.isdisjoint(kept) and decayed | kept == set(names.values())
    assert "encoder.branch.0.global_branch.w1" in decayed and "encoder.branch.0.global_branch.b1" in kept
    assert "encoder.projection.convs.0.conv.weight" in decayed  # masked conv
    assert "decoder.dcm.upsample.conv.weight" in decayed  # transposed conv
    assert "encoder.branch.0.instant.weight" in decayed  # depth-wise conv
    assert "encoder.branch.0.ln.weight" in kept and "encoder.branch.0.gn.weight" in kept
    assert "decoder.reg_head.scales.0.scale" in kept and "encoder.branch.0.drop_path_out.scale" in kept
    assert all(not n.endswith("bias") for n in decayed)


def test_an_unknown_parameter_is_an_error():
    model = build_tridet(**{k: v for k, v in SMALL.items()})
    model.extra = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="'extra' of OneStageDetector has no weight-decay rule"):
        parameter_groups(model, 0.1)


def test_warmup_then_cosine():
    """Warm-up over W = 4 steps from 0 (k / (W - 1)), then cosine to eta_min over the remaining 8 steps."""
    factors = [warmup_cosine_factor(k, 4, 12, 0.0) for k in range(13)]
    assert factors[:4] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert factors[4] == 1.0
    assert factors[8] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert factors[12] == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine_factor(12, 4, 12, 0.01) == pytest.approx(0.01)
    model = torch.nn.Conv1d(2, 2, 1)
    optimizer, scheduler = make_optimizer(model, 1e-3, 0.05, 4, 12, 1e-8)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1e-3 * f for f in factors[:6]], rel=1e-6)


def test_ema_is_decay_times_average_plus_the_rest():
    model = torch.nn.Linear(2, 1)
    ema = ModelEMA(model, 0.9)
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()
    assert torch.allclose(ema.module.weight, 0.9 * before + 0.1 * model.weight)
    assert not ema.module.training
