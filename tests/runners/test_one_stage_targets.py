"""Label assignment of the one-stage detectors against hand-worked cases."""

from __future__ import annotations

import torch

from talbench.runners.one_stage.targets import THUMOS14_REGRESSION_RANGES, assign_targets, point_grid


def test_point_grid():
    grid = point_grid([4, 2], [1, 2], [(0, 4), (4, 8)])
    assert grid.positions.tolist() == [0, 1, 2, 3, 0, 2]
    assert grid.strides.tolist() == [1, 1, 1, 1, 2, 2]
    assert grid.range_high.tolist() == [4, 4, 4, 4, 8, 8]


def test_centre_sampling_and_regression_range():
    """GT [2, 6], class 1: centre 4, radius 1.5 x stride 1 -> strictly inside (2.5, 5.5): t = 3, 4, 5 on level 0;
    on level 1 (stride 2, radius 3 -> (2, 6)) only t = 4 is inside, but its distance 2 is outside [4, 8]."""
    grid = point_grid([10, 5], [1, 2], THUMOS14_REGRESSION_RANGES[:2])
    cls, reg = assign_targets(grid, [torch.tensor([[2.0, 6.0]])], [torch.tensor([1])], num_classes=3)
    assert cls.shape == (1, 15, 3) and reg.shape == (1, 15, 2)
    positive = cls[0].sum(-1) > 0
    assert positive.nonzero().flatten().tolist() == [3, 4, 5]
    assert (cls[0, positive] == torch.tensor([0.0, 1.0, 0.0])).all()
    assert reg[0, 3].tolist() == [1.0, 3.0] and reg[0, 5].tolist() == [3.0, 1.0]
    no_centre, _ = assign_targets(
        grid, [torch.tensor([[2.0, 6.0]])], [torch.tensor([1])], 3, center_sample_radius=None
    )
    assert (no_centre[0].sum(-1) > 0).nonzero().flatten().tolist() == [3, 4, 5]  # inside (2, 6), reach <= 4


def test_regression_targets_are_divided_by_the_stride():
    grid = point_grid([8], [2], [(4, 8)])  # points 0, 2, ..., 14
    cls, reg = assign_targets(grid, [torch.tensor([[3.0, 13.0]])], [torch.tensor([0])], 1)
    # centre 8, radius 3 -> (5, 11): t = 6, 8, 10; reach 7, 5, 7 within [4, 8]
    assert (cls[0, :, 0] > 0).nonzero().flatten().tolist() == [3, 4, 5]
    assert reg[0, 4].tolist() == [2.5, 2.5]


def test_shortest_ground_truth_wins_and_ties_are_multi_label():
    grid = point_grid([12], [1], [(0, 10000)])
    segments = torch.tensor([[0.0, 10.0], [4.0, 7.0], [4.0, 7.0005], [5.0, 5.5]])
    cls, reg = assign_targets(grid, [segments], [torch.tensor([0, 1, 2, 3])], 4, center_sample_radius=None)
    assert cls[0, 2].tolist() == [1.0, 0.0, 0.0, 0.0]  # only inside the long one
    assert cls[0, 5].tolist() == [
        0.0,
        1.0,
        1.0,
        0.0,
    ]  # two near-identical shortest ones (the 0.5 one excludes t=5)
    assert reg[0, 5].tolist() == [1.0, 2.0]
    assert cls[0, 11].sum() == 0


def test_batch_of_videos_with_different_numbers_of_actions():
    grid = point_grid([10], [1], [(0, 10000)])
    one = (torch.tensor([[2.0, 6.0]]), torch.tensor([1]))
    two = (torch.tensor([[1.0, 3.0], [5.0, 9.0]]), torch.tensor([0, 2]))
    cls, reg = assign_targets(grid, [one[0], two[0]], [one[1], two[1]], 3)
    for b, video in enumerate((one, two)):
        alone_cls, alone_reg = assign_targets(grid, [video[0]], [video[1]], 3)
        assert torch.equal(cls[b], alone_cls[0])
        positive = alone_cls[0].sum(-1) > 0
        assert torch.equal(reg[b, positive], alone_reg[0, positive])
    empty_cls, empty_reg = assign_targets(grid, [torch.zeros(0, 2)], [torch.zeros(0, dtype=torch.long)], 3)
    assert empty_cls.abs().sum() == 0 and empty_reg.shape == (1, 10, 2)


def test_regression_ranges_double_and_leave_the_last_level_open():
    from talbench.runners.one_stage.targets import regression_ranges

    assert regression_ranges(6) == [tuple(map(float, r)) for r in THUMOS14_REGRESSION_RANGES]
    assert regression_ranges(1) == [(0.0, 10000.0)]
    assert regression_ranges(8)[-2:] == [(128.0, 256.0), (256.0, 10000.0)]


def test_least_cost_regression_target_among_containing_ground_truths():
    """A point inside a long and a short ground truth: the shortest gives the class targets, but TemporalMaxer's
    regression target is the one of least cost; outside both, the first one's distances are left."""
    from talbench.runners.one_stage.targets import min_cost_regression_targets

    grid = point_grid([10], [1], [(0, 10000)])
    segments = [torch.tensor([[0.0, 9.0], [3.0, 6.0]])]
    labels = [torch.tensor([0, 1])]
    logits = torch.zeros(1, 10, 2)
    offsets = torch.zeros(1, 10, 2)
    offsets[0, 4] = torch.tensor([4.0, 5.0])  # predicts the long one exactly: DIoU cost 0 for it
    reg = min_cost_regression_targets(grid, segments, labels, logits, offsets)
    assert reg[0, 4].tolist() == [4.0, 5.0]
    offsets[0, 4] = torch.tensor([1.0, 2.0])  # now the short one
    assert min_cost_regression_targets(grid, segments, labels, logits, offsets)[0, 4].tolist() == [1.0, 2.0]
    # the class cost decides when the offsets fit both equally: a confident class-1 logit picks the short one
    offsets[0, 4] = torch.tensor([2.5, 3.5])
    logits[0, 4] = torch.tensor([-5.0, 5.0])
    assert min_cost_regression_targets(grid, segments, labels, logits, offsets)[0, 4].tolist() == [1.0, 2.0]
    assert reg[0, 9].tolist() == [9.0, 0.0]  # t = 9: inside the first only (right distance 0 counts as inside)
