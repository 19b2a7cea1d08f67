"""Shared fixtures: the tiny synthetic benchmark with stand-in proposals for the detector runners, and a test
project (params, a benchmark table, the `unit` data) with an empty MLflow store for the tracking tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.postgres import postgres_server
from helpers.project import enter_workdir, write_project

from talbench.config import CACHE_ENV, load_params, resolve


@pytest.fixture(scope="session", autouse=True)
def file_hash_cache(tmp_path_factory):
    """Feature-file hashes are cached in a temporary folder, not in the repository's .cache (subprocesses
    inherit it)."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV)
    else:
        os.environ[CACHE_ENV] = previous


def stand_in_proposals(dataset, seed: int = 0) -> pd.DataFrame:
    """Jittered ground truth (4 per instance, N(0, 0.15 x length)) + 20 random segments per video, in place of
    BSN proposals, so that detector tests do not depend on a trained proposal generator."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in ("train", "test"):
        gt = dataset.instances(split)
        for vid in dataset.video_ids(split):
            duration = dataset.duration(vid)
            for s, e in gt.loc[gt["video_id"] == vid, ["start", "end"]].to_numpy():
                jitter = rng.normal(0.0, 0.15 * (e - s), size=(4, 2))
                rows += [(vid, max(0.0, s + a), min(duration, e + b), 1.0) for a, b in jitter]
            starts = rng.uniform(0, duration - 1, 20)
            rows += [(vid, s, min(duration, s + rng.uniform(0.5, 6)), 0.5) for s in starts]
    return pd.DataFrame(rows, columns=["video_id", "start", "end", "score"])


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """``(root, cfg, dataset, proposals)``: the `tiny` profile generated once per session under ``root/tiny``."""
    from talbench.data import open_dataset
    from talbench.data.synthetic.generate import generate

    root = tmp_path_factory.mktemp("synthetic")
    cfg = resolve(load_params(), "tiny", {"data": {"synthetic_root": str(root)}})
    generate(cfg["synth"], root / "tiny")
    dataset = open_dataset(cfg)
    return root, cfg, dataset, stand_in_proposals(dataset)


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


@pytest.fixture
def tracking_workdir(tracking_project, empty_store, tmp_path, monkeypatch) -> Path:
    enter_workdir(monkeypatch, tracking_project, empty_store, tmp_path)
    return tracking_project


@pytest.fixture(scope="session")
def postgres_database(tmp_path_factory):
    """``database(name) -> URL``: a new database on one throw-away PostgreSQL server on 127.0.0.1, started
    once per session (skipped with the reason where PostgreSQL is missing; a failure in CI)."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as database:
        yield database
