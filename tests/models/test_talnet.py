"""TAL-Net's network (talbench/models/talnet): receptive fields of the SPN towers against the paper's arithmetic
(sec. 4.1-4.2), the classifier with and without context (sec. 4.2, fig. 5), early vs late fusion (sec. 4.3), the
losses of supplementary eq. 1 and the parameter counts of each variant at the paper's sizes."""

from __future__ import annotations

import math

import pytest
import torch

from talbench.config import load_params
from talbench.models import count_parameters
from talbench.models.talnet.classifier import ActionClassifier, context_extent
from talbench.models.talnet.losses import class_offsets, multitask_loss
from talbench.models.talnet.network import LateFusionTALNet, TALNet, parameter_counts
from talbench.models.talnet.spn import Tower, TowerSpec, tower_specs, units_per_paper_cell

SCALES = [1, 2, 3, 4, 5, 6, 8, 11, 16]


def measured_receptive_field(tower: Tower, width: int) -> tuple[int, int]:
    """(first, last) input offset, relative to the output cell, that changes the tower's outputs there: every
    weight made positive and the inputs positive, so no ReLU is dead and a large bump anywhere in a max-pool
    window becomes its maximum; one input per perturbed position, all in one batch."""
    pool, dilations = tower.spec.pool, tower.spec.dilations
    reach = pool + 2 * sum(dilations) + 2
    cells = 2 * reach + 1
    center = reach
    with torch.no_grad():
        for p in tower.parameters():
            p.abs_()
        base = torch.rand(1, width, cells, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        bumped = base.repeat(cells, 1, 1)
        bumped[torch.arange(cells), :, torch.arange(cells)] += 50.0
        batch = torch.cat([base, bumped])
        cls, reg = tower(batch)
        out = torch.cat([cls[:, :, center].flatten(1), reg[:, :, center].flatten(1)], dim=1)
        changed = ((out[1:] - out[0]).abs() > 1e-9).any(dim=1).nonzero().flatten()
    return int(changed.min()) - center, int(changed.max()) - center


def round_half_up(x: float) -> int:
    return max(1, math.floor(x + 0.5))


@pytest.mark.parametrize("context", [False, True])
def test_dilated_towers_on_the_native_grid_cover_s_plus_one_or_two_s_plus_one(context):
    """Native grid, u = 12 suite cells per TAL-Net cell (30 fps): S = 12 s, pool r1 = S/6, r2 = 2 S/6 (doubled
    with context, sec. 4.2); the convs see 1 + 2 r1 + 2 r2 = S + 1 cells (2 S + 1), the max-pool adds its
    kernel - 1. Measured at u = 6 (the same rule, a quarter of the work) for every scale."""
    factor = 2 if context else 1
    spans12 = [s.pool for s in tower_specs("multi_dilated", context, SCALES, 12)]
    assert spans12 == [2 * factor * s for s in SCALES]  # r1 = 2 s, r2 = 4 s, pool 2 s (facts note, sec. 6)
    unit, width = 6, 3
    for scale, spec in zip(SCALES, tower_specs("multi_dilated", context, SCALES, unit)):
        span = scale * unit
        pool = factor * span // 6
        assert spec.pool == pool and spec.dilations == (pool, 2 * pool)
        first, last = measured_receptive_field(Tower(spec, width).double(), width)
        conv = factor * span + 1
        assert last - first + 1 == pool - 1 + conv == spec.receptive_field, scale
        # centred on the anchor (an even pool kernel shifts the window half a cell to the right)
        assert (first, last) == (-(conv // 2) - (pool - 1) // 2, conv // 2 + pool // 2), scale


@pytest.mark.parametrize("context", [False, True])
def test_dilated_towers_on_the_pooled_grid_round_s_over_6(context):
    """Pooled grid (0.625 fps): lengths f s/6 and 2 f s/6 rounded to the nearest integer, halves up, >= 1."""
    factor, width = (2 if context else 1), 3
    specs = tower_specs("multi_dilated", context, SCALES, 1)
    expected_r1 = [round_half_up(factor * s / 6) for s in SCALES]
    expected_r2 = [round_half_up(2 * factor * s / 6) for s in SCALES]
    assert [s.pool for s in specs] == expected_r1
    assert [s.dilations for s in specs] == list(zip(expected_r1, expected_r2))
    if not context:
        assert expected_r1 == [1, 1, 1, 1, 1, 1, 1, 2, 3] and expected_r2 == [1, 1, 1, 1, 2, 2, 3, 4, 5]
    for spec in specs:
        first, last = measured_receptive_field(Tower(spec, width).double(), width)
        assert last - first + 1 == spec.pool - 1 + 1 + 2 * sum(spec.dilations) == spec.receptive_field


@pytest.mark.parametrize("unit", [1, 12])
def test_baseline_towers_of_table_1(unit):
    """Single: the feature at the anchor's centre only; (Single|Multi)+TConv: two k=3 convs, one TAL-Net cell
    per tap (dilation u), receptive field 1 + 4 u; one tower for all K scales or one per scale."""
    width = 3
    single = tower_specs("single", False, SCALES, unit)
    assert len(single) == 1 and single[0].anchors == len(SCALES)
    assert measured_receptive_field(Tower(single[0], width).double(), width) == (0, 0)
    tconv = tower_specs("single_tconv", False, SCALES, unit)
    assert len(tconv) == 1 and tconv[0].anchors == len(SCALES)
    assert measured_receptive_field(Tower(tconv[0], width).double(), width) == (-2 * unit, 2 * unit)
    multi = tower_specs("multi_tconv", False, SCALES, unit)
    assert len(multi) == len(SCALES) and all(s == TowerSpec(1, (unit, unit), 1) for s in multi)
    with pytest.raises(ValueError, match="context"):
        tower_specs("multi_tconv", True, SCALES, unit)
    with pytest.raises(ValueError, match="architecture"):
        tower_specs("dilated", False, SCALES, unit)


def test_classifier_with_context_pools_the_extended_proposal():
    torch.manual_seed(0)
    with_context = ActionClassifier(6, 3, context=True, bins=7, width=8)
    without = ActionClassifier(6, 3, context=False, bins=7, width=8)
    without.load_state_dict(with_context.state_dict())
    features = torch.randn(6, 40)
    proposals = torch.tensor([[10.0, 16.0], [0.0, 4.0], [30.0, 39.5]])
    cls, reg = with_context(features, proposals)
    assert cls.shape == (3, 4) and reg.shape == (3, 3, 2)
    same = without(features, context_extent(proposals))
    assert torch.allclose(cls, same[0]) and torch.allclose(reg, same[1])
    assert not torch.allclose(cls, without(features, proposals)[0])


def test_early_and_late_fusion_shapes_and_averaging():
    dim, classes, cells, unit = 5, 3, 50, 2
    kwargs = {"scales": [1, 2, 4], "unit": unit, "width": 8}
    torch.manual_seed(0)
    rgb, flow = TALNet(dim, classes, "rgb", **kwargs), TALNet(dim, classes, "flow", **kwargs)
    early = TALNet(2 * dim, classes, "both", **kwargs)
    features = {"rgb": torch.randn(dim, cells), "flow": torch.randn(dim, cells)}
    features["both"] = torch.cat([features["rgb"], features["flow"]])
    late = LateFusionTALNet({"rgb": rgb, "flow": flow})
    assert late.streams == ("rgb", "flow") and early.streams == ("both",)
    proposals = torch.tensor([[3.0, 9.0], [20.0, 41.0]])
    for model in (early, late):
        logits, offsets = model.propose(features)
        assert logits.shape == offsets.shape == (3, cells, 2)
        cls, reg = model.classify(features, proposals)
        assert cls.shape == (2, classes + 1) and reg.shape == (2, classes, 2)
    for fused, parts in ((late.propose(features), [rgb.propose(features), flow.propose(features)]),
                         (late.classify(features, proposals),
                          [rgb.classify(features, proposals), flow.classify(features, proposals)])):
        for i in range(2):
            assert torch.allclose(fused[i], 0.5 * (parts[0][i] + parts[1][i]))
    # the early-fusion network reads the concatenated map: its first layers are twice as wide
    assert early.spn.reduce.weight.shape == (8, 2 * dim, 1) and early.classifier.reduce.weight.shape == (8, 2 * dim, 1)


def test_multitask_loss_on_a_hand_case():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    labels = torch.tensor([1, 0])
    offsets = torch.tensor([[0.5, 2.0], [9.0, 9.0]])  # the negative's offsets are not regressed
    targets = torch.zeros(2, 2)
    cls, reg = multitask_loss(logits, labels, offsets, targets)
    assert float(cls) == pytest.approx((math.log(2) + math.log(1 + math.exp(-2))) / 2)
    assert float(reg) == pytest.approx((0.5 * 0.25 + (2.0 - 0.5)) / 2)
    assert float(multitask_loss(logits, labels, offsets, targets, reg_weight=3.0)[1]) == pytest.approx(3 * float(reg))
    # smooth L1 (Fast R-CNN): 0.5 x^2 below 1, |x| - 0.5 above
    far = multitask_loss(logits[:1], labels[:1], torch.tensor([[-3.0, 0.0]]), torch.zeros(1, 2))[1]
    assert float(far) == pytest.approx(2.5)
    per_class = torch.arange(12.0).view(2, 3, 2)
    assert class_offsets(per_class, torch.tensor([3, 0])).tolist() == [[4.0, 5.0], [6.0, 7.0]]


def expected_parameters(dim: int, classes: int, architecture: str, k: int = 9, w: int = 256, bins: int = 7) -> int:
    """Counted by hand from the architecture (sec. 4 and "Implementation Details")."""
    conv1x1 = dim * w + w
    conv3 = 3 * w * w + w

    def heads(anchors: int) -> int:  # 1x1 classification (2 logits) and regression (2 offsets) per anchor
        return 2 * (w * 2 * anchors + 2 * anchors)

    towers = {"single": heads(k), "single_tconv": 2 * conv3 + heads(k),
              "multi_tconv": k * (2 * conv3 + heads(1)), "multi_dilated": k * (2 * conv3 + heads(1))}
    spn = conv1x1 + towers[architecture]
    classifier = conv1x1 + (w * bins * w + w) + (w * (classes + 1) + classes + 1) + (w * 2 * classes + 2 * classes)
    return spn + classifier


@pytest.mark.parametrize("architecture", ["single", "single_tconv", "multi_tconv", "multi_dilated"])
def test_parameter_counts_per_variant(architecture):
    """At the paper's sizes: I3D 1024-d per stream, THUMOS14's 20 classes, 9 scales, 256 filters, SoI size 7."""
    def network(dim: int, stream: str) -> TALNet:
        with torch.device("meta"):
            return TALNet(dim, 20, stream, scales=SCALES, unit=12, architecture=architecture,
                          spn_context=architecture == "multi_dilated")

    rgb, flow = network(1024, "rgb"), network(1024, "flow")
    assert count_parameters(rgb) == expected_parameters(1024, 20, architecture)
    assert count_parameters(LateFusionTALNet({"rgb": rgb, "flow": flow})) == 2 * count_parameters(rgb)
    assert count_parameters(network(2048, "both")) == expected_parameters(2048, 20, architecture)
    # TAL-Net prints no parameter count; these are the hand counts above, spelled out
    single_stream = {"single": 1_008_737, "single_tconv": 1_402_465, "multi_tconv": 4_552_289,
                     "multi_dilated": 4_552_289}
    assert count_parameters(rgb) == single_stream[architecture]
    assert count_parameters(rgb.classifier) == 737_085  # the same classifier in every variant


def test_parameter_counts_of_the_params_yaml_model():
    """params.yaml's talnet section is the paper's model: the counts the runner reports as params_m."""
    counts = parameter_counts(load_params()["talnet"])
    assert counts == {"spn": 3_815_204, "classifier": 737_085, "rgb": 4_552_289, "flow": 4_552_289,
                      "early": 4_552_289 + 2 * 1024 * 256, "late": 2 * 4_552_289}
    assert units_per_paper_cell("native", 12) == 12 and units_per_paper_cell("pooled", 12) == 1
    with pytest.raises(ValueError, match="grid"):
        units_per_paper_cell("dense", 12)
