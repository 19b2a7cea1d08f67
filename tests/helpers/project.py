"""A test project folder: the real params.yaml plus the linear test runner's sections and a small `unit`
profile, one test benchmark table, and the synthetic `unit` data (generated in well under a second)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from helpers.linear_runner import RUNNER
from helpers.paths import REPO

TABLE = "dnet.table99"  # a test table (the schema wants a known paper)


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
    "pipeline": {"seeds": 2, "workers": 1},
    # every section a test family's DVC stage reads, as params.yaml's profiles list them
    **{section: {} for section in ("eval", "run", "model", "test_time", "baseline", "baseline_b")},
}


BASELINE = {"lr": 0.05, "weight_decay": 0.0001, "epochs": 60}


def benchmark_yaml(status: str = "active", table: str = TABLE, runner_path: str = RUNNER) -> dict:
    """A test table in the benchmark schema: two trained rows, one test-time variant, one reference line."""
    runner = {"model": {"runner": runner_path}}
    section = "baseline_b" if runner_path.startswith("helpers.linear_runner_b") else "baseline"
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
        "reported": {"train_s": "time/train_s", "row_s": "time/row_s"},
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
        params["pipeline"]["tables"] = tables
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (root / "benchmarks").mkdir(exist_ok=True)
    (root / "benchmarks" / f"{TABLE}.yaml").write_text(
        yaml.safe_dump(benchmark_yaml(status)), encoding="utf-8"
    )
    cfg = resolve(params, "unit")
    generate(cfg["synth"], root / cfg["data"]["synthetic_root"] / "unit")
    return root


def enter_workdir(monkeypatch, project: Path, store: Path, folder: Path) -> None:
    """Work in ``project`` with a fresh copy of the empty store and a models folder in ``folder``."""
    shutil.copy(store, folder / "mlflow.db")
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(folder / "models"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
