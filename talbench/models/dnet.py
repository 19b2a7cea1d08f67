"""D-Net, the disentanglement network (Zhu et al., AAAI 2022, sec. 3.2, eqs. 1-5) and its
reconstruction loss (eq. 3).

An autoencoder splits each snippet feature x (D) into three hidden codes (eq. 1)
``H^cls = W_e^cls x``, ``H^com = W_e^com x``, ``H^loc = W_e^loc x`` (D_h each, linear encoders), and one
decoder ``W_d`` (D x 3D_h) followed by ReLU

* eq. 2  reconstruction      ``Y^ = ReLU(W_d [H^cls, H^com, H^loc])``
* eq. 4  classification      ``F^cls = ReLU(W_d [H^cls, H^com, 0])``
* eq. 5  localization        ``F^loc = ReLU(W_d [0, H^com, H^loc])``

Variants of table 4 are constructor options: ``removed_code="random"`` decodes with standard-normal
vectors in place of the zero code ("random vectors"); ``parts`` drops hidden parts ("only common" =
``["com"]``, "w/o common" = ``["cls", "loc"]``): a dropped part has no encoder and no decoder columns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PARTS = ("cls", "com", "loc")  # the order of eq. 2's concatenation


class DisentanglementNetwork(nn.Module):
    """Eqs. 1-5 on flat snippet features ``(..., D)``; returns ``{"cls", "loc", "rec"}`` (each ``(..., D)``)."""

    def __init__(self, feature_dim: int, hidden_dim: int, parts: list[str] | tuple[str, ...] = PARTS,
                 removed_code: str = "zeros"):
        super().__init__()
        unknown = set(parts) - set(PARTS)
        if unknown or not parts:
            raise ValueError(f"dnet.parts must be a non-empty subset of {list(PARTS)}, got {list(parts)}")
        if removed_code not in ("zeros", "random"):
            raise ValueError(f"dnet.removed_code must be 'zeros' or 'random', got {removed_code!r}")
        self.parts = [p for p in PARTS if p in parts]
        self.hidden_dim = hidden_dim
        self.removed_code = removed_code
        self.encoders = nn.ModuleDict({p: nn.Linear(feature_dim, hidden_dim) for p in self.parts})  # eq. 1
        self.decoder = nn.Linear(hidden_dim * len(self.parts), feature_dim)  # W_d, eq. 2

    def _removed(self, like: torch.Tensor) -> torch.Tensor:
        if self.removed_code == "zeros":
            return torch.zeros_like(like)  # H^zero, eqs. 4-5
        return torch.randn_like(like)  # table 4 "random vectors"

    def _decode(self, codes: dict[str, torch.Tensor], keep: set[str]) -> torch.Tensor:
        hidden = [codes[p] if p in keep else self._removed(codes[p]) for p in self.parts]
        return F.relu(self.decoder(torch.cat(hidden, dim=-1)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        codes = {p: encoder(x) for p, encoder in self.encoders.items()}
        return {
            "rec": self._decode(codes, set(self.parts)),  # eq. 2
            "cls": self._decode(codes, {"cls", "com"}),  # eq. 4
            "loc": self._decode(codes, {"com", "loc"}),  # eq. 5
        }


def reconstruction_loss(original: torch.Tensor, reconstructed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 3 on padded proposals ``(N, K, D)``: per proposal, the MSE over its valid snippets plus the mean
    over its snippets of ``1 - cos(Y_i(t), Y^_i(t))``; averaged over proposals."""
    weights = mask.to(original.dtype)
    counts = weights.sum(dim=1).clamp_min(1.0)
    squared = ((original - reconstructed) ** 2).mean(dim=-1)
    mse = (squared * weights).sum(dim=1) / counts
    cosine = 1.0 - F.cosine_similarity(original, reconstructed, dim=-1, eps=1e-6)
    cos_term = (cosine * weights).sum(dim=1) / counts
    return (mse + cos_term).mean()
