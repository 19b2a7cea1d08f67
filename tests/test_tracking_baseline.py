"""A small but real runner for the tracking and pipeline tests (not a paper model).

Per-snippet linear classifier (one per stream, background as an extra class) trained with cross-entropy
on the snippets of ``run.train_split``; on ``run.eval_split`` consecutive snippets whose arg-max is class
``c`` form one detection scored by their mean probability of ``c``. Streams: rgb, flow, and their fusion
(probabilities averaged with ``test_time.baseline_flow_weight`` on flow, a test-time setting, so a fusion
variant reuses the trained checkpoint). Evaluated with the project's evaluator. Importable as
``test_tracking_baseline:run_row`` (a ``model.runner`` value).
"""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from talbench.config import ConfigError
from talbench.engine.checkpoints import checkpoint_dir, load_checkpoint, save_checkpoint
from talbench.engine.runner import RowOutcome
from talbench.eval.detection import evaluate_detection

RUNNER = "test_tracking_baseline:run_row"
TRAINED: list[str] = []  # checkpoint folders trained in this process (tests check reuse)
REPO = Path(__file__).resolve().parents[1]
TABLE = "dnet.table99"  # a test table (the schema wants a known paper)

#: The `unit` profile: a few short videos, 4 classes, 32-d streams (generated in well under a second).
UNIT_PROFILE = {
    "synth": {
        "videos": {"train": 16, "test": 10},
        "video_cells": {"min": 64, "max": 160},
        "feature_dim": 32,
        "num_classes": 4,
        "num_families": 2,
        "instances_per_video": 4,
        "latent_dim": 16,  # an easy benchmark: a linear snippet classifier learns it from 16 videos
        "streams": {"rgb": {"nuisance": 0.5}, "flow": {"nuisance": 0.5}},
    },
    "data": {"feature_dim": 32},
    "run": {"seeds": 2},
}
BASELINE = {"lr": 0.05, "weight_decay": 0.0001, "epochs": 60}


def benchmark_yaml(status: str = "active", table: str = TABLE, runner_path: str = RUNNER) -> dict:
    """A test table in the benchmark schema: two trained rows, one test-time variant, one reference line."""
    runner = {"model": {"runner": runner_path}}
    section = runner_path.rpartition(":")[2].replace("run_row", "baseline")
    return {
        "id": table,
        "paper": "dnet",
        "title": "Tracking test table",
        "dataset": "thumos14",
        "split": "test",
        "features": "I3D two-stream",
        "metric": "mAP@tIoU0.5",
        "columns": ["rgb", "flow", "fusion", "params_m"],
        "status": status,
        "pending_reason": None if status == "active" else "test of a pending table",
        "metrics": {
            "rgb": "rgb/mAP_0.5",
            "flow": "flow/mAP_0.5",
            "fusion": "fusion/mAP_0.5",
            "params_m": "params_m",
        },
        "rows": [
            {
                "name": "Published other method",
                "published": {"rgb": 40.0, "flow": 50.0, "fusion": 52.0, "params_m": None},
            },
            {
                "name": "Linear",
                "published": {"rgb": 44.0, "flow": 51.0, "fusion": 53.0, "params_m": 10.1},
                "reproduce": {"overrides": runner},
            },
            {
                "name": "Linear (flow x2)",
                "published": {"rgb": None, "flow": None, "fusion": 54.0, "params_m": None},
                "reproduce": {"overrides": runner, "test_overrides": {"baseline_flow_weight": 2.0}},
            },
            {
                "name": "Linear (5 epochs)",
                "published": {"rgb": 40.0, "flow": 45.0, "fusion": 47.0, "params_m": 10.1},
                "reproduce": {"overrides": {**runner, section: {"epochs": 5}}},
            },
        ],
        "claims": [],
    }


def write_project(root: Path, *, tables: dict | None = None, status: str = "active") -> Path:
    """A project folder: params.yaml (the real one + the baseline section and `unit` profile),
    benchmarks/<TABLE>.yaml and the synthetic `unit` data."""
    from talbench.config import load_params, resolve
    from talbench.data.synthetic import generate

    params = copy.deepcopy(load_params(REPO / "params.yaml"))
    params["baseline"] = dict(BASELINE)
    params["baseline_b"] = dict(BASELINE)
    params.setdefault("test_time", {})["baseline_flow_weight"] = 1.0
    params["profiles"]["unit"] = copy.deepcopy(UNIT_PROFILE)
    params["data"]["profile"] = "unit"
    if tables is not None:
        params["run"]["tables"] = tables
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (root / "benchmarks").mkdir(exist_ok=True)
    (root / "benchmarks" / f"{TABLE}.yaml").write_text(
        yaml.safe_dump(benchmark_yaml(status)), encoding="utf-8"
    )
    cfg = resolve(params, "unit")
    generate(cfg["synth"], root / cfg["data"]["synthetic_root"] / "unit")
    return root


@pytest.fixture(scope="session")
def tracking_project(tmp_path_factory) -> Path:
    return write_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite store (the migrations take seconds; copying it takes none)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def enter_workdir(monkeypatch, project: Path, store: Path, folder: Path) -> None:
    """Work in ``project`` with a fresh copy of the empty store and a models folder in ``folder``."""
    shutil.copy(store, folder / "mlflow.db")
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(folder / "models"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def tracking_workdir(tracking_project, empty_store, tmp_path, monkeypatch) -> Path:
    enter_workdir(monkeypatch, tracking_project, empty_store, tmp_path)
    return tracking_project


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
    states = load_checkpoint(folder, cfg)
    started = time.perf_counter()
    if states is None:
        videos = dataset.video_ids(hp["train_split"])
        states = {stream: train_stream(dataset, videos, stream, hp) for stream in ("rgb", "flow")}
        save_checkpoint(folder, states, cfg, seed)
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


def run_row_b(cfg: dict, seed: int, dataset, console=None, report=None) -> RowOutcome:
    """The same baseline as a second "model family" with its own section ``baseline_b`` (pipeline tests)."""
    return run_row(cfg, seed, dataset, console, report, section="baseline_b")


def test_baseline_beats_chance(tracking_workdir):
    """The baseline really learns: on the tiny synthetic data its fused mAP@0.3 is far above zero."""
    from talbench.config import load_params, resolve
    from talbench.data import open_dataset
    from talbench.engine.runner import run_row as dispatch

    cfg = resolve(load_params("params.yaml"), "unit", {"model": {"runner": RUNNER}})
    outcome = dispatch(cfg, 0, open_dataset(cfg))
    assert outcome.metrics["fusion/mAP_0.3"] > 5.0
    assert set(outcome.predictions) == {"rgb", "flow", "fusion"}
    assert outcome.param_counts["rgb"] == (32 + 1) * (4 + 1)
