"""Per-video inputs of TAL-Net: grid features, the grid, and the training targets of the SPN (anchor labels
and offsets, fixed for a video, computed once per row)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from talbench.errors import DataError
from talbench.runners.talnet.anchors import encode, inside_window, make_anchors
from talbench.runners.talnet.grid import Grid, grid_features, grid_geometry
from talbench.runners.talnet.sampling import label_anchors


class VideoFeatures:
    """Grid features of ``dataset``'s videos, computed on demand (the dataset caches the raw arrays) with numpy
    and moved to ``device`` (the row's): ``features(video, streams)`` -> stream -> ``(D, T_grid)`` float32."""

    def __init__(self, dataset, grid: str, cells_per_paper_cell: int, device: torch.device | str = "cpu"):
        self.dataset = dataset
        self.grid = grid
        self.window = int(cells_per_paper_cell)
        self.device = torch.device(device)

    def geometry(self, video_id: str) -> Grid:
        return grid_geometry(self.dataset.snippet_centers(video_id), self.grid, self.window)

    def features(self, video_id: str, streams) -> dict[str, torch.Tensor]:
        out = {}
        for stream in streams:
            array = grid_features(self.dataset.features(video_id, stream), self.grid, self.window)
            out[stream] = torch.from_numpy(np.ascontiguousarray(array.T)).to(self.device)
        return out

    def frames(self, video_id: str) -> float:
        """Frames of the video (duration x fps), the unit of table 8's running time."""
        return self.dataset.duration(video_id) * self.dataset.fps(video_id)


@dataclass(frozen=True)
class TrainVideo:
    """One training video: its grid, ground truth in grid coordinates with labels 1..C, and the SPN targets of
    its training anchors (those inside the video): indices into the ``(K T)`` anchor layout, labels
    (1, 0, -1 ignored) and offsets towards the matched ground truth (0 where not positive)."""

    video_id: str
    grid: Grid
    truth: np.ndarray
    truth_labels: np.ndarray
    anchor_index: np.ndarray
    anchor_labels: np.ndarray
    anchor_targets: np.ndarray


def prepare_training_video(video_id: str, grid: Grid, instances: pd.DataFrame, classes: list[str],
                           lengths: np.ndarray, positive_iou: float, negative_iou: float) -> TrainVideo:
    """Targets of one video from its ``instances`` (``label, start, end`` in seconds)."""
    truth = np.stack([grid.to_cells(instances["start"].to_numpy()), grid.to_cells(instances["end"].to_numpy())],
                     axis=1).reshape(-1, 2)
    labels = pd.Index(classes).get_indexer(instances["label"]).astype(np.int64) + 1
    if np.any(labels < 1):
        raise DataError(f"video '{video_id}', field 'label': a ground-truth label is not among the dataset's classes")
    anchors = make_anchors(grid.cells, lengths)
    index = np.flatnonzero(inside_window(anchors, grid.cells))
    assignment = label_anchors(anchors[index], truth, positive_iou, negative_iou)
    targets = np.zeros((index.size, 2), np.float32)
    positive = assignment.labels == 1
    if positive.any():
        targets[positive] = encode(torch.from_numpy(truth[assignment.matched[positive]]),
                                   torch.from_numpy(anchors[index[positive]])).numpy()
    return TrainVideo(video_id, grid, truth, labels, index, assignment.labels, targets)
