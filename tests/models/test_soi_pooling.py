"""SoI pooling (TAL-Net sec. 4.2, fig. 5): Fast R-CNN RoI max pooling in one dimension on a feature map."""

from __future__ import annotations

import pytest
import torch

from talbench.models.blocks.soi_pooling import SoIPool1d, soi_bins
from talbench.models.talnet.classifier import context_extent


def test_soi_pooling_bins_and_context():
    features = torch.arange(20, dtype=torch.float64)[None]  # one channel, value = cell index
    pool = SoIPool1d(output_size=7)
    # [2, 9): 7 cells, one per bin
    assert pool(features, torch.tensor([[2.0, 9.0]], dtype=torch.float64))[0, 0].tolist() == [2, 3, 4, 5, 6, 7, 8]
    # with context (fig. 5 bottom): [2 - 3.5, 9 + 3.5] -> cells [-1, 13) -> bins of 2 cells, the first one
    # half outside the video; bin maxima at its last cell
    extent = context_extent(torch.tensor([[2.0, 9.0]], dtype=torch.float64))
    assert extent.tolist() == [[-1.5, 12.5]]
    assert pool(features, extent)[0, 0].tolist() == [0, 2, 4, 6, 8, 10, 12]
    # a 3-cell segment repeats cells across 7 bins (floor / ceil bounds); fully outside: zeros
    assert pool(features, torch.tensor([[5.0, 8.0]], dtype=torch.float64))[0, 0].tolist() == [5, 5, 6, 6, 7, 7, 7]
    assert pool(features, torch.tensor([[25.0, 30.0]], dtype=torch.float64)).abs().sum() == 0
    # chunking does not change the result; gradients reach the argmax cells only
    x = torch.randn(4, 30, dtype=torch.float64, requires_grad=True)
    segments = torch.tensor([[0.0, 30.0], [3.2, 11.7], [-5.0, 4.0], [10.0, 10.2]], dtype=torch.float64)
    out = SoIPool1d(7, chunk=1)(x, segments)
    assert torch.equal(out, SoIPool1d(7, chunk=64)(x, segments))
    out.sum().backward()
    lo, hi = soi_bins(segments, 30, 7)
    assert (hi > lo).sum() == 4 * 7 - 3  # [-5, 4] -> cells [-5, 4): its first three bins lie before the video
    assert float(x.grad.sum()) == 4 * (4 * 7 - 3) and torch.all(x.grad >= 0)



def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one bin"):
        SoIPool1d(0)
    with pytest.raises(ValueError, match=r"features \(D, T\) and segments \(N, 2\)"):
        SoIPool1d(7)(torch.zeros(3, 10), torch.zeros(4, 3))


def test_sparse_table_maxima_equal_the_per_bin_loop():
    """Random maps with ties (values on a coarse grid) and segments of every length, inside, across and outside
    the map: each bin is the maximum of its cells, and its gradient goes to the first maximal cell."""
    generator = torch.Generator().manual_seed(0)
    for cells, bins in ((1, 7), (9, 7), (40, 7), (130, 3)):
        features = (torch.randint(0, 5, (3, cells), generator=generator) / 4).double().requires_grad_(True)
        centers = torch.rand(60, generator=generator, dtype=torch.float64) * (cells + 10) - 5
        halves = torch.rand(60, generator=generator, dtype=torch.float64) ** 2 * cells + 0.01
        segments = torch.stack([centers - halves, centers + halves], dim=1)
        out = SoIPool1d(bins, chunk=2)(features, segments)
        out.sum().backward()
        lo, hi = soi_bins(segments, cells, bins)
        expected = torch.zeros_like(out)
        grad = torch.zeros_like(features)
        for n in range(len(segments)):
            for p in range(bins):
                if hi[n, p] > lo[n, p]:
                    window = features.detach()[:, lo[n, p]:hi[n, p]]
                    expected[n, :, p] = window.max(dim=1).values
                    first = window.argmax(dim=1) + lo[n, p]  # torch: the first maximal index
                    grad[torch.arange(3), first] += 1
        assert torch.equal(out, expected), cells
        assert torch.equal(features.grad, grad), cells
