"""Read runs back from a test's MLflow store without leaking global state into later tests.

``mlflow.set_tracking_uri(uri)`` also writes ``MLFLOW_TRACKING_URI`` into ``os.environ`` and
``set_tracking_uri(None)`` deletes it, so a test that uses the fluent API can silently redirect another
module's runs; every test reads its store through :func:`search_runs` instead."""

from __future__ import annotations

import os

import mlflow
import pandas as pd


def search_runs(uri: str | None = None, **kwargs) -> pd.DataFrame:
    """``mlflow.search_runs(**kwargs)`` on ``uri`` (default: ``$MLFLOW_TRACKING_URI``); global state restored."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri or previous)
    try:
        return mlflow.search_runs(**kwargs)
    finally:
        mlflow.set_tracking_uri(None)
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous
