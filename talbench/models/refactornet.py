"""RefactorNet (Xia et al., CVPR 2022): decouple a snippet feature into an action component and a
co-occurrence component, and recombine them (sections 3.4-3.5, figure 2).

Figure 2 of the paper, as code::

    f --+--> phi_A --> phi_A(f) --+
        |                          +--> f' = phi_A(f) (+) phi_C(f)      (eq. 3)
        +--> phi_C --> phi_C(f) --+

    L_A  = max(0, cos<phi_A(a), phi_A(c)>)                              (eq. 1)
    L_C  = 1 - cos<phi_C(a), phi_C(c)>                                  (eq. 2)
    L_KL = 1/2 sum_i (mu_i^2 + sigma_i^2 - log sigma_i^2 - 1)           (eq. 4)
    L_R  = alpha (L_A + L_C) + beta L_KL                                (eq. 5)

The paper does not give the encoders' layers. They take one snippet vector (an action sample ``a`` or a
coupling sample ``c``, section 3.3), so they are per-snippet MLPs (1x1 temporal convolutions); "same network
structure but do not share weights" (section 3.4). Each outputs ``component_dim`` (default half the input),
so that ``f'`` has the size of ``f`` and the detector is the same for Baseline, Deep Baseline and RefactorNet.

In the detector (sec. 5.2), the refactoring module sits in the encoder slot of the shared proposal detector
(:class:`RefactoredDetector`): both the classification and the localization branch read ``f'``.

The mean and variance in eq. 4 are those of each dimension ``i`` of the co-occurrence feature over the
mini-batch of samples (moment matching towards N(0, 1)). A VAE-style second head for sigma (as in the deblurring
work the paper cites, [31]) would break "the two encoders have the same network structure" and make ``f'``
stochastic; the batch moments keep both encoders identical and inference deterministic.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from talbench.models import count_parameters
from talbench.models.proposal_detector import IdentityEncoder, ProposalDetector, aggregation_bins

COMPONENT_CHOICES = ("action", "action_cooccurrence")


class ComponentEncoder(nn.Module):
    """phi_A or phi_C (section 3.4): a per-snippet MLP ``in_dim -> hidden_dim (x num_layers-1) -> out_dim``
    with ReLU between layers; applied on the last axis, so it takes samples ``(N, D)`` or videos ``(T, D)``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(d_in, d_out))
            if i < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class RefactorNet(nn.Module):
    """Feature decoupling (phi_A, phi_C) and recombination f' = phi_A(f) (+) phi_C(f) (eq. 3).

    ``components="action"`` keeps only phi_A(f) (the "Only action component" row of table 5).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        component_dim: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
        components: str = "action_cooccurrence",
    ):
        super().__init__()
        if components not in COMPONENT_CHOICES:
            raise ValueError(f"components must be one of {COMPONENT_CHOICES}, got '{components}'")
        component_dim = component_dim or in_dim // 2
        self.in_dim = in_dim
        self.component_dim = component_dim
        self.components = components
        self.phi_a = ComponentEncoder(in_dim, hidden_dim, component_dim, num_layers, dropout)
        self.phi_c = ComponentEncoder(in_dim, hidden_dim, component_dim, num_layers, dropout)

    @property
    def out_dim(self) -> int:
        return self.component_dim * (2 if self.components == "action_cooccurrence" else 1)

    def decouple(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(phi_A(f), phi_C(f)) for features of any leading shape (section 3.4)."""
        return self.phi_a(features), self.phi_c(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The refactored snippet features f' (eq. 3)."""
        action = self.phi_a(features)
        if self.components == "action":
            return action
        return torch.cat([action, self.phi_c(features)], dim=-1)


class DeepBaseline(nn.Module):
    """Deep Baseline of table 2: temporal 1-D convolutions in RefactorNet's slot, with the same depth
    (``num_layers``) and, through ``hidden_dim`` (see :func:`matched_deep_hidden_dim`), the same number of
    parameters as the two encoders; input ``(T, D)`` or ``(B, T, D)``, output of the same length."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (length-preserving padding), got {kernel_size}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Conv1d(d_in, d_out, kernel_size, padding=kernel_size // 2))
            if i < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batched = features.dim() == 3
        x = features if batched else features.unsqueeze(0)
        y = self.net(x.transpose(1, 2)).transpose(1, 2)
        return y if batched else y.squeeze(0)


def deep_baseline_params(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, kernel_size: int) -> int:
    """Closed-form parameter count of :class:`DeepBaseline` (weights and biases)."""
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    return sum(kernel_size * d_in * d_out + d_out for d_in, d_out in itertools.pairwise(dims))


def matched_deep_hidden_dim(target_params: int, in_dim: int, out_dim: int, num_layers: int, kernel_size: int) -> int:
    """Hidden width whose :class:`DeepBaseline` parameter count is closest to ``target_params``
    (the count grows monotonically with the width, so a bisection finds it)."""
    if num_layers == 1:
        return 0
    lo, hi = 1, max(2, target_params)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if deep_baseline_params(in_dim, mid, out_dim, num_layers, kernel_size) <= target_params:
            lo = mid
        else:
            hi = mid
    return min(
        (lo, hi),
        key=lambda h: abs(deep_baseline_params(in_dim, h, out_dim, num_layers, kernel_size) - target_params),
    )


# ----------------------------------------------------------------------------------------------- losses


def action_separation_loss(action_of_a: torch.Tensor, action_of_c: torch.Tensor) -> torch.Tensor:
    """L_A = max(0, cos<phi_A(a), phi_A(c)>) per pair (eq. 1): the action components of an action sample and
    of its coupling sample are pushed apart. Shapes ``(N, d)`` -> ``(N,)``."""
    return F.cosine_similarity(action_of_a, action_of_c, dim=-1).clamp_min(0.0)


def cooccurrence_similarity_loss(cooc_of_a: torch.Tensor, cooc_of_c: torch.Tensor) -> torch.Tensor:
    """L_C = 1 - cos<phi_C(a), phi_C(c)> per pair (eq. 2): the shared co-occurrence components are pulled
    together. Shapes ``(N, d)`` -> ``(N,)``."""
    return 1.0 - F.cosine_similarity(cooc_of_a, cooc_of_c, dim=-1)


def kl_normal_loss(cooccurrence: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """L_KL = 1/2 sum_{i=1..D} (mu_i^2 + sigma_i^2 - log sigma_i^2 - 1) (eq. 4), the KL divergence of
    N(mu, sigma^2) from N(0, 1) summed over dimensions, with mu_i and sigma_i^2 the mean and (biased) variance
    of dimension i over the samples ``(N, D)`` of the batch."""
    if cooccurrence.dim() != 2 or cooccurrence.shape[0] < 2:
        raise ValueError(f"kl_normal_loss needs a batch (N >= 2, D), got shape {tuple(cooccurrence.shape)}")
    mu = cooccurrence.mean(dim=0)
    var = cooccurrence.var(dim=0, unbiased=False) + eps
    return 0.5 * (mu.pow(2) + var - var.log() - 1.0).sum()


def refactoring_loss(
    model: RefactorNet,
    action: torch.Tensor,
    coupling: torch.Tensor,
    alpha: torch.Tensor,
    beta: float,
    *,
    use_la_lc: bool = True,
    use_kl: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_R = alpha (L_A + L_C) + beta L_KL (eq. 5) over a batch of (action, coupling) pairs, averaged over pairs;
    ``alpha`` is one weight per pair (the pair's similarity, section 5.2). The KL term is taken over the
    co-occurrence components of both the action and the coupling samples of the batch.
    Returns the loss and its detached parts for logging."""
    fa_a, fc_a = model.decouple(action)
    fa_c, fc_c = model.decouple(coupling)
    total = action.new_zeros(())
    parts: dict[str, float] = {}
    if use_la_lc:
        l_a = action_separation_loss(fa_a, fa_c)
        l_c = cooccurrence_similarity_loss(fc_a, fc_c)
        total = total + (alpha * (l_a + l_c)).mean()
        parts["L_A"] = float(l_a.detach().mean())
        parts["L_C"] = float(l_c.detach().mean())
    if use_kl:
        l_kl = kl_normal_loss(torch.cat([fc_a, fc_c], dim=0))
        total = total + beta * l_kl
        parts["L_KL"] = float(l_kl.detach())
    parts["L_R"] = float(total.detach())
    return total, parts


# ----------------------------------------------------------------------------------------- the detector


class FeatureSlot(nn.Module):
    """Puts a feature module ``(..., D) -> (..., D')`` into the detector's encoder slot: both the
    classification and the localization branch read the refactored features f' (sec. 3.6)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.module(x)
        return {"cls": y, "loc": y}


class RefactoredDetector(ProposalDetector):
    """The shared proposal detector on refactored features: the region snippets go through the encoder slot
    (shared detector); with A-Net aggregation, so does the video-level descriptor of A-Net's global context
    (max over the video's original snippets), as a length-1 sequence, so that every detector input lives in
    the space of f'. RoI pooling (sec. 5.2) reads the proposal's snippets only."""

    def forward(self, batch: dict[str, torch.Tensor], cls_feature: str = "F_cls",
                loc_feature: str = "F_loc") -> dict[str, torch.Tensor]:
        if self.roi_bins is None:
            batch = dict(batch)
            batch["video_global"] = self.encoder(batch["video_global"].unsqueeze(1))["cls"].squeeze(1)
        return super().forward(batch, cls_feature=cls_feature, loc_feature=loc_feature)


def build_feature_module(rc: dict, in_dim: int) -> nn.Module | None:
    """RefactorNet's phi_A / phi_C, the size-matched Deep Baseline, or ``None`` (Baseline)."""
    if not rc["enabled"]:
        return None
    refactor = RefactorNet(in_dim, rc["hidden_dim"], rc["component_dim"], rc["num_layers"], rc["dropout"],
                           rc["components"])
    if not rc["deep_baseline"]:
        return refactor
    width = matched_deep_hidden_dim(count_parameters(refactor), in_dim, refactor.out_dim, rc["num_layers"],
                                    rc["deep_kernel_size"])
    return DeepBaseline(in_dim, width, refactor.out_dim, rc["num_layers"], rc["deep_kernel_size"])


def build_model(cfg: dict, in_dim: int, num_classes: int) -> RefactoredDetector:
    """Refactoring module (or none) in the encoder slot of the shared detector (``detector`` section)."""
    rc, det = cfg["refactornet"], cfg["detector"]
    module = build_feature_module(rc, in_dim)
    encoder = IdentityEncoder() if module is None else FeatureSlot(module)
    feature_dim = in_dim if module is None else module.out_dim
    hidden = det["head_hidden"] or feature_dim
    return RefactoredDetector(encoder, feature_dim, num_classes, hidden, head_layers=det["head_layers"],
                              dropout=det["dropout"], attention=cfg["anet"]["attention"],
                              roi_bins=aggregation_bins(det))


def refactoring_module(model: RefactoredDetector) -> nn.Module | None:
    return model.encoder.module if isinstance(model.encoder, FeatureSlot) else None


def parameter_counts(cfg: dict, in_dim: int, num_classes: int) -> dict[str, int]:
    """``refactoring`` (phi_A + phi_C, or the Deep Baseline convolutions), ``detector`` and ``total``."""
    model = build_model(cfg, in_dim, num_classes)
    module = refactoring_module(model)
    refactoring = count_parameters(module) if module is not None else 0
    total = count_parameters(model)
    return {"refactoring": refactoring, "detector": total - refactoring, "total": total}
