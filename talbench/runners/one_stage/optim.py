"""Optimisation of the one-stage detectors (``libs/utils/train_utils.py`` and ``lr_schedulers.py`` of ActionFormer,
TriDet, TemporalMaxer and CLTDR-GMG; facts sec. 6): AdamW with decoupled weight decay on the weights of linear
and convolution layers only, a per-step linear warm-up then cosine decay, and an EMA of the weights.

* **Weight decay groups** (``make_optimizer``): decay on the ``weight`` of ``Linear``, ``Conv1d`` (masked convs
  wrap one) and ``ConvTranspose1d`` modules and on the complex weights ``w1``, ``w2`` of the GMG global filter; no
  decay on biases, normalisation weights, the per-level ``Scale`` and the drop-path scales, nor on ``b1``, ``b2``.
  A parameter that fits neither group is an error (the official code asserts the same).
* **Schedule** (``LinearWarmupCosineAnnealingLR``, stepped after every iteration): ``W = warmup_epochs x
  iterations``, ``M = (warmup_epochs + epochs) x iterations``; at step ``k < W`` the rate is ``lr x k / (W - 1)``
  (0 at the first step), then ``eta_min + (lr - eta_min) (1 + cos(pi (k - W) / (M - W))) / 2``. The configs'
  ``epochs`` exclude the warm-up: CLTDR-GMG THUMOS14 I3D trains 20 + 20 = 40 epochs.
* **EMA** (``ModelEma``, decay 0.999): after every step, every state-dict entry (buffers too)
  ``e <- decay e + (1 - decay) m``; evaluation uses the EMA model.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.drop_path import AffineDropPath
from talbench.models.blocks.scale import Scale
from talbench.models.cltdr_gmg.gmg import FourierGlobalFilter

DECAYED_MODULES = (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)
NORMS = (ChannelLayerNorm, nn.LayerNorm, nn.GroupNorm)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The two AdamW groups of the official ``make_optimizer`` (module docstring)."""
    decay, no_decay = {}, {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if name == "bias" or isinstance(module, (Scale, AffineDropPath)):
                no_decay[full] = param
            elif isinstance(module, FourierGlobalFilter):
                (decay if name in ("w1", "w2") else no_decay)[full] = param
            elif name == "weight" and isinstance(module, DECAYED_MODULES):
                decay[full] = param
            elif name == "weight" and isinstance(module, NORMS):
                no_decay[full] = param
            else:
                raise ValueError(f"parameter '{full}' of {type(module).__name__} has no weight-decay rule")
    return [
        {"params": [decay[k] for k in sorted(decay)], "weight_decay": weight_decay},
        {"params": [no_decay[k] for k in sorted(no_decay)], "weight_decay": 0.0},
    ]


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, eta_ratio: float) -> float:
    """Learning-rate factor at ``step`` (module docstring); ``eta_ratio = eta_min / lr``."""
    if step < warmup_steps:
        return step / (warmup_steps - 1) if warmup_steps > 1 else 0.0
    if total_steps <= warmup_steps:
        return 1.0
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return eta_ratio + (1 - eta_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, warmup_steps: int, total_steps: int,
                   eta_min: float) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps, eta_min / lr))
    return optimizer, scheduler


class ModelEMA:
    """An exponential moving average of a model's state dict (the official ``ModelEma``) for the model given at
    construction: its state-dict tensors are gathered once (they are the live parameters and buffers, updated in
    place by the optimiser), not rebuilt at every step."""

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        self.decay = decay
        self._averaged = list(self.module.state_dict().values())
        self._tracked = list(model.state_dict().values())

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_mul_(self._averaged, self.decay)
        torch._foreach_add_(self._averaged, self._tracked, alpha=1.0 - self.decay)
