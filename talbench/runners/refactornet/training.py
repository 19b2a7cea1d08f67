"""RefactorNet's two training stages (CVPR 2022, sec. 5.2).

* Stage 1: sample collection (sec. 3.3) on the training videos' snippets, then phi_A and phi_C alone with
  ``alpha (L_A + L_C)`` (eqs. 1, 2, 5), Adam, ``refactornet.stage1``.
* Stage 2: the whole network end to end, ``L_R + L_D`` (eqs. 5, 7), Adam, ``refactornet.stage2``, with the
  refactoring module in the shared detector's encoder slot, on the labelled proposals of the training videos.

alpha of eq. 5 is each pair's cosine similarity (sec. 5.2) times ``alpha_scale`` (``alpha_mode: similarity``)
or the constant ``alpha_scale``.

Both stages run on the device of the model (the row's): the pairs are kept there, their mini-batch orders drawn
from CPU generators (the same batches on every device); ``run.mixed_precision`` autocasts the losses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from rich.progress import track

from talbench.models.proposal_detector import LossWeights
from talbench.models.refactornet import RefactoredDetector, RefactorNet, refactoring_loss, refactoring_module
from talbench.runners.common.device import autocast, module_device
from talbench.runners.common.snippets import VideoSnippets
from talbench.runners.proposal_detector.train import train_detector
from talbench.runners.refactornet.coupling import CouplingSamples, collect_coupling_samples


def pair_alpha(similarity: np.ndarray, mode: str, scale: float) -> np.ndarray:
    """alpha of eq. 5 per pair: the pair's cosine similarity (sec. 5.2) times ``scale``, or ``scale``."""
    if mode == "similarity":
        return (scale * similarity).astype(np.float32)
    return np.full(similarity.shape, scale, dtype=np.float32)


class PairBatches:
    """Tensors of the (action, coupling) pairs and their alpha on ``device``; mini-batches of pair indices."""

    def __init__(self, samples: CouplingSamples, rc: dict, device: torch.device | str = "cpu"):
        features = torch.from_numpy(samples.features)
        self.action = features[torch.from_numpy(samples.action_index)].to(device)
        self.coupling = features[torch.from_numpy(samples.coupling_index)].to(device)
        self.alpha = torch.from_numpy(pair_alpha(samples.similarity, rc["alpha_mode"], rc["alpha_scale"])).to(device)

    def __len__(self) -> int:
        return int(self.alpha.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pairs ``index`` (drawn on the CPU) selects."""
        index = index.to(self.alpha.device)
        return self.action[index], self.coupling[index], self.alpha[index]


def train_stage1(module: RefactorNet, pairs: PairBatches, rc: dict, seed: int, console=None,
                 run: dict | None = None) -> list[dict[str, float]]:
    """Stage 1 (sec. 5.2): the two encoders alone with ``alpha (L_A + L_C)``, Adam, ``stage1`` schedule
    (``run``: the row's run section, for mixed precision)."""
    stage = rc["stage1"]
    compute, device = {"run": run or {}}, module_device(module)
    optimizer = torch.optim.Adam(module.parameters(), lr=stage["lr"])
    generator = torch.Generator().manual_seed(seed)
    history = []
    epochs = range(stage["epochs"])
    for _ in track(epochs, description="refactornet stage 1", console=console, disable=console is None,
                   transient=True):
        module.train()
        order = torch.randperm(len(pairs), generator=generator)
        sums, steps = {}, 0
        for first in range(0, len(pairs), stage["batch_size"]):
            index = order[first:first + stage["batch_size"]]
            if index.numel() < 2:
                continue
            action, coupling, alpha = pairs.batch(index)
            with autocast(compute, device):
                loss, parts = refactoring_loss(module, action, coupling, alpha, rc["beta"], use_la_lc=True,
                                               use_kl=False)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        history.append({k: v / max(steps, 1) for k, v in sums.items()})
    return history


def stage2_config(cfg: dict) -> dict:
    """The detector section with RefactorNet's stage-2 schedule (sec. 5.2: 20 epochs, lr 1e-3)."""
    stage = cfg["refactornet"]["stage2"]
    out = copy.deepcopy(cfg)
    out["detector"]["epochs"] = stage["epochs"]
    out["detector"]["lr"] = stage["lr"]
    out["detector"]["lr_steps"] = list(stage["lr_steps"])
    return out


def train_encoders(cfg: dict, seed: int, model: RefactoredDetector, train_videos: dict[str, VideoSnippets],
                   train_truth: dict[str, pd.DataFrame], console=None) -> tuple[PairBatches | None, dict]:
    """Sample collection (on ``train_truth``: video -> ``start, end, label_id``) and stage 1 of ``model``'s
    refactoring module; returns the pairs (``None`` without refactoring losses) and the training log."""
    rc = cfg["refactornet"]
    module = refactoring_module(model)
    refactor = module if isinstance(module, RefactorNet) else None
    log: dict = {"stage1": [], "stage2_refactoring": [], "coupling": {}}
    pairs = None
    start = time.perf_counter()
    if refactor is not None and (rc["use_la_lc"] or rc["use_kl"]):
        coupling = rc["coupling"]
        device = module_device(model)
        samples = collect_coupling_samples(
            ((vid, v.features.cpu().numpy(), v.centers, train_truth[vid]) for vid, v in train_videos.items()),
            min_similarity=coupling["min_similarity"], top_k=coupling["top_k"], chunk_size=coupling["chunk_size"],
            device=device,
        )
        log["coupling"] = samples.summary()
        pairs = PairBatches(samples, rc, device)
    log["collect_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    if pairs is not None and rc["use_la_lc"]:
        torch.manual_seed(seed)
        log["stage1"] = train_stage1(refactor, pairs, rc, seed, console, cfg["run"])
    log["stage1_seconds"] = time.perf_counter() - start
    return pairs, log


def train_end_to_end(cfg: dict, seed: int, model: RefactoredDetector, pairs: PairBatches | None, log: dict,
                     train_videos: dict[str, VideoSnippets], assigned, console=None,
                     after_epoch: Callable[[int], None] | None = None) -> dict:
    """Stage 2 of ``model`` on the labelled training proposals ``assigned``, ``L_D + L_R``; completes ``log``."""
    rc = cfg["refactornet"]
    refactor = refactoring_module(model)
    extra_loss = None
    if pairs is not None:
        generator = torch.Generator().manual_seed(seed + 1)
        batch_size = min(rc["stage2"]["pair_batch_size"], len(pairs))

        def extra_loss() -> torch.Tensor:
            index = torch.randperm(len(pairs), generator=generator)[:batch_size]
            action, coupling_feats, alpha = pairs.batch(index)
            loss, parts = refactoring_loss(refactor, action, coupling_feats, alpha, rc["beta"],
                                           use_la_lc=rc["use_la_lc"], use_kl=rc["use_kl"])
            log["stage2_refactoring"].append(parts)
            return loss

    stage2 = stage2_config(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=rc["stage2"]["lr"])
    weights = LossWeights(regression=rc["lambda2"], completeness=rc["lambda1"])  # eq. 7
    history = train_detector(model, train_videos, assigned, stage2, seed, weights, description="refactornet stage 2",
                             console=console, after_epoch=after_epoch, optimizer=optimizer, extra_loss=extra_loss)
    log["stage2_seconds"] = history.train_seconds
    log["seconds_per_epoch"] = float(np.mean(history.epoch_seconds))
    log["stage2_final_loss"] = history.losses[-1]
    steps = len(log["stage2_refactoring"])
    if steps:  # keep the mean refactoring loss parts of the last epoch only
        per_epoch = max(steps // max(len(history.epoch_seconds), 1), 1)
        last = log["stage2_refactoring"][-per_epoch:]
        log["stage2_refactoring"] = {k: float(np.mean([p[k] for p in last])) for k in last[0]}
    else:
        log["stage2_refactoring"] = {}
    return log
