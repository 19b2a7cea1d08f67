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

The class does the pooling on one video's map (TAL-Net trains on one video per mini-batch); the extension
of a proposal by its temporal context is its caller's business (:class:`talbench.models.talnet.ActionClassifier`).
"""

from __future__ import annotations

import torch
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

    ``chunk`` segments are pooled at a time (finding the maxima holds ``chunk x P x longest bin x D`` values,
    without gradient), so long proposals on dense grids stay within memory; the result does not depend on it.
    """

    def __init__(self, output_size: int = 7, chunk: int = 64):
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
        pieces = []
        for first in range(0, segments.shape[0], self.chunk):
            pieces.append(self._pool(features, lo[first:first + self.chunk], hi[first:first + self.chunk]))
        if not pieces:
            return features.new_zeros((0, dim, self.output_size))
        return torch.cat(pieces)

    def _pool(self, features: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        dim, cells = features.shape
        width = hi - lo  # (n, P), 0 = empty bin
        offset = torch.arange(max(int(width.max()), 1), device=lo.device)
        # positions past a bin's end repeat its first cell: the max is unchanged
        index = (lo[..., None] + torch.where(offset < width[..., None], offset, 0)).clamp(max=cells - 1)
        with torch.no_grad():  # the argmax cell of every bin and channel (first one on ties)
            arg = features.detach()[:, index].argmax(dim=-1, keepdim=True)  # (D, n, P, 1)
            position = torch.gather(index.expand(dim, *index.shape), -1, arg).squeeze(-1)
        # as Fast R-CNN's RoI pooling, the gradient flows to the argmax cell only
        pooled = features[torch.arange(dim, device=features.device)[:, None, None], position]  # (D, n, P)
        pooled = torch.where((width > 0)[None], pooled, torch.zeros((), dtype=pooled.dtype, device=pooled.device))
        return pooled.permute(1, 0, 2)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, chunk={self.chunk}"
