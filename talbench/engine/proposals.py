"""The proposals stage (``talbench proposals``): train BSN, write its proposals for every video, AR@AN.

Pipeline (BSN, Lin et al. ECCV 2018, Fig. 2):

1. TEM trained on sliding observation windows of the training videos (BSN's THUMOS14 setting,
   ``bsn.window`` cells with ``bsn.window_overlap``), weighted binary logistic loss (eq. 1-2).
2. TEM applied to every video in the same windows; overlapping window outputs are averaged into one
   actionness / start / end curve per video.
3. PGM: boundary candidates per window, start/end pairs inside a window (``<= bsn.max_duration`` cells),
   ranked by ``p_start x p_end``; the top ``pem_top_k_*`` get a BSP feature (section 3.4).
4. PEM trained on the training videos' candidates (tIoU-balanced L2, eq. 8).
5. Every video: score ``p_start x p_end x p_conf`` (eq. 9), Soft-NMS, the top ``bsn.max_proposals`` written
   as ``proposals/<source>-<profile>/<video>.csv`` (seconds); AR@AN on the test split in
   ``results/proposals.json``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from talbench.config import ConfigError, load_params, resolve
from talbench.data.proposals import proposals_dir, write_proposals
from talbench.engine.checkpoints import load_checkpoint, models_root, save_checkpoint
from talbench.eval.tiou import pairwise_tiou
from talbench.io import atomic_write_json
from talbench.models.bsn import (
    PEM,
    TEM,
    bsp_features,
    candidate_proposals,
    count_parameters,
    pem_loss,
    tem_loss,
    tem_targets,
    window_offsets,
)
from talbench.progress import task_progress

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

    @property
    def param_counts(self) -> dict[str, int]:
        return {"tem": count_parameters(self.tem), "pem": count_parameters(self.pem)}


def window_stride(settings: dict[str, Any]) -> int:
    return max(1, round(settings["window"] * (1.0 - settings["window_overlap"])))


def seconds_to_cells(times: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Map seconds onto the (linear) cell grid: cell ``i`` is centred at ``centers[i]``."""
    step = centers[1] - centers[0] if len(centers) > 1 else 1.0
    return (np.asarray(times, dtype=np.float64) - centers[0]) / step


def cells_to_seconds(cells: np.ndarray, centers: np.ndarray) -> np.ndarray:
    step = centers[1] - centers[0] if len(centers) > 1 else 1.0
    return centers[0] + np.asarray(cells, dtype=np.float64) * step


def _video_segments(instances: pd.DataFrame) -> dict[str, np.ndarray]:
    return {vid: g[["start", "end"]].to_numpy(np.float64) for vid, g in instances.groupby("video_id", sort=False)}


def _windows(features: np.ndarray, targets: np.ndarray, window: int, stride: int):
    """Slice one video into ``(N, D, window)`` feature windows, ``(N, 3, window)`` targets and a validity
    mask; a video shorter than the window is zero-padded and the padding masked out of the loss."""
    length = len(features)
    padded_len = max(length, window)
    offsets = window_offsets(padded_len, window, stride)
    feats = np.zeros((padded_len, features.shape[1]), dtype=np.float32)
    feats[:length] = features
    tgts = np.zeros((3, padded_len), dtype=np.float32)
    tgts[:, :length] = targets
    valid = np.zeros(padded_len, dtype=np.float32)
    valid[:length] = 1.0
    index = offsets[:, None] + np.arange(window)[None, :]
    return feats[index].transpose(0, 2, 1), tgts[:, index].transpose(1, 0, 2), valid[index]


def train_tem(
    dataset, video_ids: list[str], settings: dict[str, Any], console: Console | None
) -> tuple[TEM, dict[str, float]]:
    """Train the TEM on sliding windows of ``video_ids`` (BSN section 3.3 and 4.1)."""
    stream, window, stride = settings["stream"], settings["window"], window_stride(settings)
    segments = _video_segments(dataset.instances(settings["train_split"]))
    windows, targets, masks = [], [], []
    for video_id in video_ids:
        features = np.asarray(dataset.features(video_id, stream), dtype=np.float32)
        centers = np.asarray(dataset.snippet_centers(video_id), dtype=np.float64)
        gt = seconds_to_cells(segments.get(video_id, np.zeros((0, 2))), centers)
        f, t, m = _windows(features, tem_targets(len(features), gt, settings["boundary_ratio"]), window, stride)
        windows.append(f)
        targets.append(t)
        masks.append(m)
    x = torch.from_numpy(np.concatenate(windows))
    y = torch.from_numpy(np.concatenate(targets))
    valid = torch.from_numpy(np.concatenate(masks)).bool()

    torch.manual_seed(settings["seed"])
    tem = TEM(x.shape[1], settings["tem_hidden"], settings["tem_output_scale"])
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
                out = tem(x[idx])
                mask = valid[idx]
                loss, _ = tem_loss(
                    out.permute(0, 2, 1)[mask].T.unsqueeze(0),
                    y[idx].permute(0, 2, 1)[mask].T.unsqueeze(0),
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


@torch.no_grad()
def tem_curves(tem: TEM, features: np.ndarray, window: int, stride: int) -> np.ndarray:
    """``(3, T)`` actionness / start / end of one video: TEM on the sliding windows, overlaps averaged."""
    length = len(features)
    targets = np.zeros((3, length), dtype=np.float32)
    x, _, _ = _windows(np.asarray(features, dtype=np.float32), targets, window, stride)
    out = tem(torch.from_numpy(x)).numpy()  # (N, 3, window)
    padded_len = max(length, window)
    offsets = window_offsets(padded_len, window, stride)
    index = (offsets[:, None] + np.arange(window)[None, :]).ravel()
    sums = np.zeros((3, padded_len))
    counts = np.zeros(padded_len)
    np.add.at(sums.T, index, out.transpose(0, 2, 1).reshape(-1, 3))
    np.add.at(counts, index, 1.0)
    return (sums / np.maximum(counts, 1.0))[:, :length].astype(np.float32)


def video_candidates(curves: np.ndarray, settings: dict[str, Any], top_k: int) -> pd.DataFrame:
    """PGM for one video: candidate proposals (cells), their boundary probabilities and BSP features,
    the ``top_k`` by ``p_start x p_end``."""
    actionness, start, end = curves
    cells = candidate_proposals(
        start, end, settings["window"], window_stride(settings), settings["peak_threshold"], settings["max_duration"]
    )
    start_score = start[cells[:, 0]]
    end_score = end[cells[:, 1]]
    order = np.argsort(-(start_score * end_score), kind="stable")[:top_k]
    cells = cells[order]
    bsp = bsp_features(
        actionness,
        cells,
        settings["bsp_boundary_ratio"],
        settings["bsp_action_points"],
        settings["bsp_boundary_points"],
        settings["bsp_interp_points"],
    )
    return cells, start_score[order], end_score[order], bsp


def train_pem(
    samples: list[tuple[np.ndarray, np.ndarray]], settings: dict[str, Any], console: Console | None
) -> tuple[PEM, dict[str, float]]:
    """Train the PEM on ``(bsp, iou)`` per training video; a batch is ``pem_batch_videos`` videos (as the
    reference code's per-video batches), sampled by tIoU inside the loss (eq. 8)."""
    torch.manual_seed(settings["seed"] + 1)
    pem = PEM(samples[0][0].shape[1], settings["pem_hidden"], settings["pem_output_scale"])
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
                bsp = torch.cat([c[0] for c in chosen])
                iou = torch.cat([c[1] for c in chosen])
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
    """What determines the trained BSN (hashed for ``models/bsn/<hash>/seed<k>/``): the data sections,
    the ``bsn`` keys that influence training (not the detector's source nor inference settings) and, for BSN
    on transformed features (RefactorNet's F'), the transform's identity ``features_id``."""
    return {
        "data": cfg["data"],
        "synth": cfg.get("synth"),
        "bsn": {k: v for k, v in cfg["bsn"].items() if k not in INFERENCE_KEYS},
        **({"features": features_id} if features_id is not None else {}),
    }


def fit_bsn(cfg: dict[str, Any], dataset, console: Console | None = None, features_id: str | None = None) -> BSN:
    """Train BSN (TEM, then PEM on the TEM's candidates) on ``bsn.train_split`` of ``dataset``, or load the
    checkpoint of an identical training configuration from ``models/bsn/<hash>/seed<seed>/``. ``dataset`` may
    be a view whose ``features()`` transforms the stored features; ``features_id`` then names the transform."""
    settings = validate_settings(cfg["bsn"])
    train_cfg = training_config(cfg, features_id)
    from talbench.config import train_hash

    directory = models_root() / "bsn" / train_hash(train_cfg) / f"seed{settings['seed']}"
    video_ids = list(dataset.video_ids(settings["train_split"]))
    if not video_ids:
        raise ConfigError(f"bsn.train_split '{settings['train_split']}' has no videos")
    in_dim = np.asarray(dataset.features(video_ids[0], settings["stream"])).shape[1]
    states = load_checkpoint(directory, train_cfg)
    if states is not None:
        tem = TEM(in_dim, settings["tem_hidden"], settings["tem_output_scale"])
        tem.load_state_dict(states["tem"])
        pem = PEM(settings["bsp_action_points"] + 2 * settings["bsp_boundary_points"], settings["pem_hidden"],
                  settings["pem_output_scale"])
        pem.load_state_dict(states["pem"])
        if console is not None:
            console.print(f"BSN: loaded checkpoint {directory}")
        return BSN(tem.eval(), pem.eval(), settings, {"loaded": 1.0})

    t0 = time.perf_counter()
    tem, tem_stats = train_tem(dataset, video_ids, settings, console)
    t1 = time.perf_counter()
    segments = _video_segments(dataset.instances(settings["train_split"]))
    samples = []
    for video_id in video_ids:
        features = dataset.features(video_id, settings["stream"])
        centers = np.asarray(dataset.snippet_centers(video_id), dtype=np.float64)
        curves = tem_curves(tem, features, settings["window"], window_stride(settings))
        cells, _, _, bsp = video_candidates(curves, settings, settings["pem_top_k_train"])
        gt = seconds_to_cells(segments.get(video_id, np.zeros((0, 2))), centers)
        iou = pairwise_tiou(cells.astype(np.float64), gt).max(axis=1) if len(gt) else np.zeros(len(cells))
        samples.append((bsp, iou))
    t2 = time.perf_counter()
    pem, pem_stats = train_pem(samples, settings, console)
    t3 = time.perf_counter()
    timings = {"tem_train_s": t1 - t0, "pgm_train_s": t2 - t1, "pem_train_s": t3 - t2, **tem_stats, **pem_stats}
    save_checkpoint(directory, {"tem": tem.state_dict(), "pem": pem.state_dict()}, train_cfg, settings["seed"])
    return BSN(tem, pem, settings, timings)


@torch.no_grad()
def generate_proposals(model: BSN, dataset, video_ids: list[str], console: Console | None = None) -> pd.DataFrame:
    """BSN proposals of ``video_ids``: ``video_id, start, end, score, xmin_score, xmax_score, iou_score``
    (seconds). Scores ``p_start x p_end x p_conf`` (eq. 9) are Soft-NMS'ed (Gaussian) per video, all videos
    in one vectorized :func:`talbench.engine.postprocess.batched_nms` call, keeping ``max_proposals`` each."""
    from talbench.engine.postprocess import batched_nms

    settings = model.settings
    with task_progress(console, disable=console is None) as progress:
        frames = [
            _video_candidates_scored(model, dataset, video_id)
            for video_id in progress.track(video_ids, description="BSN proposals")
        ]
    candidates = pd.concat(frames, ignore_index=True)
    keep, scores = batched_nms(
        candidates[["start", "end"]].to_numpy(np.float64),
        candidates["score"].to_numpy(np.float64),
        candidates["video_id"].to_numpy(),
        method="gaussian",
        sigma=settings["soft_nms_sigma"],
        top_k=settings["max_proposals"],
    )
    kept = candidates.iloc[keep].assign(score=scores)
    order = np.lexsort((-kept["score"].to_numpy(), pd.factorize(kept["video_id"])[0]))
    return kept.iloc[order].reset_index(drop=True)


def _video_candidates_scored(model: BSN, dataset, video_id: str) -> pd.DataFrame:
    """TEM curves -> PGM candidates -> PEM confidence -> score (eq. 9), for one video, before Soft-NMS."""
    settings = model.settings
    features = dataset.features(video_id, settings["stream"])
    centers = np.asarray(dataset.snippet_centers(video_id), dtype=np.float64)
    curves = tem_curves(model.tem, features, settings["window"], window_stride(settings))
    cells, start_score, end_score, bsp = video_candidates(curves, settings, settings["pem_top_k_infer"])
    conf = model.pem(torch.from_numpy(bsp)).numpy().astype(np.float64)
    segments = cells_to_seconds(cells, centers).reshape(-1, 2)
    return pd.DataFrame(
        {
            "video_id": video_id,
            "start": segments[:, 0],
            "end": segments[:, 1],
            "score": start_score * end_score * conf,
            "xmin_score": start_score,
            "xmax_score": end_score,
            "iou_score": conf,
        }
    )


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


def _evaluate(cfg: dict[str, Any], dataset, proposals: pd.DataFrame, split: str) -> dict[str, Any]:
    from talbench.eval.proposals import average_recall

    gt = dataset.instances(split)
    return average_recall(gt, proposals, cfg["eval"]["ar_an"], cfg["eval"]["ar_tiou_thresholds"])


def run_proposal_stage(
    profile: str | None = None,
    data_source: str | None = None,
    console: Console | None = None,
    *,
    params: dict[str, Any] | None = None,
    root: str | Path = ".",  # the working directory: DVC runs stages (and queued experiments) there
) -> dict[str, Any]:
    """``talbench proposals``: train BSN on the training videos, write proposals for every video
    (train and test) to ``proposals/<source>-<profile>/``, AR@AN on the test split to
    ``results/proposals.json``. Returns the results dictionary."""
    from talbench.data import open_dataset

    params = params if params is not None else load_params("params.yaml")
    overrides = {"data": {"source": data_source}} if data_source else None
    cfg = resolve(params, profile, overrides)
    torch.set_num_threads(int(cfg.get("run", {}).get("torch_threads", 1)))
    dataset = open_dataset(cfg)
    model = fit_bsn(cfg, dataset, console)

    splits = ("train", "test")
    video_ids = [v for split in splits for v in dataset.video_ids(split)]
    t0 = time.perf_counter()
    proposals = generate_proposals(model, dataset, video_ids, console)
    inference_s = time.perf_counter() - t0
    out_dir = proposals_dir(cfg, root)
    write_proposals(out_dir, proposals, video_ids)

    test_ids = set(dataset.video_ids("test"))
    recall = _evaluate(cfg, dataset, proposals[proposals["video_id"].isin(test_ids)], "test")
    results = {
        "profile": cfg["data"]["profile"],
        "data_source": cfg["data"]["source"],
        "stream": model.settings["stream"],
        "split": "test",
        "proposals_dir": str(out_dir),
        "videos": len(video_ids),
        "proposals_per_video": float(len(proposals) / max(len(video_ids), 1)),
        "average_recall": recall,
        "param_counts": model.param_counts,
        "timings": {**model.timings, "inference_s": inference_s,
                    "videos_per_s": len(video_ids) / max(inference_s, 1e-9)},
    }
    atomic_write_json(Path(root) / "results" / "proposals.json", results)
    if console is not None:
        console.print(f"BSN proposals: {len(proposals)} for {len(video_ids)} videos -> {out_dir}")
        console.print(f"AR@AN (test): {recall}")
    return results
