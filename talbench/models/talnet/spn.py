"""TAL-Net's Segment Proposal Network (sec. 4.1-4.2, figs. 2-4): a 1x1 reduction to 256 channels, then the
towers that classify and regress the K anchors at every cell.

The tower variants (table 1; "all temporal ConvNets have two layers, both with kernel size 3") and their
lengths in grid cells, ``u`` being the grid cells per TAL-Net cell (:func:`units_per_paper_cell`) and
``S = s u`` the span of an anchor of scale ``s``:

* ``single``: one tower without temporal convolution; 1x1 heads on the reduced feature classify the K anchors
  of a cell from the feature at its centre only;
* ``single_tconv``: one tower of two non-dilated k=3 convs shared by the K anchors (default Faster R-CNN);
* ``multi_tconv``: K towers (one per scale) of two non-dilated k=3 convs;
* ``multi_dilated`` (proposed): K towers, max-pool kernel ``S/6``, dilations ``r1 = S/6``, ``r2 = 2 S/6``
  (sec. 4.1); with context (sec. 4.2, table 2) all three doubled. The convs' receptive field is then
  ``1 + 2 r1 + 2 r2 = S + 1`` (``2 S + 1`` with context); the max-pool adds ``kernel - 1``.

"Non-dilated" means one TAL-Net cell per tap: dilation ``u`` on the native grid (1 on the pooled one), so
that every variant sees the same seconds as in the paper. Where ``S/6`` is not an integer (the pooled grid,
``u = 1``), each length is rounded to the nearest integer, halves up, and at least 1 (the paper does not
say; for ``s = 1..16`` this gives pool = r1 = 1,1,1,1,1,1,1,2,3 and r2 = 1,1,1,1,2,2,3,4,5 without context).

Where the paper is silent, as the Faster R-CNN reference (the TF Object Detection API [P] is built on):
ReLU after every hidden conv (no normalisation), no activation on the heads; anchor classification is a
2-way softmax (background, action), the API's first stage; max-pooling at stride 1 padded with -inf,
``(k - 1) // 2`` cells before and ``k // 2`` after; convolutions zero-padded to keep ``T``; weights from a
truncated normal (std 0.01, cut at two std; the API's first-stage conv hyper-parameters, Faster R-CNN sec.
3.1.3), biases 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("single", "single_tconv", "multi_tconv", "multi_dilated")
GRIDS = ("native", "pooled")


def units_per_paper_cell(grid: str, cells_per_paper_cell: int) -> int:
    """Grid cells per TAL-Net cell: ``cells_per_paper_cell`` on the native grid, 1 on the pooled one
    (:mod:`talbench.runners.talnet.grid`)."""
    if grid not in GRIDS:
        raise ValueError(f"talnet.grid.mode must be one of {GRIDS}, got '{grid}'")
    if int(cells_per_paper_cell) < 1:
        raise ValueError(f"talnet.grid.cells_per_paper_cell must be a positive integer, got {cells_per_paper_cell}")
    return int(cells_per_paper_cell) if grid == "native" else 1


def paper_length(x: float) -> int:
    """A TAL-Net length in grid cells: rounded to the nearest integer (halves up), at least 1."""
    return max(1, math.floor(x + 0.5))


@dataclass(frozen=True)
class TowerSpec:
    """One temporal ConvNet of the SPN: max-pool kernel (1 = none), dilations of its k=3 convs (none for
    ``single``), and how many anchor scales its heads classify (1, or K for a single tower)."""

    pool: int
    dilations: tuple[int, ...]
    anchors: int

    @property
    def receptive_field(self) -> int:
        """Cells of the input that one output cell sees: the convs' ``1 + 2 sum(r)`` plus the pool's ``k - 1``."""
        return self.pool - 1 + 1 + 2 * sum(self.dilations)


def tower_specs(architecture: str, context: bool, scales, unit: int) -> list[TowerSpec]:
    """The towers of an SPN variant (see the module docstring) for anchor ``scales`` (TAL-Net cells) and
    ``unit`` grid cells per TAL-Net cell."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"SPN architecture must be one of {ARCHITECTURES}, got '{architecture}'")
    if context and architecture != "multi_dilated":
        raise ValueError(f"SPN context (sec. 4.2) doubles the dilations of multi_dilated towers; "
                         f"'{architecture}' has none")
    if architecture == "single":
        return [TowerSpec(1, (), len(scales))]
    if architecture == "single_tconv":
        return [TowerSpec(1, (unit, unit), len(scales))]
    if architecture == "multi_tconv":
        return [TowerSpec(1, (unit, unit), 1) for _ in scales]
    factor = 2 if context else 1
    specs = []
    for scale in scales:
        base = factor * scale * unit / 6
        specs.append(TowerSpec(paper_length(base), (paper_length(base), paper_length(2 * base)), 1))
    return specs


class Tower(nn.Module):
    """Fig. 3: max-pool -> k=3 convs -> 1x1 anchor classification (2 logits) and regression (2 offsets) per
    anchor scale. ``(B, W, T)`` -> ``(B, A, T, 2)`` twice."""

    def __init__(self, spec: TowerSpec, width: int):
        super().__init__()
        self.spec = spec
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, dilation=d, padding=d) for d in spec.dilations)
        self.cls = nn.Conv1d(width, 2 * spec.anchors, 1)
        self.reg = nn.Conv1d(width, 2 * spec.anchors, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool = self.spec.pool
        if pool > 1:
            x = F.max_pool1d(F.pad(x, ((pool - 1) // 2, pool // 2), value=-math.inf), pool, stride=1)
        for conv in self.convs:
            x = F.relu(conv(x))
        batch, _, cells = x.shape
        shape = (batch, self.spec.anchors, 2, cells)
        return self.cls(x).view(shape).transpose(2, 3), self.reg(x).view(shape).transpose(2, 3)


class SegmentProposalNetwork(nn.Module):
    """Sec. 4.1-4.2: 1x1 reduction to ``width`` ("Implementation Details"), then the towers; one video's
    ``(D, T)`` -> logits ``(K, T, 2)`` and offsets ``(K, T, 2)`` of the K anchors at each cell."""

    def __init__(self, in_dim: int, scales, unit: int, architecture: str = "multi_dilated", context: bool = True,
                 width: int = 256):
        super().__init__()
        self.specs = tower_specs(architecture, context, scales, unit)
        self.reduce = nn.Conv1d(in_dim, width, 1)
        self.towers = nn.ModuleList(Tower(spec, width) for spec in self.specs)
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.trunc_normal_(module.weight, std=0.01, a=-0.02, b=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.relu(self.reduce(features[None]))
        outputs = [tower(hidden) for tower in self.towers]
        return torch.cat([o[0] for o in outputs], dim=1)[0], torch.cat([o[1] for o in outputs], dim=1)[0]
