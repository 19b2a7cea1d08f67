"""TAL-Net's multi-task loss (supplementary A.1, eq. 1), the same form for both stages:

    L = sum_i L_cls(p_i, p_i*) + lambda sum_i [p_i* >= 1] L_reg(t_i, t_i*),   lambda = 1,

cross-entropy and Fast R-CNN's smooth L1 on the offsets of positive anchors / foreground proposals. As the TF
Object Detection API normalises each stage's losses, both sums are divided by the number of sampled examples
of the mini-batch; the two stages' losses are added with equal weights ("jointly train both stages by weighing
both losses equally").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multitask_loss(logits: torch.Tensor, labels: torch.Tensor, offsets: torch.Tensor, targets: torch.Tensor,
                   reg_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 on one mini-batch: ``(L_cls, lambda L_reg)`` from logits ``(N, classes)``, labels ``(N,)``,
    offsets and targets ``(N, 2)`` (only rows with ``label >= 1`` regress)."""
    count = max(int(labels.shape[0]), 1)
    cls = F.cross_entropy(logits, labels, reduction="sum") / count
    positive = labels >= 1
    reg = F.smooth_l1_loss(offsets[positive], targets[positive], reduction="sum", beta=1.0) / count
    return cls, reg_weight * reg


def class_offsets(offsets: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The classifier's offsets ``(N, C, 2)`` of each example's class ``(N,)`` (1..C; background rows get
    class 1's, which the loss masks out)."""
    index = (labels - 1).clamp(min=0)
    return offsets[torch.arange(offsets.shape[0], device=offsets.device), index]
