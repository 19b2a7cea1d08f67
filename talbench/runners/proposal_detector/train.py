"""Training of the proposal-level detector (D-Net AAAI 2022 sec. 3.5, eq. 15) on sampled proposals.

Optimiser as the P-GCN / ContextLoc reference code: SGD with momentum 0.9 and weight decay, the learning
rate divided by 10 at ``detector.lr_steps`` (epochs); each epoch visits every training video
``detector.epoch_repeats`` times (the references' ``training_epoch_multiplier``: 20 on THUMOS14) in one seeded
random order of the repeated list, ``detector.videos_per_batch`` videos per step (the references' batch of 32)
and 8 freshly sampled proposals per visit (:mod:`talbench.runners.proposal_detector.sampling`). No epoch is selected: the model after the configured epochs is
the model (the test split is never looked at while training). ``detector.ema_decay`` (off in the papers'
setting) keeps an exponential moving average of the weights, updated every step, and makes it the trained model:
the one-stage detectors' (ActionFormer, TriDet) way to a final model that depends less on the last steps' noise.
The model trains on its own device (the row's); the batches are gathered there from the videos' snippets, the
targets built with numpy and moved; ``run.mixed_precision`` autocasts the forward pass and the loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.progress import TextColumn

from talbench.models.proposal_detector import LossWeights, ProposalDetector, detection_loss
from talbench.progress import task_progress
from talbench.runners.common.device import autocast, module_device
from talbench.runners.common.snippets import VideoSnippets
from talbench.runners.proposal_detector.regions import build_batch
from talbench.runners.proposal_detector.sampling import AssignedProposals, sample_video, training_targets


@dataclass
class TrainHistory:
    epoch_seconds: list[float] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))


def train_detector(model: ProposalDetector, videos: dict[str, VideoSnippets],
                   assigned: dict[str, AssignedProposals], cfg: dict, seed: int, weights: LossWeights, *,
                   description: str = "train",
                   console=None, after_epoch: Callable[[int], None] | None = None,
                   optimizer: torch.optim.Optimizer | None = None,
                   extra_loss: Callable[[], torch.Tensor] | None = None) -> TrainHistory:
    """Train ``model`` for ``detector.epochs`` epochs (each ``detector.epoch_repeats`` passes over the videos)
    with the loss ``weights`` of the family's paper;
    ``after_epoch(epoch)`` runs after each one. ``optimizer`` replaces the default SGD and ``extra_loss()`` is
    added to the detection loss at every step (RefactorNet's end-to-end stage: Adam and L_R on its sample
    pairs)."""
    det, sampling = cfg["detector"], cfg["detector"]["sampling"]
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=det["lr"], momentum=det["momentum"],
                                             weight_decay=det["weight_decay"])
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=det["lr_steps"], gamma=0.1)
    ema = None
    if det["ema_decay"]:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(det["ema_decay"]))
    video_ids = [v for v in videos if v in assigned and (assigned[v].kind >= 0).any()]
    if not video_ids:
        raise ValueError("no training video has a labelled proposal (check proposals and ground truth)")
    history = TrainHistory()
    per_batch = det["videos_per_batch"]
    device = module_device(model)
    with task_progress(console, TextColumn("loss {task.fields[loss]}"), disable=console is None,
                       transient=True) as progress:
        task = progress.add_task(description, total=det["epochs"], loss="-")  # no loss before the first epoch
        for epoch in range(det["epochs"]):
            start = time.perf_counter()
            model.train()
            rng = np.random.default_rng([seed, epoch])
            order = rng.permutation(len(video_ids) * det["epoch_repeats"]) % len(video_ids)
            sums: dict[str, float] = {}
            steps = 0
            for first in range(0, len(order), per_batch):
                batch_ids = [video_ids[i] for i in order[first:first + per_batch]]
                picks = [sample_video(assigned[v], sampling, rng) for v in batch_ids]
                batch = build_batch([videos[v] for v in batch_ids],
                                    [assigned[v].segments[p] for v, p in zip(batch_ids, picks)], det["max_snippets"])
                parts = [training_targets(assigned[v], p, sampling["incomplete_cls_per_video"])
                         for v, p in zip(batch_ids, picks)]
                targets = {k: torch.from_numpy(np.concatenate([t[k] for t in parts])).to(device) for k in parts[0]}
                with autocast(cfg, device):
                    terms = detection_loss(model(batch), targets, weights)
                    loss = terms.total + extra_loss() if extra_loss is not None else terms.total
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if det["clip_grad_norm"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), det["clip_grad_norm"])
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                for k, v in terms.as_floats().items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
            scheduler.step()
            history.epoch_seconds.append(time.perf_counter() - start)
            history.losses.append({k: v / steps for k, v in sums.items()})
            progress.update(task, advance=1, loss=f"{history.losses[-1]['total']:.3f}")
            if after_epoch is not None:
                after_epoch(epoch)
    if ema is not None:  # the averaged weights are the trained model
        model.load_state_dict(ema.module.state_dict())
    return history
