"""TAL-Net's feature grid (``talnet.grid``).

TAL-Net's feature map is sampled at 0.625 fps: one cell per 16-frame stack at 10 fps, 1.6 s (sec. 5
"Features"). This suite's features are 16-frame I3D clips every 4 frames at the video's fps, 7.5 cells/s at
30 fps, so ``u = cells_per_paper_cell`` (12 at 30 fps) suite cells span one TAL-Net cell. Both grids describe
each cell by the average of ``u`` consecutive suite cells (a feature of 1.6 s, as the paper's) and differ in
the stride:

* ``pooled``: stride ``u``, the paper's 0.625 fps grid itself. The towers then need TAL-Net's non-integral
  lengths ``s/6`` rounded (:mod:`talbench.models.talnet.spn`); anchors have the paper's density, with the AR
  ceiling at high AN that the paper notes (sec. 5).
* ``native``: stride 1, the same 1.6 s average centred at every suite cell, and every temporal length of the
  network (anchor spans, dilations, pooling kernels) multiplied by ``u``: the dilation rule is integral
  (``r1 = u s / 6 = 2 s`` at ``u = 12``), every tower's receptive field is exactly the paper's in seconds,
  and anchors sit at the suite's full temporal resolution (12 times as many; a training step costs about 10
  times the pooled one's).

The window of grid cell ``j`` is suite cells ``[j u, j u + u)`` (pooled) or ``[j - u//2, j - u//2 + u)``
(native), clipped to the video (the last pooled cell and the native cells at the borders average fewer
cells). Cell ``j`` of either grid covers ``[j, j + 1)`` in grid coordinates and is centred at
``first_center + j * step`` seconds (the centre of its full window), so a coordinate ``x`` is at
``first_center + (x - 0.5) step`` seconds. Anchors, proposals, SoI pooling and box coding work in grid
coordinates; seconds appear only at the output. At other frame rates one grid cell is still ``u`` suite cells
(``4 u`` frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talbench.models.talnet.spn import units_per_paper_cell


@dataclass(frozen=True)
class Grid:
    """A video's grid: ``cells`` cells of ``step`` seconds, cell ``j`` centred at ``first_center + j step``."""

    cells: int
    first_center: float
    step: float

    def to_seconds(self, x: np.ndarray) -> np.ndarray:
        """Grid coordinates (cell ``j`` covers ``[j, j + 1)``) -> seconds."""
        return self.first_center + (np.asarray(x, dtype=np.float64) - 0.5) * self.step

    def to_cells(self, t: np.ndarray) -> np.ndarray:
        """Seconds -> grid coordinates."""
        return (np.asarray(t, dtype=np.float64) - self.first_center) / self.step + 0.5


def window_means(features: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``features[max(0, a) : min(T, a + window)]`` for every start ``a`` (prefix sums in float64)."""
    cells = features.shape[0]
    prefix = np.zeros((cells + 1, features.shape[1]), dtype=np.float64)
    np.cumsum(features, axis=0, dtype=np.float64, out=prefix[1:])
    lo, hi = np.clip(starts, 0, cells), np.clip(starts + window, 0, cells)
    return ((prefix[hi] - prefix[lo]) / (hi - lo)[:, None]).astype(np.float32)


def grid_features(features: np.ndarray, grid: str, cells_per_paper_cell: int) -> np.ndarray:
    """``(T, D)`` suite features -> ``(T_grid, D)`` grid features (see the module docstring)."""
    units_per_paper_cell(grid, cells_per_paper_cell)
    window, cells = int(cells_per_paper_cell), features.shape[0]
    starts = np.arange(0, cells, window) if grid == "pooled" else np.arange(cells) - window // 2
    return window_means(features, starts, window)


def grid_geometry(centers: np.ndarray, grid: str, cells_per_paper_cell: int) -> Grid:
    """The grid of a video whose suite cells are centred at ``centers`` (uniform, seconds, at least two)."""
    units_per_paper_cell(grid, cells_per_paper_cell)
    window = int(cells_per_paper_cell)
    centers = np.asarray(centers, dtype=np.float64)
    if centers.size < 2:
        raise ValueError("grid_geometry needs at least two feature cells")
    delta = float(centers[1] - centers[0])
    if grid == "pooled":
        return Grid(-(-centers.size // window), float(centers[0] + 0.5 * (window - 1) * delta), window * delta)
    offset = 0.5 * (window - 1) - window // 2  # the window of cell j starts at suite cell j - window // 2
    return Grid(int(centers.size), float(centers[0] + offset * delta), delta)
