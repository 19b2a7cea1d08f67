"""Pooling over the variable-length snippet sets of proposals, stored padded as ``(N, K, D)`` with a
boolean mask ``(N, K)`` (True = a real snippet). Every proposal has at least one valid snippet."""

from __future__ import annotations

import torch


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the valid snippets: ``(N, K, D) -> (N, D)``."""
    return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average over the valid snippets: ``(N, K, D) -> (N, D)``."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


