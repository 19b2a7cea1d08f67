"""Training BSN (Lin et al., ECCV 2018): the TEM on sliding windows (sec. 3.3, eqs. 1-2), then the PEM on the
TEM's candidate proposals (sec. 3.5, eq. 8), on ``bsn.train_split``; cached under ``models/bsn/<hash>/seed<k>/``.

BSN trains on the device of ``run.device`` (initialised on the CPU, the windows and BSP features kept in CPU
memory and moved a batch at a time, the batch orders and the PEM's sampling masks drawn from CPU generators),
with ``run.mixed_precision`` around its forward passes and losses.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from talbench.config import train_hash
from talbench.errors import ConfigError
from talbench.eval.tiou import pairwise_tiou
from talbench.models import count_parameters
from talbench.models.bsn import PEM, TEM, pem_loss, tem_loss
from talbench.progress import task_progress
from talbench.runners.bsn.pgm import (
    seconds_to_cells,
    tem_curves,
    tem_targets,
    video_candidates,
    window_stride,
    windows,
)
from talbench.runners.common.checkpoints import (
    load_checkpoint,
    models_root,
    save_checkpoint,
    training_code_hash,
)
from talbench.runners.common.device import autocast, device_key, precision_name, row_device

STREAMS = ("rgb", "flow", "both")
# bsn keys that only change inference or the detector's input: left out of the checkpoint hash
INFERENCE_KEYS = {
    "source",
    "external_path",
    "external_normalized",
    "pem_top_k_infer",
    "soft_nms_sigma",
    "soft_nms_threshold",
    "max_proposals",
}


@dataclass
class BSN:
    """A trained BSN: TEM + PEM and the settings that produced them."""

    tem: TEM
    pem: PEM
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)  # the run section: device and mixed precision

    @property
    def param_counts(self) -> dict[str, int]:
        return {"tem": count_parameters(self.tem), "pem": count_parameters(self.pem)}


def _video_segments(instances: pd.DataFrame) -> dict[str, np.ndarray]:
    return {vid: g[["start", "end"]].to_numpy(np.float64) for vid, g in instances.groupby("video_id", sort=False)}


def train_tem(
    dataset, video_ids: list[str], settings: dict[str, Any], console: Console | None, run: dict[str, Any] | None = None
) -> tuple[TEM, dict[str, float]]:
    """Train the TEM on sliding windows of ``video_ids`` (BSN section 3.3 and 4.1) on ``run.device``."""
    compute = {"run": run or {}}
    device = row_device(compute)
    stream, window, stride = settings["stream"], settings["window"], window_stride(settings)
    segments = _video_segments(dataset.instances(settings["train_split"]))
    inputs, targets, masks = [], [], []
    for video_id in video_ids:
        features = np.asarray(dataset.features(video_id, stream), dtype=np.float32)
        centers = np.asarray(dataset.snippet_centers(video_id), dtype=np.float64)
        gt = seconds_to_cells(segments.get(video_id, np.zeros((0, 2))), centers)
        f, t, m = windows(features, tem_targets(len(features), gt, settings["boundary_ratio"]), window, stride)
        inputs.append(f)
        targets.append(t)
        masks.append(m)
    x = torch.from_numpy(np.concatenate(inputs))
    y = torch.from_numpy(np.concatenate(targets))
    valid = torch.from_numpy(np.concatenate(masks)).bool()

    torch.manual_seed(settings["seed"])
    tem = TEM(x.shape[1], settings["tem_hidden"], settings["tem_output_scale"]).to(device)
    optimizer = torch.optim.Adam(tem.parameters(), lr=settings["tem_lr"], weight_decay=settings["tem_weight_decay"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings["tem_lr_step"], gamma=0.1)
    generator = torch.Generator().manual_seed(settings["seed"])
    batch = settings["tem_batch_size"]
    losses: list[float] = []
    with task_progress(console, disable=console is None) as progress:
        task = progress.add_task(f"BSN TEM ({len(x)} windows)", total=settings["tem_epochs"])
        for _ in range(settings["tem_epochs"]):
            tem.train()
            order = torch.randperm(len(x), generator=generator)
            epoch_loss = 0.0
            for begin in range(0, len(x), batch):
                idx = order[begin : begin + batch]
                mask = valid[idx].to(device)
                with autocast(compute, device):
                    out = tem(x[idx].to(device))
                    loss, _ = tem_loss(
                        out.permute(0, 2, 1)[mask].T.unsqueeze(0),
                        y[idx].to(device).permute(0, 2, 1)[mask].T.unsqueeze(0),
                        settings["tem_action_weight"],
                        settings["tem_match_threshold"],
                        settings["tem_end_weight"],
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                epoch_loss += loss.detach().item() * len(idx)
            scheduler.step()
            losses.append(epoch_loss / len(x))
            progress.update(task, advance=1, description=f"BSN TEM loss {losses[-1]:.4f}")
    tem.eval()
    return tem, {"tem_final_loss": losses[-1] if losses else float("nan")}


def train_pem(
    samples: list[tuple[np.ndarray, np.ndarray]], settings: dict[str, Any], console: Console | None,
    run: dict[str, Any] | None = None,
) -> tuple[PEM, dict[str, float]]:
    """Train the PEM on ``(bsp, iou)`` per training video; a batch is ``pem_batch_videos`` videos (as the
    reference code's per-video batches), sampled by tIoU inside the loss (eq. 8); on ``run.device``."""
    compute = {"run": run or {}}
    device = row_device(compute)
    torch.manual_seed(settings["seed"] + 1)
    pem = PEM(samples[0][0].shape[1], settings["pem_hidden"], settings["pem_output_scale"]).to(device)
    optimizer = torch.optim.Adam(pem.parameters(), lr=settings["pem_lr"], weight_decay=settings["pem_weight_decay"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings["pem_lr_step"], gamma=0.1)
    generator = torch.Generator().manual_seed(settings["seed"] + 1)
    tensors = [(torch.from_numpy(b), torch.from_numpy(i.astype(np.float32))) for b, i in samples if len(b)]
    batch = settings["pem_batch_videos"]
    losses: list[float] = []
    with task_progress(console, disable=console is None) as progress:
        task = progress.add_task("BSN PEM", total=settings["pem_epochs"])
        for _ in range(settings["pem_epochs"]):
            pem.train()
            order = torch.randperm(len(tensors), generator=generator).tolist()
            epoch_loss, batches = 0.0, 0
            for begin in range(0, len(order), batch):
                chosen = [tensors[k] for k in order[begin : begin + batch]]
                bsp = torch.cat([c[0] for c in chosen]).to(device)
                iou = torch.cat([c[1] for c in chosen]).to(device)
                with autocast(compute, device):
                    loss = pem_loss(
                        pem(bsp),
                        iou,
                        generator,
                        settings["pem_high_iou"],
                        settings["pem_low_iou"],
                        settings["pem_ratio_medium"],
                        settings["pem_ratio_low"],
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                epoch_loss += loss.detach().item()
                batches += 1
            scheduler.step()
            losses.append(epoch_loss / max(batches, 1))
            progress.update(task, advance=1, description=f"BSN PEM loss {losses[-1]:.4f}")
    pem.eval()
    return pem, {"pem_final_loss": losses[-1] if losses else float("nan")}


def training_config(cfg: dict[str, Any], features_id: str | None = None) -> dict[str, Any]:
    """What determines the trained BSN (hashed for ``models/bsn/<hash>/seed<k>/``): the data section,
    the ``bsn`` keys that influence training (not the detector's source nor inference settings), the mixed
    precision when ``run.mixed_precision`` asks for one and, for BSN on transformed features (RefactorNet's F'),
    the transform's identity ``features_id``. (The device is one of the checkpoint's inputs, :func:`fit_bsn`.)"""
    mixed = precision_name(cfg)
    return {
        "data": cfg["data"],
        "bsn": {k: v for k, v in cfg["bsn"].items() if k not in INFERENCE_KEYS},
        **({"features": features_id} if features_id is not None else {}),
        **({"mixed_precision": mixed} if mixed != "none" else {}),
    }


def fit_bsn(cfg: dict[str, Any], dataset, console: Console | None = None, features_id: str | None = None) -> BSN:
    """Train BSN (TEM, then PEM on the TEM's candidates) on ``bsn.train_split`` of ``dataset``, or load the
    checkpoint of an identical training configuration from ``models/bsn/<hash>/seed<seed>/``. ``dataset`` may
    be a view whose ``features()`` transforms the stored features; ``features_id`` then names the transform."""
    settings = validate_settings(cfg["bsn"])
    run = cfg.get("run", {})
    device = row_device(cfg)
    train_cfg = training_config(cfg, features_id)
    inputs = {"code": training_code_hash(__name__), "data": dataset.checksum(), "device": device_key(device)}
    directory = models_root() / "bsn" / train_hash(train_cfg) / f"seed{settings['seed']}"
    video_ids = list(dataset.video_ids(settings["train_split"]))
    if not video_ids:
        raise ConfigError(f"bsn.train_split '{settings['train_split']}' has no videos")
    in_dim = np.asarray(dataset.features(video_ids[0], settings["stream"])).shape[1]
    states = load_checkpoint(directory, train_cfg, inputs)
    if states is not None:
        tem = TEM(in_dim, settings["tem_hidden"], settings["tem_output_scale"])
        tem.load_state_dict(states["tem"])
        pem = PEM(settings["bsp_action_points"] + 2 * settings["bsp_boundary_points"], settings["pem_hidden"],
                  settings["pem_output_scale"])
        pem.load_state_dict(states["pem"])
        if console is not None:
            console.print(f"BSN: loaded checkpoint {directory}")
        return BSN(tem.to(device).eval(), pem.to(device).eval(), settings, {"loaded": 1.0}, run)

    t0 = time.perf_counter()
    tem, tem_stats = train_tem(dataset, video_ids, settings, console, run)
    t1 = time.perf_counter()
    segments = _video_segments(dataset.instances(settings["train_split"]))
    samples = []
    for video_id in video_ids:
        features = dataset.features(video_id, settings["stream"])
        centers = np.asarray(dataset.snippet_centers(video_id), dtype=np.float64)
        curves = tem_curves(tem, features, settings["window"], window_stride(settings), run)
        cells, _, _, bsp = video_candidates(curves, settings, settings["pem_top_k_train"])
        gt = seconds_to_cells(segments.get(video_id, np.zeros((0, 2))), centers)
        iou = pairwise_tiou(cells.astype(np.float64), gt).max(axis=1) if len(gt) else np.zeros(len(cells))
        samples.append((bsp, iou))
    t2 = time.perf_counter()
    pem, pem_stats = train_pem(samples, settings, console, run)
    t3 = time.perf_counter()
    timings = {"tem_train_s": t1 - t0, "pgm_train_s": t2 - t1, "pem_train_s": t3 - t2, **tem_stats, **pem_stats}
    save_checkpoint(directory, {"tem": tem.state_dict(), "pem": pem.state_dict()}, train_cfg, settings["seed"],
                    inputs)
    return BSN(tem, pem, settings, timings, run)


def validate_settings(bsn: dict[str, Any]) -> dict[str, Any]:
    """Check the ``bsn`` section; a bad value is a ConfigError naming ``bsn.<key>``."""
    settings = copy.deepcopy(bsn)
    if settings.get("stream") not in STREAMS:
        raise ConfigError(f"params.yaml: bsn.stream must be one of {STREAMS}, got '{settings.get('stream')}'")
    for key in ("window", "max_duration", "tem_epochs", "pem_epochs", "tem_batch_size", "pem_batch_videos",
                "pem_top_k_train", "pem_top_k_infer", "max_proposals", "bsp_action_points",
                "bsp_boundary_points", "bsp_interp_points"):
        if not isinstance(settings.get(key), int) or settings[key] < 1:
            raise ConfigError(f"params.yaml: bsn.{key} must be a positive integer, got {settings.get(key)!r}")
    if settings["window"] < 2:
        raise ConfigError("params.yaml: bsn.window must be at least 2 cells")
    if not 0.0 <= settings["window_overlap"] < 1.0:
        raise ConfigError(f"params.yaml: bsn.window_overlap must be in [0, 1), got {settings['window_overlap']}")
    if settings["bsp_action_points"] < 2 or settings["bsp_boundary_points"] < 2:
        raise ConfigError("params.yaml: bsn.bsp_action_points and bsn.bsp_boundary_points must be >= 2")
    return settings


