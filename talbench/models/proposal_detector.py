"""The proposal-level detector of D-Net (AAAI 2022, fig. 2 and sec. 3.1-3.5), shared with RefactorNet.

    snippet features of a proposal and of its two extended regions (D-Net sec. 3.1)
      -> feature encoder          (slot: none = A-Net baseline | mlp1 | mlp2 | dnet, table 1)
      -> A-Net^cls on F^cls of the proposal                        -> M^cls  (eq. 12, C+1 classes)
      -> A-Net^loc on F^loc of [left region, proposal, right region] -> M^z (eq. 13, C) and M^loc (eq. 14)
    loss eq. 15: cross-entropy + lambda1 smooth-L1 + lambda2 hinge (background excluded) + L_rec (eq. 3)

The heads (``detector.head_mlps``): 2 = M^cls and one MLP shared by M^z and M^loc (D-Net eqs. 12-14, as MUSES's
``Act_MLP`` / ``Comp_MLP``); 3 = one MLP each for classification, completeness and boundary regression
(RefactorNet sec. 5.2: "three different MLPs on each proposal for boundary regression, action classification
and completeness prediction").

The aggregation is A-Net (``detector.aggregation: anet``, D-Net) or temporal RoI pooling
(``roi_pool``, RefactorNet sec. 5.2, as MUSES / P-GCN): the extended proposal (left region, proposal,
right region, 1/4 + 1/2 + 1/4 of its length) is max-pooled into ``detector.roi_bins`` bins (MUSES: 8), the
proposal's own bins (the middle half) feed the classification head, all bins the completeness/regression head.

The encoder slot is generic: any module mapping snippet features ``(..., D)`` to a dict with the
classification features ``"cls"`` and localization features ``"loc"`` (``(..., D)`` each) fits; an
optional ``"rec"`` entry (reconstructed input) adds the reconstruction loss of eq. 3. New encoders register
in :data:`ENCODERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talbench.models import count_parameters
from talbench.models.anet import ContextAggregation
from talbench.models.blocks.mlp import MLP
from talbench.models.blocks.roi_pooling import TemporalRoIPool
from talbench.models.dnet import DisentanglementNetwork, reconstruction_loss

REGIONS = ("left", "center", "right")
AGGREGATIONS = ("anet", "roi_pool")
FEATURE_CHOICES = {"F_cls": "cls", "F_loc": "loc"}


class IdentityEncoder(nn.Module):
    """A-Net baseline (table 1 "Baseline"): both tasks read the original snippet features."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"cls": x, "loc": x}


class SharedMLPEncoder(nn.Module):
    """Table 1 "+MLP_1": one MLP (D -> hidden -> D) whose output feeds both branches."""

    def __init__(self, feature_dim: int, hidden_dim: int):
        super().__init__()
        self.mlp = MLP([feature_dim, hidden_dim, feature_dim])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.mlp(x)
        return {"cls": shared, "loc": shared}


class TwoMLPEncoder(nn.Module):
    """Table 1 "+MLP_2": two different MLPs, one per branch."""

    def __init__(self, feature_dim: int, hidden_dim: int):
        super().__init__()
        self.cls_mlp = MLP([feature_dim, hidden_dim, feature_dim])
        self.loc_mlp = MLP([feature_dim, hidden_dim, feature_dim])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"cls": self.cls_mlp(x), "loc": self.loc_mlp(x)}


def dnet_hidden_dim(feature_dim: int, cfg: dict) -> int:
    """D_h = ``dnet.hidden_ratio`` x D (D/4 = 256 at D = 1024 gives the paper's 1.6M, see docs/dnet.md)."""
    return max(1, round(cfg["dnet"]["hidden_ratio"] * feature_dim))


def _dnet_encoder(feature_dim: int, cfg: dict) -> nn.Module:
    return DisentanglementNetwork(feature_dim, dnet_hidden_dim(feature_dim, cfg), parts=cfg["dnet"]["parts"],
                                  removed_code=cfg["dnet"]["removed_code"])


# MLP baselines are sized to D-Net's parameter count (sec. 4.1: "add some MLPs ... to fill up the gap"):
# D-Net has 3 encoders D -> D_h and a decoder 3D_h -> D, i.e. the size of one MLP D -> 3D_h -> D (MLP_1)
# or of two MLPs D -> 1.5 D_h -> D (MLP_2).
ENCODERS: dict[str, Callable[[int, dict], nn.Module]] = {
    "none": lambda d, cfg: IdentityEncoder(),
    "mlp1": lambda d, cfg: SharedMLPEncoder(d, 3 * dnet_hidden_dim(d, cfg)),
    "mlp2": lambda d, cfg: TwoMLPEncoder(d, max(1, 3 * dnet_hidden_dim(d, cfg) // 2)),
    "dnet": _dnet_encoder,
}


class ProposalDetector(nn.Module):
    """Encoder + aggregation (two A-Nets, or temporal RoI pooling) + the heads of sec. 3.4.

    ``M^cls`` is an MLP followed by a fully-connected layer over C+1 classes; ``M^z`` and ``M^loc`` share
    one MLP on ``[f^{L,loc}, f^loc, f^{R,loc}]`` (3D with A-Net) followed by two fully-connected layers (C
    completeness scores; a class-agnostic (centre, log-length) boundary regression as P-GCN/SSN parameterise
    it); ``head_mlps=3`` gives the regression its own MLP on the same input (RefactorNet sec. 5.2).
    ``roi_bins`` (a multiple of 4) replaces A-Net by RoI pooling of the extended proposal."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int, head_hidden: int,
                 head_layers: int = 2, dropout: float = 0.0, attention: str = "relu_normalized",
                 roi_bins: int | None = None, head_mlps: int = 2):
        super().__init__()
        if head_mlps not in (2, 3):
            raise ValueError(f"detector.head_mlps must be 2 or 3, got {head_mlps}")
        self.encoder = encoder
        self.num_classes = num_classes
        self.roi_bins = roi_bins
        if roi_bins is None:
            self.anet_cls = ContextAggregation(feature_dim, attention)
            self.anet_loc = ContextAggregation(feature_dim, attention)
            cls_in, loc_in = feature_dim, 3 * feature_dim
        else:
            if roi_bins < 4 or roi_bins % 4:
                raise ValueError(f"detector.roi_bins must be a positive multiple of 4, got {roi_bins}")
            bins = {"left": roi_bins // 4, "center": roi_bins // 2, "right": roi_bins // 4}
            self.roi_pool = nn.ModuleDict({r: TemporalRoIPool(bins[r]) for r in REGIONS})
            cls_in, loc_in = bins["center"] * feature_dim, roi_bins * feature_dim
        self.cls_mlp = MLP([cls_in] + [head_hidden] * head_layers, dropout=dropout)
        self.cls_fc = nn.Linear(head_hidden, num_classes + 1)  # eq. 12
        self.loc_mlp = MLP([loc_in] + [head_hidden] * head_layers, dropout=dropout)  # M^z (and M^loc with 2)
        self.regression_mlp = MLP([loc_in] + [head_hidden] * head_layers, dropout=dropout) if head_mlps == 3 else None
        self.completeness_fc = nn.Linear(head_hidden, num_classes)  # eq. 13
        self.regression_fc = nn.Linear(head_hidden, 2)  # eq. 14

    def aggregate(self, branch: str, region: str, features: torch.Tensor, mask: torch.Tensor,
                  video_global: torch.Tensor) -> torch.Tensor:
        """One region's proposal feature for the ``cls`` or ``loc`` branch."""
        if self.roi_bins is not None:
            return self.roi_pool[region](features, mask)
        anet = self.anet_cls if branch == "cls" else self.anet_loc
        return anet(features, mask, video_global)

    def forward(self, batch: dict[str, torch.Tensor], cls_feature: str = "F_cls",
                loc_feature: str = "F_loc") -> dict[str, torch.Tensor]:
        """``batch``: ``<region>`` ``(N, K, D)`` and ``<region>_mask`` ``(N, K)`` for left/center/right,
        ``video_global`` ``(N, D)`` (eq. 9). ``cls_feature``/``loc_feature`` regroup the disentangled
        features at test time (table 2)."""
        cls_key, loc_key = FEATURE_CHOICES[cls_feature], FEATURE_CHOICES[loc_feature]
        video_global = batch["video_global"]
        encoded = {region: self.encoder(batch[region]) for region in REGIONS}
        f_cls = self.aggregate("cls", "center", encoded["center"][cls_key], batch["center_mask"], video_global)
        f_loc = [self.aggregate("loc", r, encoded[r][loc_key], batch[f"{r}_mask"], video_global) for r in REGIONS]
        f_loc = torch.cat(f_loc, dim=-1)
        shared = self.loc_mlp(f_loc)
        out = {
            "cls_logits": self.cls_fc(self.cls_mlp(f_cls)),
            "completeness": self.completeness_fc(shared),
            "regression": self.regression_fc(shared if self.regression_mlp is None else self.regression_mlp(f_loc)),
        }
        if "rec" in encoded["center"]:
            out["rec_loss"] = reconstruction_loss(batch["center"], encoded["center"]["rec"], batch["center_mask"])
        return out


def gather_regions(snippets: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A region's padded snippet features ``snippets[index]`` ``(N, K, D)``, the padded slots (``~mask``) zeroed."""
    return snippets[index] * mask.unsqueeze(-1)


def aggregation_bins(det: dict) -> int | None:
    """``detector.roi_bins`` when ``detector.aggregation`` is ``roi_pool``, ``None`` for A-Net."""
    if det["aggregation"] not in AGGREGATIONS:
        raise ValueError(f"detector.aggregation must be one of {AGGREGATIONS}, got {det['aggregation']!r}")
    return det["roi_bins"] if det["aggregation"] == "roi_pool" else None


def build_detector(cfg: dict, feature_dim: int, num_classes: int) -> ProposalDetector:
    """The detector of ``cfg["detector"]`` at ``feature_dim`` per stream and ``num_classes`` actions."""
    det = cfg["detector"]
    name = det["encoder"]
    if name not in ENCODERS:
        raise ValueError(f"detector.encoder must be one of {sorted(ENCODERS)}, got {name!r}")
    hidden = det["head_hidden"] or feature_dim
    return ProposalDetector(ENCODERS[name](feature_dim, cfg), feature_dim, num_classes, hidden,
                            head_layers=det["head_layers"], dropout=det["dropout"],
                            attention=cfg["anet"]["attention"], roi_bins=aggregation_bins(det),
                            head_mlps=det["head_mlps"])


@dataclass
class LossTerms:
    total: torch.Tensor
    cls: torch.Tensor
    reg: torch.Tensor
    com: torch.Tensor
    rec: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "cls", "reg", "com", "rec")}


@dataclass(frozen=True)
class LossWeights:
    """Weights of the regression and completeness terms: D-Net eq. 15 ``lambda1`` (regression) and ``lambda2``
    (completeness); RefactorNet eq. 7 ``lambda1`` (completeness) and ``lambda2`` (regression)."""

    regression: float
    completeness: float


def detection_loss(out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: LossWeights) -> LossTerms:
    """``L = L_cls + w_reg L_reg + w_com L_com + L_rec`` (D-Net eq. 15; means over the sampled proposals, as
    P-GCN); ``L_rec`` (eq. 3) is present when the encoder reconstructs its input.

    ``targets``: ``cls_label`` (N,) in 0..C (0 = background, -1 = not a classification sample),
    ``comp_class`` (N,) in 0..C-1 (-1 = background: completeness not considered, sec. 3.5),
    ``comp_sign`` (N,) +1 complete / -1 incomplete, ``reg_target`` (N, 2), ``reg_mask`` (N,) bool."""
    zero = out["cls_logits"].new_zeros(())
    cls_valid = targets["cls_label"] >= 0
    loss_cls = F.cross_entropy(out["cls_logits"][cls_valid], targets["cls_label"][cls_valid]) \
        if cls_valid.any() else zero
    comp_valid = targets["comp_class"] >= 0
    if comp_valid.any():
        scores = out["completeness"][comp_valid].gather(1, targets["comp_class"][comp_valid, None]).squeeze(1)
        loss_com = F.relu(1.0 - targets["comp_sign"][comp_valid] * scores).mean()  # hinge
    else:
        loss_com = zero
    reg_valid = targets["reg_mask"]
    loss_reg = F.smooth_l1_loss(out["regression"][reg_valid], targets["reg_target"][reg_valid]) \
        if reg_valid.any() else zero
    loss_rec = out.get("rec_loss", zero)
    total = loss_cls + weights.regression * loss_reg + weights.completeness * loss_com + loss_rec
    return LossTerms(total, loss_cls, loss_reg, loss_com, loss_rec)


def parameter_counts(cfg: dict, feature_dim: int, num_classes: int) -> dict[str, int]:
    """Per-stream counts: ``aggregation_and_heads`` (the A-Net baseline model), ``encoder`` and ``total``."""
    model = build_detector(cfg, feature_dim, num_classes)
    encoder = count_parameters(model.encoder)
    total = count_parameters(model)
    return {"aggregation_and_heads": total - encoder, "encoder": encoder, "total": total}
