"""Trained models on disk: ``models/<runner>/<train_hash>/seed<k>/``.

The folder depends on everything in the row's configuration that influences training
(:func:`talbench.config.train_hash`, which leaves out ``test_time``), so a test-time variant of a row (feature
regrouping, fusion weights) finds the model trained for the base row and nothing trains twice. The manifest
``checkpoint.json`` (resolved config, hashes and the fingerprints of the training's inputs: the family's code
hash, the dataset checksum, the proposals) is written last and marks the folder complete; a checkpoint whose
recorded inputs differ from the current ones (other code, other data, other proposals) is not loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from talbench.code_scope import code_hash
from talbench.config import REPO_ROOT, config_hash, train_hash
from talbench.io import atomic_path, atomic_write_json

MODELS_ENV = "TALBENCH_MODELS_DIR"
MANIFEST = "checkpoint.json"
EXECUTION_MODULE = "talbench.runners.common.execution"


def training_code_hash(module: str) -> str:
    """The code a model trained by runner module ``module`` depends on: the import closures of ``module`` and
    of the row execution (seeding), :func:`talbench.code_scope.code_hash`."""
    return code_hash(EXECUTION_MODULE, module)


def models_root() -> Path:
    """``TALBENCH_MODELS_DIR`` or ``<repo root>/models`` (absolute: queued DVC experiments share it)."""
    return Path(os.environ.get(MODELS_ENV) or REPO_ROOT / "models")


def checkpoint_dir(cfg: dict[str, Any], seed: int, runner: str | None = None) -> Path:
    """``<models root>/<runner>/<train_hash>/seed<seed>/`` (runner defaults to ``cfg.model.runner``)."""
    runner = runner or cfg["model"]["runner"]
    safe_runner = runner.replace(":", "_").replace("/", "_")
    return models_root() / safe_runner / train_hash(cfg) / f"seed{seed}"


def save_checkpoint(directory: Path, states: dict[str, dict], cfg: dict[str, Any], seed: int,
                    inputs: dict[str, str]) -> Path:
    """Save ``states`` (name -> torch state dict) as ``<name>.pt`` and the manifest, each atomically;
    ``inputs`` are the fingerprints of what the training read besides ``cfg`` (code, data, proposals)."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)  # incomplete until the manifest is back
    for name, state in states.items():
        with atomic_path(directory / f"{name}.pt") as tmp:
            torch.save(state, tmp)
    atomic_write_json(
        directory / MANIFEST,
        {
            "seed": seed,
            "train_hash": train_hash(cfg),
            "config_hash": config_hash(cfg),
            "inputs": dict(sorted(inputs.items())),
            "states": sorted(states),
            "config": cfg,
        },
    )
    return directory


def load_checkpoint(directory: Path, cfg: dict[str, Any], inputs: dict[str, str]) -> dict[str, dict] | None:
    """The state dicts saved in ``directory`` for this training configuration and these inputs, else ``None``."""
    import torch

    manifest_path = Path(directory) / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("train_hash") != train_hash(cfg) or manifest.get("inputs") != dict(sorted(inputs.items())):
        return None
    states = {}
    for name in manifest["states"]:
        path = Path(directory) / f"{name}.pt"
        if not path.is_file():
            return None
        states[name] = torch.load(path, map_location="cpu", weights_only=True)
    return states
