"""Temporal RoI pooling (RefactorNet sec. 5.2): bins of a padded, variable-length snippet set."""

import pytest
import torch

from talbench.models.blocks.roi_pooling import TemporalRoIPool


def test_bins_split_the_valid_snippets_in_order():
    x = torch.tensor([[1.0, 5.0, 2.0, 7.0, 3.0, 0.0, 0.0, 0.0],   # 5 valid snippets
                      [4.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).unsqueeze(-1)  # 2 valid snippets
    mask = torch.tensor([[True] * 5 + [False] * 3, [True] * 2 + [False] * 6])
    out = TemporalRoIPool(2)(x, mask)
    # 5 snippets -> bins [0, 3) and [2, 5) (floor / ceil), 2 snippets -> [0, 1) and [1, 2)
    assert out.tolist() == [[5.0, 7.0], [4.0, 9.0]]


def test_short_region_repeats_its_snippet_and_padding_is_ignored():
    x = torch.tensor([[[2.0, -1.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, False]])
    out = TemporalRoIPool(4)(x, mask)
    assert out.shape == (1, 8) and out.tolist() == [[2.0, -1.0] * 4]


def test_needs_a_bin():
    with pytest.raises(ValueError, match="bin"):
        TemporalRoIPool(0)
