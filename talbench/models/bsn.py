"""BSN: Boundary Sensitive Network (Lin et al., ECCV 2018), the proposal generator of D-Net and RefactorNet.

Three stages, mirroring Fig. 2 of the BSN paper:

* **TEM** (section 3.3, temporal evaluation module): three temporal convolutions
  ``conv1d(D, 512, k=3) -> ReLU -> conv1d(512, 512, k=3) -> ReLU -> conv1d(512, 3, k=1) -> sigmoid``
  predicting the actionness, starting and ending probability of every snippet of an observation window.
  As in the reference code (wzmsltw/BSN-boundary-sensitive-network) the last convolution is scaled by
  0.01 before the sigmoid (``tem_output_scale``).
* **PGM** (section 3.4, proposal generation module): boundary candidates are locations whose start (end)
  probability is a local peak or above ``peak_threshold`` x the maximum; every start/end pair with
  ``start < end`` and ``end - start <= max_duration`` is a candidate proposal. The boundary-sensitive
  proposal (BSP) feature samples the actionness curve at ``N_a = 16`` points inside the proposal and
  ``N_b = 8`` points in its start and end regions (each ``[t - d/5, t + d/5]``, d the duration),
  each point the mean of linear interpolations (``num_sample_interp = 3`` as the reference code).
* **PEM** (section 3.5, proposal evaluation module): a multilayer perceptron with one hidden layer
  (``fc(32, 512) -> ReLU -> fc(512, 1) -> sigmoid``) regressing the proposal's maximum tIoU with the
  ground truth. Final score (eq. 9): ``p_f = p_ts^s x p_te^e x p_conf``, followed by Soft-NMS.

Losses: the TEM loss (eq. 1-2) is ``L_TEM = lambda L_bl^action + L_bl^start + L_bl^end`` (lambda = 2) with the
weighted binary logistic loss ``L_bl``; the PEM loss (eq. 8) is the L2 regression loss on a tIoU-balanced
sample of proposals (reference code: all proposals with IoU > 0.6, 1x as many with 0.2-0.6, 2x below 0.2).

Everything here works in *cell coordinates*: cell ``i`` of a feature sequence is centred at ``i`` and spans
``[i - 0.5, i + 0.5]``; the engine converts to seconds with ``FeatureDataset.snippet_centers``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TEM(nn.Module):
    """Temporal evaluation module (BSN section 3.3, Table 1 of the paper's supplementary architecture).

    Input ``(B, D, L)`` features, output ``(B, 3, L)`` probabilities: actionness, start, end.
    """

    def __init__(self, in_dim: int, hidden: int = 512, output_scale: float = 0.01) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, hidden, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.conv3 = nn.Conv1d(hidden, 3, kernel_size=1)
        self.output_scale = output_scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(features))
        x = F.relu(self.conv2(x))
        return torch.sigmoid(self.output_scale * self.conv3(x))


class PEM(nn.Module):
    """Proposal evaluation module (BSN section 3.5): MLP with one hidden layer on the 32-d BSP feature.

    The reference code scales both layers' outputs by 0.1 before the non-linearities (``output_scale``).
    """

    def __init__(self, in_dim: int = 32, hidden: int = 512, output_scale: float = 0.1) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.output_scale = output_scale

    def forward(self, bsp: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.output_scale * self.fc1(bsp))
        return torch.sigmoid(self.output_scale * self.fc2(x)).squeeze(-1)


# --------------------------------------------------------------------------------------------------- labels


def weighted_binary_logistic_loss(prob: torch.Tensor, match: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """BSN eq. 2: ``L_bl = 1/l sum(alpha+ b log p + alpha- (1-b) log(1-p))`` with ``b = [g > threshold]``,
    ``alpha+ = l / l+`` and ``alpha- = l / l-`` counted over the batch (each count at least 1)."""
    positive = (match > threshold).to(prob.dtype)
    total = positive.numel()
    num_pos = positive.sum().clamp(min=1.0)
    num_neg = (total - positive.sum()).clamp(min=1.0)
    eps = 1e-6
    log_pos = torch.log(prob.clamp(min=eps))
    log_neg = torch.log((1.0 - prob).clamp(min=eps))
    loss = (total / num_pos) * positive * log_pos + (total / num_neg) * (1.0 - positive) * log_neg
    return -loss.mean()


def tem_loss(
    output: torch.Tensor, targets: torch.Tensor, action_weight: float = 2.0, threshold: float = 0.5,
    end_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """BSN eq. 1: ``L_TEM = lambda L_bl^action + L_bl^start + gamma L_bl^end`` over ``(B, 3, L)`` tensors;
    ``L_bl^start + gamma L_bl^end`` is RefactorNet's boundary loss L_P (eq. 6, gamma = 1 as BSN)."""
    parts = [weighted_binary_logistic_loss(output[:, k], targets[:, k], threshold) for k in range(3)]
    total = action_weight * parts[0] + parts[1] + end_weight * parts[2]
    return total, {name: part.detach().item() for name, part in zip(("action", "start", "end"), parts, strict=True)}


def pem_loss(
    score: torch.Tensor,
    iou: torch.Tensor,
    generator: torch.Generator,
    high: float = 0.6,
    low: float = 0.2,
    ratio_medium: float = 1.0,
    ratio_low: float = 2.0,
) -> torch.Tensor:
    """BSN eq. 8 with the reference code's tIoU-balanced sampling: every proposal with IoU > ``high``,
    about ``ratio_medium`` x as many from ``(low, high]`` and ``ratio_low`` x as many from ``[0, low]``
    (random masks drawn from the CPU ``generator`` and moved to the scores' device); ``0.5 x`` weighted mean
    squared error."""
    is_high = iou > high
    is_medium = (iou <= high) & (iou > low)
    is_low = iou <= low
    num_high = is_high.sum().clamp(min=1).to(score.dtype)
    draw = torch.rand(iou.shape, generator=generator, dtype=score.dtype).to(score.device)
    keep_medium = is_medium & (draw < ratio_medium * num_high / is_medium.sum().clamp(min=1))
    keep_low = is_low & (draw < ratio_low * num_high / is_low.sum().clamp(min=1))
    weights = (is_high | keep_medium | keep_low).to(score.dtype)
    return 0.5 * (weights * (score - iou) ** 2).sum() / weights.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------- proposal generation


