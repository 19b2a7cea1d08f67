"""SoI pooling: Fast R-CNN RoI max pooling [Girshick 2015, sec. 2.1] in one dimension, as TAL-Net (CVPR 2018,
sec. 4.2, fig. 5) pools a fixed-size feature map from each segment proposal.

Segments are given in continuous cell coordinates of a 1-D feature map of ``T`` cells: cell ``j`` covers
``[j, j + 1)``. As Fast R-CNN's ``roi_pooling_layer`` does with pixel boxes, a segment ``[x1, x2]`` is first
rounded to whole cells (halves up): it covers cells ``[a, b)`` with ``a = round(x1)``, ``b = max(round(x2),
a + 1)``, ``L = b - a``; bin ``p`` of ``P`` covers cells ``[a + floor(p L / P), a + ceil((p + 1) L / P))``
(adjacent bins share a cell when ``L`` is not a multiple of ``P``, and a segment shorter than ``P`` cells
repeats cells across bins), clipped to ``[0, T)``; each bin is max-pooled and a bin with no cell inside the
map is 0 (Fast R-CNN's ``is_empty``). Bins are computed on the unclipped segment, so a segment extended past
the video keeps its bin layout (its outside bins are 0), which is what the context extension of fig. 5
(bottom) needs.

The maxima come from a sparse table of the map (range-maximum queries): level ``k`` holds the maximum, and
its first cell, of every run of ``2^k`` cells; a bin of ``w`` cells is the better of the two level-``floor(log2
w)`` runs that start at its first cell and end at its last (the earlier one on ties, so the first maximal cell
of the bin). The cost is ``O(D T log(longest bin) + D N P)`` whatever the segments' lengths, instead of the
``O(D N P w)`` of gathering every bin's cells. As in Fast R-CNN's RoI pooling, the gradient flows to the argmax
cell of each bin only.

The class does the pooling on one video's map (TAL-Net trains on one video per mini-batch); the extension
of a proposal by its temporal context is its caller's business (:class:`talbench.models.talnet.classifier`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def soi_bins(segments: torch.Tensor, num_cells: int, output_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell ranges ``[lo, hi)`` ``(N, P)`` (int64, clipped to ``[0, T)``) of the ``P`` bins of each segment."""
    start = torch.floor(segments[:, 0] + 0.5).long()
    end = torch.maximum(torch.floor(segments[:, 1] + 0.5).long(), start + 1)
    length = (end - start)[:, None]
    p = torch.arange(output_size, device=segments.device)[None, :]
    lo = start[:, None] + torch.div(p * length, output_size, rounding_mode="floor")
    hi = start[:, None] - torch.div(-(p + 1) * length, output_size, rounding_mode="floor")  # ceil
    return lo.clamp(0, num_cells), hi.clamp(0, num_cells)


class SoIPool1d(nn.Module):
    """``features (D, T)`` + ``segments (N, 2)`` (cell coordinates) -> ``(N, D, output_size)``.

    ``chunk`` channels are pooled at a time (the sparse table of a chunk holds ``chunk x T x log2(longest bin)``
    values and positions), so that long maps of many channels stay within memory; the result does not depend on
    it.
    """

    def __init__(self, output_size: int = 7, chunk: int = 256):
        super().__init__()
        if output_size < 1:
            raise ValueError(f"SoIPool1d needs at least one bin, got {output_size}")
        if chunk < 1:
            raise ValueError(f"SoIPool1d chunk must be positive, got {chunk}")
        self.output_size = int(output_size)
        self.chunk = int(chunk)

    def forward(self, features: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or segments.dim() != 2 or segments.shape[1] != 2:
            raise ValueError(f"SoIPool1d expects features (D, T) and segments (N, 2), got "
                             f"{tuple(features.shape)} and {tuple(segments.shape)}")
        dim, cells = features.shape
        lo, hi = soi_bins(segments.to(features.dtype), cells, self.output_size)
        width = hi - lo  # (N, P), 0 = empty bin
        level = torch.floor(torch.log2(width.clamp(min=1).to(torch.float64))).long()  # exact for these integers
        first, second = lo, (hi - (1 << level)).clamp(min=0)  # the two runs of 2^level cells covering the bin
        with torch.no_grad():
            position = torch.cat([self._argmax(features[c:c + self.chunk].detach(), level, first, second)
                                  for c in range(0, dim, self.chunk)], dim=-1)  # (N, P, D)
        channel = torch.arange(dim, device=features.device)
        pooled = features.t()[position, channel]  # (N, P, D): the gradient reaches the argmax cells only
        pooled = torch.where((width > 0)[..., None], pooled, torch.zeros((), dtype=pooled.dtype,
                                                                          device=pooled.device))
        return pooled.permute(0, 2, 1)

    @staticmethod
    def _argmax(features: torch.Tensor, level: torch.Tensor, first: torch.Tensor,
                second: torch.Tensor) -> torch.Tensor:
        """The first maximal cell ``(N, P, D')`` of every bin and channel of ``features (D', T)``."""
        values = features.t()  # (T, D')
        positions = torch.arange(values.shape[0], device=values.device)[:, None].expand_as(values)
        table_values, table_positions = [values], [positions]
        for k in range(1, int(level.max()) + 1 if level.numel() else 1):
            step = 1 << (k - 1)
            left_v, right_v = table_values[-1][:-step], table_values[-1][step:]
            right = right_v > left_v  # ties: the earlier run
            table_values.append(torch.where(right, right_v, left_v))
            table_positions.append(torch.where(right, table_positions[-1][step:], table_positions[-1][:-step]))
        rows = values.shape[0]
        padded_v = torch.stack([F.pad(v, (0, 0, 0, rows - len(v)), value=-math.inf) for v in table_values])
        padded_p = torch.stack([F.pad(p, (0, 0, 0, rows - len(p))) for p in table_positions])
        first, second = first.clamp(max=rows - 1), second.clamp(max=rows - 1)
        take_second = padded_v[level, second] > padded_v[level, first]
        return torch.where(take_second, padded_p[level, second], padded_p[level, first])

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, chunk={self.chunk}"
