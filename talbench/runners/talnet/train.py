"""Joint training of TAL-Net's two stages (supplementary A.1), one video per mini-batch.

Each step, on one video (the videos in a seeded random order every epoch):

1. SPN: logits and offsets of every anchor; 256 of the video's training anchors (inside the video), up to half
   positive (:mod:`talbench.runners.talnet.sampling`); ``L_cls + lambda L_reg`` (eq. 1).
2. Proposals of the current SPN from the training anchors (decoding, clipping, NMS 0.7, top 300), without
   gradient (the TF OD API stops the gradient at the proposal boxes); labelled against the ground truth
   (foreground above tIoU 0.5) and 64 sampled, up to a quarter foreground.
3. Classifier on the sampled proposals; ``L_cls + lambda L_reg`` with the offsets of each proposal's class.
4. The two stages' losses added with equal weights; one Adam step (learning rate 1e-4).

The number of epochs is not in the paper (``train.epochs``; the paper profile's 16 are the Faster R-CNN
reference's VOC07 schedule, 80k one-image mini-batches over 5,011 images, in passes over the data). No weight
decay (the API's regulariser weight 0) and no gradient clipping (the paper names only Adam and its rate).

The network trains on its own device (the row's): the sampling and labelling run with numpy on the host (the same
draws on every device), their indices and targets are moved; ``run.mixed_precision`` autocasts the networks'
forward passes, whose outputs are decoded and scored in float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from rich.progress import TextColumn

from talbench.models.talnet.losses import class_offsets, multitask_loss
from talbench.models.talnet.network import LateFusionTALNet, TALNet
from talbench.progress import task_progress
from talbench.runners.common.device import autocast, module_device
from talbench.runners.talnet.anchors import encode, make_anchors
from talbench.runners.talnet.inference import generate_proposals
from talbench.runners.talnet.sampling import label_proposals, sample_balanced
from talbench.runners.talnet.videos import TrainVideo, VideoFeatures

LOSS_TERMS = ("spn_cls", "spn_reg", "cls", "reg")


def training_step(net: TALNet | LateFusionTALNet, video: TrainVideo, features: dict[str, torch.Tensor], lengths: np.ndarray,
                  settings: dict, rng: np.random.Generator, run: dict | None = None) -> dict[str, torch.Tensor]:
    """The four loss terms of one video (an empty dict when the video offers no example). ``net`` is one network
    or a late-fusion model, whose averaged logits the losses then read (``talnet.late_fusion: joint``); it runs on
    the device of ``features``, autocast as ``run`` (the ``run`` section) says."""
    train, proposal_settings = settings["train"], settings["proposals"]
    device = module_device(net)

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    with autocast({"run": run or {}}, device):
        logits, offsets = net.propose(features)
    logits, offsets = logits.float().reshape(-1, 2), offsets.float().reshape(-1, 2)
    terms: dict[str, torch.Tensor] = {}

    picked = sample_balanced(video.anchor_labels == 1, video.anchor_labels == 0, train["anchor_batch"],
                             train["anchor_positive_fraction"], rng)
    if picked.size:
        index = on_device(video.anchor_index[picked])
        terms["spn_cls"], terms["spn_reg"] = multitask_loss(
            logits[index], on_device(video.anchor_labels[picked]), offsets[index],
            on_device(video.anchor_targets[picked]), train["reg_weight"])
    if not video.anchor_index.size:
        return terms

    index = on_device(video.anchor_index)
    anchors = on_device(make_anchors(video.grid.cells, lengths)[video.anchor_index]).to(logits.dtype)
    with torch.no_grad():
        proposals, _ = generate_proposals(logits[index], offsets[index], anchors, video.grid.cells,
                                          proposal_settings["nms_iou"], proposal_settings["max_proposals"])
    assignment = label_proposals(proposals.cpu().numpy().astype(np.float64), video.truth, video.truth_labels,
                                 train["proposal_foreground_iou"])
    chosen = sample_balanced(assignment.labels > 0, assignment.labels == 0, train["proposal_batch"],
                             train["proposal_foreground_fraction"], rng)
    if not chosen.size:
        return terms
    selected = proposals[on_device(chosen)]
    labels = assignment.labels[chosen]
    targets = torch.zeros_like(selected)
    foreground = np.flatnonzero(labels > 0)
    if foreground.size:
        truth = on_device(video.truth[assignment.matched[chosen][foreground]]).to(selected.dtype)
        rows = on_device(foreground)
        targets[rows] = encode(truth, selected[rows])
    with autocast({"run": run or {}}, device):
        class_logits, offsets_per_class = net.classify(features, selected)
    labels_t = on_device(labels)
    terms["cls"], terms["reg"] = multitask_loss(class_logits.float(), labels_t,
                                                class_offsets(offsets_per_class.float(), labels_t), targets,
                                                train["reg_weight"])
    return terms


def train_network(net: TALNet | LateFusionTALNet, videos: list[TrainVideo], source: VideoFeatures, lengths: np.ndarray,
                  settings: dict, rng: np.random.Generator, after_epoch: Callable[[int], None] | None = None,
                  console=None, description: str = "TAL-Net", run: dict | None = None) -> dict:
    """Train ``net`` (on the device of ``source``'s features) for ``train.epochs`` epochs (``settings`` = the
    ``talnet`` section, ``run`` the ``run`` section: ``mixed_precision``); returns the log: seconds, steps and
    mean loss terms per epoch. ``after_epoch(epoch)`` runs after each epoch (0-based)."""
    train = settings["train"]
    optimizer = torch.optim.Adam(net.parameters(), lr=train["lr"], foreach=True)
    log: dict = {"epoch_seconds": [], "losses": [], "steps_per_epoch": []}
    with task_progress(console, TextColumn("loss {task.fields[loss]:.3f}"), disable=console is None,
                       transient=True) as progress:
        task = progress.add_task(description, total=train["epochs"], loss=float("nan"))
        for epoch in range(train["epochs"]):
            start = time.perf_counter()
            net.train()
            sums = dict.fromkeys(LOSS_TERMS, 0.0)
            steps = 0
            for i in rng.permutation(len(videos)):
                video = videos[i]
                terms = training_step(net, video, source.features(video.video_id, net.streams), lengths, settings,
                                      rng, run)
                if not terms:
                    continue
                optimizer.zero_grad(set_to_none=True)
                sum(terms.values()).backward()
                optimizer.step()
                for key, value in terms.items():
                    sums[key] += float(value.detach())
                steps += 1
            log["epoch_seconds"].append(time.perf_counter() - start)
            log["losses"].append({k: v / max(steps, 1) for k, v in sums.items()})
            log["steps_per_epoch"].append(steps)
            progress.update(task, advance=1, loss=sum(log["losses"][-1].values()))
            if after_epoch is not None:
                after_epoch(epoch)
    return log
