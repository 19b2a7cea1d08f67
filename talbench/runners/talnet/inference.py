"""TAL-Net inference on one video (sec. 4 "Implementation Details", the TF OD API's post-processing):

1. SPN logits and offsets of every anchor; at inference the anchors are clipped to the video (the API clips
   them instead of pruning them, as Faster R-CNN does);
2. proposals: offsets decoded against the anchors, clipped to the video, empty ones dropped, scored by the
   softmax probability of the action class, NMS at tIoU 0.7 keeping the top 300 (also the proposals the
   classifier trains on, :mod:`talbench.runners.talnet.train`);
3. classification: softmax over the C + 1 logits of each proposal, class-specific offsets decoded against the
   proposal and clipped; candidates scoring above ``score_threshold`` (0.0, the API's
   ``filter_greater_than``), NMS at tIoU 0.7 per class keeping ``max_per_class`` (100), then the
   ``max_per_video`` (300) best detections of the video (the API's Faster R-CNN post-processing settings).

The networks run on the device of the features (the row's), autocast by ``run.mixed_precision``; decoding is in
float32 there, NMS on the host (numpy, :mod:`talbench.ops.nms`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from talbench.ops.nms import batched_nms
from talbench.runners.common.device import autocast
from talbench.runners.talnet.anchors import clip_segments, decode


def generate_proposals(logits: torch.Tensor, offsets: torch.Tensor, anchors: torch.Tensor, cells: int,
                       nms_iou: float, max_proposals: int) -> tuple[torch.Tensor, np.ndarray]:
    """Proposals ``(P, 2)`` (grid coordinates, on the device of ``offsets``) and their scores from anchor logits
    ``(N, 2)``, offsets ``(N, 2)`` and anchors ``(N, 2)``, best first."""
    boxes = clip_segments(decode(offsets, anchors), cells)
    scores = torch.softmax(logits, dim=-1)[:, 1]
    boxes_np = boxes.detach().cpu().numpy()
    scores_np = scores.detach().cpu().numpy()
    nonempty = np.flatnonzero(boxes_np[:, 1] > boxes_np[:, 0])
    keep, _ = batched_nms(boxes_np[nonempty], scores_np[nonempty], None, method="hard",
                          iou_threshold=nms_iou, top_k=max_proposals)
    selected = nonempty[keep]
    return boxes[torch.from_numpy(selected).to(boxes.device)], scores_np[selected].astype(np.float64)


@dataclass(frozen=True)
class Detections:
    """One video's output in grid coordinates: proposals and their scores, detections (segment, class index
    0..C-1, score), and the seconds the proposal + classification steps took."""

    proposals: np.ndarray
    proposal_scores: np.ndarray
    segments: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    seconds: float


def detect(model, features: dict[str, torch.Tensor], anchors: torch.Tensor, cells: int, settings: dict,
           run: dict | None = None) -> Detections:
    """Steps 1-3 for ``model`` (:class:`talbench.models.talnet.TALNet` or ``LateFusionTALNet``, in eval mode,
    under ``no_grad``, on the device of ``features`` and float32 ``anchors`` ``(K T, 2)`` in the SPN's output
    layout); ``settings`` the ``talnet`` section (``proposals`` and ``test``), ``run`` the ``run`` section
    (``mixed_precision``)."""
    start = time.perf_counter()
    device = anchors.device
    with autocast({"run": run or {}}, device):
        logits, offsets = model.propose(features)
    proposals, proposal_scores = generate_proposals(
        logits.float().reshape(-1, 2), offsets.float().reshape(-1, 2), clip_segments(anchors, cells), cells,
        settings["proposals"]["nms_iou"], settings["proposals"]["max_proposals"])
    test = settings["test"]
    if proposals.shape[0] == 0:
        empty = np.zeros(0)
        return Detections(np.zeros((0, 2)), empty, np.zeros((0, 2)), np.zeros(0, np.int64), empty,
                          time.perf_counter() - start)
    with autocast({"run": run or {}}, device):
        class_logits, class_offsets = model.classify(features, proposals)
    probabilities = torch.softmax(class_logits.float(), dim=-1)[:, 1:].cpu().numpy().astype(np.float64)
    boxes = clip_segments(decode(class_offsets.float(), proposals[:, None, :]), cells)
    boxes = boxes.cpu().numpy().astype(np.float64)
    num_classes = probabilities.shape[1]
    boxes = boxes.reshape(-1, 2)
    scores = probabilities.reshape(-1)
    classes = np.tile(np.arange(num_classes), probabilities.shape[0])
    candidate = np.flatnonzero((scores > test["score_threshold"]) & (boxes[:, 1] > boxes[:, 0]))
    keep, kept_scores = batched_nms(boxes[candidate], scores[candidate], classes[candidate], method="hard",
                                    iou_threshold=test["nms_iou"], top_k=test["max_per_class"])
    keep, kept_scores = keep[:test["max_per_video"]], kept_scores[:test["max_per_video"]]
    chosen = candidate[keep]
    return Detections(proposals.cpu().numpy().astype(np.float64), proposal_scores, boxes[chosen], classes[chosen],
                      kept_scores, time.perf_counter() - start)
