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

Eq. 4 (``kl_form: per_sample``, the paper's form): "mu and sigma represent the mean and standard deviation of a
co-occurrence feature", after the deblurring work it cites [31], whose blur encoder has a mean head and a
log-variance head on one trunk (``fc_B``, ``fcVar_B``) and draws ``z = mu + sigma eps``. phi_C therefore has,
besides the layers phi_A has, a parallel last layer giving ``log sigma_i^2`` of each output dimension: in training
``phi_C(f) = mu + sigma eps`` (reparameterised), at inference ``phi_C(f) = mu`` (deterministic F'); L_KL is the
KL divergence of each sample's N(mu, sigma^2) from N(0, 1), summed over dimensions and averaged over samples.
The sigma head exists only for L_KL (a row without L_KL has none). ``kl_form: batch`` is the earlier choice
kept as an option: mu_i and sigma_i^2 are the moments of dimension i over the mini-batch (no sigma head).

In the detector (sec. 3.5 and 5.2), the module maps the video's snippet sequence F to F' ("we can obtain the new
video feature sequence F' via RefactorNet") and the shared proposal detector (:class:`RefactoredDetector`) gathers
the proposal regions from F': both the classification and the localization branch read ``f'``. The Deep
Baseline (table 2) takes the same place, so its temporal convolutions run over the whole sequence.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from talbench.models import count_parameters
from talbench.models.proposal_detector import (
    IdentityEncoder,
    ProposalDetector,
    aggregation_bins,
    gather_regions,
)

COMPONENT_CHOICES = ("action", "action_cooccurrence")
KL_FORMS = ("per_sample", "batch")


class ComponentEncoder(nn.Module):
    """phi_A or phi_C (section 3.4): a per-snippet MLP ``in_dim -> hidden_dim (x num_layers-1) -> out_dim``
    with ReLU between layers; applied on the last axis, so it takes samples ``(N, D)`` or videos ``(T, D)``.

    ``log_variance=True`` adds a last layer parallel to the output layer giving ``log sigma^2`` per output
    dimension (eq. 4 per sample, as [31]); the encoder then samples ``mu + sigma eps`` in training mode."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, dropout: float = 0.0,
                 log_variance: bool = False):
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
        self.log_var = nn.Linear(dims[-2], out_dim) if log_variance else None

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(output, mu, log sigma^2)``: the output is ``mu`` without a variance head or in eval mode, else
        ``mu + sigma eps`` with ``eps ~ N(0, 1)`` (the reparameterisation of [31]); ``log sigma^2`` or ``None``."""
        if self.log_var is None:
            out = self.net(features)
            return out, out, None
        trunk = self.net[:-1](features)
        mu, log_var = self.net[-1](trunk), self.log_var(trunk)
        if not self.training:
            return mu, mu, log_var
        return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu), mu, log_var

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.encode(features)[0]


class RefactorNet(nn.Module):
    """Feature decoupling (phi_A, phi_C) and recombination f' = phi_A(f) (+) phi_C(f) (eq. 3).

    ``components="action"`` keeps only phi_A(f) (the "Only action component" row of table 5);
    ``cooccurrence_log_variance`` gives phi_C its sigma head (eq. 4 per sample)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        component_dim: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
        components: str = "action_cooccurrence",
        cooccurrence_log_variance: bool = False,
    ):
        super().__init__()
        if components not in COMPONENT_CHOICES:
            raise ValueError(f"components must be one of {COMPONENT_CHOICES}, got '{components}'")
        component_dim = component_dim or in_dim // 2
        self.in_dim = in_dim
        self.component_dim = component_dim
        self.components = components
        self.phi_a = ComponentEncoder(in_dim, hidden_dim, component_dim, num_layers, dropout)
        self.phi_c = ComponentEncoder(in_dim, hidden_dim, component_dim, num_layers, dropout,
                                      log_variance=cooccurrence_log_variance)

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
    """Deep Baseline of table 2 ("replacing RefactorNet in our framework with temporal 1D convolutional layers so
    that its model size and depth are the same"): ``num_layers`` temporal convolutions with the same number of
    parameters as the two encoders (``hidden_dim``, see :func:`matched_deep_hidden_dim`), run over a video's
    snippet sequence F; input ``(T, D)`` or ``(B, T, D)``, output of the same length (zero padding at the ends)."""

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


def kl_batch_moments(cooccurrence: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``kl_form: batch``: eq. 4 with mu_i and sigma_i^2 the mean and (biased) variance of dimension i over the
    samples ``(N, D)`` of the batch (one KL for the batch)."""
    if cooccurrence.dim() != 2 or cooccurrence.shape[0] < 2:
        raise ValueError(f"kl_batch_moments needs a batch (N >= 2, D), got shape {tuple(cooccurrence.shape)}")
    mu = cooccurrence.mean(dim=0)
    var = cooccurrence.var(dim=0, unbiased=False) + eps
    return 0.5 * (mu.pow(2) + var - var.log() - 1.0).sum()


def kl_per_sample(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Eq. 4 per sample (the paper's form, as [31]): ``1/2 sum_i (mu_i^2 + sigma_i^2 - log sigma_i^2 - 1)``, the
    KL divergence of N(mu, diag sigma^2) from N(0, 1) of each sample; ``(N, D)`` each -> ``(N,)``."""
    return 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1.0).sum(dim=-1)


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
    ``alpha`` is one weight per pair (the pair's similarity, section 5.2). The KL term covers the co-occurrence
    components of both the action and the coupling samples of the batch: per sample (averaged) when phi_C has
    its sigma head (``kl_form: per_sample``), else with the batch moments. Returns the loss and its detached
    parts for logging."""
    fa_a, fa_c = model.phi_a(action), model.phi_a(coupling)
    fc_a, mu_a, log_var_a = model.phi_c.encode(action)
    fc_c, mu_c, log_var_c = model.phi_c.encode(coupling)
    total = action.new_zeros(())
    parts: dict[str, float] = {}
    if use_la_lc:
        l_a = action_separation_loss(fa_a, fa_c)
        l_c = cooccurrence_similarity_loss(fc_a, fc_c)
        total = total + (alpha * (l_a + l_c)).mean()
        parts["L_A"] = float(l_a.detach().mean())
        parts["L_C"] = float(l_c.detach().mean())
    if use_kl:
        if log_var_a is None:
            l_kl = kl_batch_moments(torch.cat([fc_a, fc_c], dim=0))
        else:
            l_kl = kl_per_sample(torch.cat([mu_a, mu_c]), torch.cat([log_var_a, log_var_c])).mean()
        total = total + beta * l_kl
        parts["L_KL"] = float(l_kl.detach())
    parts["L_R"] = float(total.detach())
    return total, parts


# ----------------------------------------------------------------------------------------- the detector


class RefactoredDetector(ProposalDetector):
    """The shared proposal detector on the output of a feature module (RefactorNet, the Deep Baseline) or on the
    original features (``feature_module=None``, the Baseline). The module maps each video's snippet sequence F to
    F' (sec. 3.5), then the proposal regions are gathered from F' (``<region>_index`` of the batch); with A-Net
    aggregation the video's global descriptor (eq. 9) is the max over F'."""

    def __init__(self, feature_module: nn.Module | None, feature_dim: int, num_classes: int, head_hidden: int,
                 **detector_options):
        super().__init__(IdentityEncoder(), feature_dim, num_classes, head_hidden, **detector_options)
        self.feature_module = feature_module

    def encode_sequences(self, snippets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """F' of every video of the batch, each video on its own (a convolution never crosses videos)."""
        return torch.cat([self.feature_module(video) for video in torch.split(snippets, lengths.tolist())])

    def forward(self, batch: dict[str, torch.Tensor], cls_feature: str = "F_cls",
                loc_feature: str = "F_loc") -> dict[str, torch.Tensor]:
        if self.feature_module is not None:
            encoded = self.encode_sequences(batch["snippets"], batch["lengths"])
            batch = dict(batch)
            for region in ("left", "center", "right"):
                batch[region] = gather_regions(encoded, batch[f"{region}_index"], batch[f"{region}_mask"])
            if self.roi_bins is None:
                per_video = torch.stack([v.amax(dim=0) for v in torch.split(encoded, batch["lengths"].tolist())])
                batch["video_global"] = per_video[batch["video_index"]]
        return super().forward(batch, cls_feature=cls_feature, loc_feature=loc_feature)


def build_feature_module(rc: dict, in_dim: int) -> nn.Module | None:
    """RefactorNet's phi_A / phi_C, the size-matched Deep Baseline, or ``None`` (Baseline). phi_C has its sigma
    head when the row trains with L_KL in its per-sample form (eq. 4)."""
    if not rc["enabled"]:
        return None
    if rc["kl_form"] not in KL_FORMS:
        raise ValueError(f"refactornet.kl_form must be one of {KL_FORMS}, got {rc['kl_form']!r}")
    refactor = RefactorNet(in_dim, rc["hidden_dim"], rc["component_dim"], rc["num_layers"], rc["dropout"],
                           rc["components"],
                           cooccurrence_log_variance=rc["use_kl"] and rc["kl_form"] == "per_sample")
    if not rc["deep_baseline"]:
        return refactor
    width = matched_deep_hidden_dim(count_parameters(refactor), in_dim, refactor.out_dim, rc["num_layers"],
                                    rc["deep_kernel_size"])
    return DeepBaseline(in_dim, width, refactor.out_dim, rc["num_layers"], rc["deep_kernel_size"])


def build_model(cfg: dict, in_dim: int, num_classes: int) -> RefactoredDetector:
    """The refactoring module (or none) before the shared detector (``detector`` section)."""
    rc, det = cfg["refactornet"], cfg["detector"]
    module = build_feature_module(rc, in_dim)
    feature_dim = in_dim if module is None else module.out_dim
    hidden = det["head_hidden"] or feature_dim
    return RefactoredDetector(module, feature_dim, num_classes, hidden, head_layers=det["head_layers"],
                              dropout=det["dropout"], attention=cfg["anet"]["attention"],
                              roi_bins=aggregation_bins(det), head_mlps=det["head_mlps"])


def refactoring_module(model: RefactoredDetector) -> nn.Module | None:
    return model.feature_module


def parameter_counts(cfg: dict, in_dim: int, num_classes: int) -> dict[str, int]:
    """``refactoring`` (phi_A + phi_C, or the Deep Baseline convolutions), ``detector`` and ``total``."""
    model = build_model(cfg, in_dim, num_classes)
    module = refactoring_module(model)
    refactoring = count_parameters(module) if module is not None else 0
    total = count_parameters(model)
    return {"refactoring": refactoring, "detector": total - refactoring, "total": total}
