"""Training loop of the one-stage detectors (``train.py`` and ``train_one_epoch`` of the official code; facts sec.
3, 4 and 6).

An epoch visits the training videos in a seeded random order, ``batch_size`` (2) per step, the last incomplete
batch dropped (``drop_last`` of the official loader); each video is cropped (:func:`.data.crop_for_training`),
the batch padded to ``max_seq_len`` and noised, the points of all levels labelled (centre sampling, regression
ranges per level; TemporalMaxer's recipe picks the least-cost regression target), the decoder's objective
(:mod:`.objective`) back-propagated, the gradient clipped to L2 norm ``clip_grad_norm`` (1.0), AdamW and the
warm-up + cosine schedule stepped and the EMA updated. The EMA weights after ``warmup_epochs + epochs`` epochs are
the trained model: no epoch is selected, on any split.

The official ``train.py`` evaluates the EMA model on the *test* split after every epoch from ``(E - 5) // 2`` on
and keeps the best one (facts sec. 0.4). ``one_stage.train.snapshots`` keeps the EMA weights of exactly those
epochs so that a diagnostic row can measure what that selection adds (the runner evaluates them only to report
the gain; the row's model is still the last epoch's).

The model trains on its own device (the row's): crops, padding and input noise are made on the host (numpy
generators and the seeded CPU generator: the same draws on every device) and the batch moved, the targets
assigned on the device; ``run.mixed_precision`` autocasts the forward pass and the objective.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.progress import TextColumn

from talbench.models.actionformer import ActionFormerOutputs
from talbench.models.cltdr_gmg.detector import CLTDROutputs
from talbench.models.one_stage.losses import PositiveCountNormalizer
from talbench.models.tridet import TridentOutputs
from talbench.progress import task_progress
from talbench.runners.common.device import autocast, module_device
from talbench.runners.one_stage.build import recipe
from talbench.runners.one_stage.data import VideoSequence, crop_for_training, padded_batch
from talbench.runners.one_stage.objective import (
    LossSettings,
    LossTerms,
    actionformer_loss,
    cltdr_loss,
    trident_loss,
)
from talbench.runners.one_stage.optim import ModelEMA, make_optimizer
from talbench.runners.one_stage.targets import (
    assign_targets,
    min_cost_regression_targets,
    point_grid,
    regression_ranges,
)


@dataclass
class TrainHistory:
    epoch_seconds: list[float] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, dict] = field(default_factory=dict)  # epoch (1-based) -> EMA state dict

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))


def loss_settings(cfg: dict) -> LossSettings:
    loss, cltdr = cfg["one_stage"]["loss"], cfg["one_stage"]["cltdr"]
    return LossSettings(loss["loss_weight"], loss["focal_alpha"], loss["focal_gamma"], loss["iou_weight_power"],
                        loss["label_smoothing"], cltdr["refined_weight"], cltdr["coarse_weight"])


def snapshot_epochs(total_epochs: int) -> range:
    """The epochs (1-based) the official ``train.py`` evaluates on the test split: from ``(E - 5) // 2 + 1``."""
    return range(max((total_epochs - 5) // 2, 0) + 1, total_epochs + 1)


def _flat(per_level: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([x.transpose(1, 2) for x in per_level], dim=1)


def step_loss(model, outputs, crops, cfg: dict, num_classes: int, normalizer: PositiveCountNormalizer,
              settings: LossSettings) -> LossTerms:
    """Label the points of one batch (on the device of the outputs) and compute the decoder's objective."""
    os_cfg, rec = cfg["one_stage"], recipe(cfg)
    device = outputs.masks[0].device
    grid = point_grid([m.shape[-1] for m in outputs.masks], model.strides,
                      regression_ranges(os_cfg["num_levels"], os_cfg["assignment"]["first_range"]), device)
    segments = [torch.from_numpy(c.segments).float().to(device) for c in crops]
    labels = [torch.tensor(c.labels, dtype=torch.long).to(device) for c in crops]
    cls_targets, reg_targets = assign_targets(grid, segments, labels, num_classes,
                                              os_cfg["assignment"]["center_sample_radius"])
    valid = torch.cat(outputs.masks, dim=1)
    if isinstance(outputs, ActionFormerOutputs):
        if rec["assignment"] == "min_cost":
            reg_targets = min_cost_regression_targets(grid, segments, labels, _flat(outputs.cls_logits),
                                                      _flat(outputs.offsets), rec["min_cost"]["cls_weight"],
                                                      rec["min_cost"]["iou_weight"])
        return actionformer_loss(outputs, cls_targets, reg_targets, valid, normalizer, settings)
    if rec["assignment"] != "shortest":
        raise ValueError(f"the {rec['assignment']} assignment needs the ActionFormer decoder's per-point offsets")
    if isinstance(outputs, TridentOutputs):
        return trident_loss(outputs, cls_targets, reg_targets, valid, normalizer, settings)
    if isinstance(outputs, CLTDROutputs):
        return cltdr_loss(outputs, model.strides, cls_targets, reg_targets, valid, normalizer, settings)
    raise TypeError(f"no objective for {type(outputs).__name__}")


def train_detector(model, videos: list[VideoSequence], cfg: dict, seed: int, num_classes: int, *,
                   console=None, description: str = "train",
                   after_epoch: Callable[[int, torch.nn.Module], None] | None = None) -> tuple[ModelEMA, TrainHistory]:
    """Train ``model`` (module docstring); returns its EMA and the history (with the EMA snapshots when
    ``one_stage.train.snapshots``). ``after_epoch(epoch, ema_model)`` runs after each epoch (0-based)."""
    os_cfg, rec = cfg["one_stage"], recipe(cfg)
    data, train = os_cfg["data"], os_cfg["train"]
    batch_size = data["batch_size"]
    steps_per_epoch = len(videos) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(videos)} training videos make no batch of {batch_size}")
    total_epochs = rec["warmup_epochs"] + rec["epochs"]
    optimizer, scheduler = make_optimizer(model, rec["lr"], rec["weight_decay"],
                                          rec["warmup_epochs"] * steps_per_epoch, total_epochs * steps_per_epoch,
                                          train["eta_min"])
    ema = ModelEMA(model, train["ema_decay"])
    normalizer = PositiveCountNormalizer(os_cfg["loss"]["init_loss_norm"], os_cfg["loss"]["normalizer_momentum"])
    settings = loss_settings(cfg)
    keep = set(snapshot_epochs(total_epochs)) if train["snapshots"] else set()
    history = TrainHistory()
    device = module_device(model)
    parameters = list(model.parameters())  # clipped every step: walking the modules each time cost 3 %
    with task_progress(console, TextColumn("loss {task.fields[loss]:.3f}"), disable=console is None,
                       transient=True) as progress:
        task = progress.add_task(description, total=total_epochs, loss=float("nan"))
        for epoch in range(total_epochs):
            started = time.perf_counter()
            model.train()
            rng = np.random.default_rng([seed, epoch])
            order = rng.permutation(len(videos))
            sums: dict[str, float] = {}
            for step in range(steps_per_epoch):
                batch = [videos[i] for i in order[step * batch_size:(step + 1) * batch_size]]
                crops = [crop_for_training(v, data["max_seq_len"], data["trunc_thresh"], data["crop_ratio"], rng)
                         for v in batch]
                x, mask = padded_batch([c.features for c in crops], data["max_seq_len"])
                if rec["input_noise"] > 0:
                    x = x + torch.randn_like(x) * rec["input_noise"]
                x, mask = x.to(device), mask.to(device)
                with autocast(cfg, device):
                    terms = step_loss(model, model(x, mask), crops, cfg, num_classes, normalizer, settings)
                optimizer.zero_grad(set_to_none=True)
                terms.total.backward()
                if train["clip_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(parameters, train["clip_grad_norm"], foreach=True)
                optimizer.step()
                scheduler.step()
                ema.update()
                for key, value in terms.as_floats().items():
                    sums[key] = sums.get(key, 0.0) + value
            history.epoch_seconds.append(time.perf_counter() - started)
            history.losses.append({k: v / steps_per_epoch for k, v in sums.items()})
            if epoch + 1 in keep:
                history.snapshots[epoch + 1] = copy.deepcopy(ema.module.state_dict())
            progress.update(task, advance=1, loss=history.losses[-1]["total"])
            if after_epoch is not None:
                after_epoch(epoch, ema.module)
    return ema, history
