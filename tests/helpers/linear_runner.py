"""A small but real runner for the tracking and pipeline tests (not a paper model).

Per-snippet linear classifier (one per stream, background as an extra class) trained with cross-entropy
on the snippets of ``run.train_split``; on ``run.eval_split`` consecutive snippets whose arg-max is class
``c`` form one detection scored by their mean probability of ``c``. Streams: rgb, flow, and their fusion
(probabilities averaged with ``test_time.baseline_flow_weight`` on flow, a test-time setting, so a fusion
variant reuses the trained checkpoint). Evaluated with the project's evaluator. Importable as
``helpers.linear_runner:run_row`` (a ``model.runner`` value); its hyper-parameters are the ``baseline``
section of params.yaml (:data:`SECTIONS`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from talbench.errors import ConfigError
from talbench.eval.detection import evaluate_detection
from talbench.runners.common.checkpoints import (
    checkpoint_dir,
    load_checkpoint,
    save_checkpoint,
    training_code_hash,
)
from talbench.runners.common.outcome import RowOutcome

SECTIONS = ("baseline",)
RUNNER = "helpers.linear_runner:run_row"
TRAINED: list[str] = []  # checkpoint folders trained in this process (tests check reuse)


def snippet_targets(dataset, video_id: str, instances: pd.DataFrame) -> np.ndarray:
    """Class id of the instance covering each snippet centre; ``len(classes)`` for background."""
    centers = dataset.snippet_centers(video_id)
    own = instances[instances["video_id"] == video_id]
    covered = (centers[:, None] >= own["start"].to_numpy()) & (centers[:, None] <= own["end"].to_numpy())
    targets = np.full(len(centers), len(dataset.classes), dtype=np.int64)
    hit = covered.any(axis=1)
    targets[hit] = own["label_id"].to_numpy()[covered[hit].argmax(axis=1)]
    return targets


def train_stream(dataset, videos: list[str], stream: str, hp: dict) -> dict:
    instances = dataset.instances(hp["train_split"])
    x = torch.from_numpy(np.concatenate([dataset.features(v, stream) for v in videos]))
    y = torch.from_numpy(np.concatenate([snippet_targets(dataset, v, instances) for v in videos]))
    model = torch.nn.Linear(x.shape[1], len(dataset.classes) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    for _ in range(hp["epochs"]):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.state_dict()


def probabilities(dataset, video_id: str, stream: str, state: dict) -> np.ndarray:
    weight, bias = state["weight"], state["bias"]
    logits = torch.from_numpy(np.ascontiguousarray(dataset.features(video_id, stream))) @ weight.T + bias
    return torch.softmax(logits, dim=1).numpy()


def group_segments(dataset, video_id: str, probs: np.ndarray) -> pd.DataFrame:
    """Runs of equal arg-max (foreground classes) -> detections scored by their mean class probability."""
    centers = dataset.snippet_centers(video_id)
    half = 0.5 * dataset.layout.stride / dataset.fps(video_id)
    best = probs.argmax(axis=1)
    change = np.flatnonzero(np.diff(best)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(best)]])
    labels = best[starts]
    keep = labels < len(dataset.classes)
    starts, ends, labels = starts[keep], ends[keep], labels[keep]
    cumulative = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    scores = (cumulative[ends, labels] - cumulative[starts, labels]) / (ends - starts)
    return pd.DataFrame(
        {
            "video_id": video_id,
            "label": np.asarray(dataset.classes, dtype=object)[labels],
            "start": centers[starts] - half,
            "end": centers[ends - 1] + half,
            "score": scores,
        }
    )


def run_row(
    cfg: dict, seed: int, dataset, console=None, report=None, section: str = "baseline"
) -> RowOutcome:
    """The runner; its hyper-parameters are params.yaml section ``section``."""
    if report is not None:
        raise ConfigError("the test baseline runner does not report per-epoch values")
    hp = {**cfg[section], "train_split": cfg["run"]["train_split"]}
    folder = checkpoint_dir(cfg, seed)
    inputs = {"code": training_code_hash(__name__), "data": dataset.checksum()}
    states = load_checkpoint(folder, cfg, inputs)
    started = time.perf_counter()
    if states is None:
        videos = dataset.video_ids(hp["train_split"])
        states = {stream: train_stream(dataset, videos, stream, hp) for stream in ("rgb", "flow")}
        save_checkpoint(folder, states, cfg, seed, inputs)
        TRAINED.append(str(folder))
    train_s = time.perf_counter() - started

    flow_weight = cfg["test_time"]["baseline_flow_weight"]
    frames: dict[str, list[pd.DataFrame]] = {"rgb": [], "flow": [], "fusion": []}
    for video_id in dataset.video_ids(cfg["run"]["eval_split"]):
        probs = {s: probabilities(dataset, video_id, s, states[s]) for s in ("rgb", "flow")}
        probs["fusion"] = (probs["rgb"] + flow_weight * probs["flow"]) / (1.0 + flow_weight)
        for stream, p in probs.items():
            frames[stream].append(group_segments(dataset, video_id, p))
    predictions = {s: pd.concat(f, ignore_index=True) for s, f in frames.items()}
    gt = dataset.instances(cfg["run"]["eval_split"])
    metrics: dict[str, float] = {}
    for stream, pred in predictions.items():
        result = evaluate_detection(gt, pred, cfg["eval"]["tiou_thresholds"])
        metrics.update(
            {f"{stream}/mAP_{t:g}": float(m) for t, m in zip(result.tiou, result.map, strict=True)}
        )
        metrics[f"{stream}/average_mAP"] = float(result.average_map)
    counts = {s: int(sum(v.numel() for v in states[s].values())) for s in ("rgb", "flow")}
    metrics["params_m"] = sum(counts.values()) / 1e6
    return RowOutcome(
        metrics=metrics,
        predictions=predictions,
        param_counts=counts,
        timings={"train": train_s, "infer": time.perf_counter() - started - train_s},
        checkpoint_dir=Path(folder),
    )
