"""Configuration: ``params.yaml`` is the single source of parameters.

A run's configuration is resolved by :func:`resolve` in layers, later ones winning key by key:

    params.yaml (without ``profiles``) <- profiles[<profile>] <- --data source <- tuned loss weights (--tuned)
    <- the benchmark table's row defaults <- the row's overrides <- the row's test-time overrides (under
    ``test_time``) <- a study's overrides <- a trial's values <- the tuning splits

(an ablation row that switches a loss term off keeps it off under tuned weights; a trial's values win over
the row it tunes). Overriding a key that does not exist is an error naming the layer, so a typo never
silently runs the default. The layers of a benchmark row are built in one place,
:func:`talbench.benchmark.rows.row_layers`.

The resolved configuration of a row is then *scoped* to its model family
(:meth:`talbench.runners.families.Family.scoped`) and hashed (canonical JSON, sha1) to identify runs and cached
models; the ``test_time`` section holds settings that only change inference (feature regrouping, fusion) and
is left out of :func:`train_hash`, so test-time variants reuse the trained model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from talbench.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO_ROOT / "params.yaml"
TEST_TIME_KEY = "test_time"
SCRATCH_DIR = Path("scratch")
"""What talbench writes that is not a pipeline output (results of ad-hoc runs, lists of missing feature files),
relative to the working directory (the repository root under DVC); git-ignored."""
CACHE_ENV = "TALBENCH_CACHE_DIR"


def cache_dir() -> Path:
    """``TALBENCH_CACHE_DIR`` or ``<repo root>/.cache``: what is worth keeping between runs (content hashes of
    feature files), absolute so that queued DVC experiments, which run in temporary copies, share it."""
    return Path(os.environ.get(CACHE_ENV) or REPO_ROOT / ".cache")


def read_yaml_mapping(path: str | Path, what: str = "parameter file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping; ``ConfigError`` naming the file otherwise."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: {what} not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    return read_yaml_mapping(path)


def deep_merge(base: dict[str, Any], override: dict[str, Any], *, where: str = "") -> dict[str, Any]:
    """Return ``base`` updated recursively with ``override``; overriding an unknown key is an error
    (a typo in a benchmark row must not silently run the default)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in merged:
            raise ConfigError(f"override key '{path}' does not exist in params.yaml")
        if isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = deep_merge(merged[key], value, where=path)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Layer:
    """One layer of overrides: ``where`` names it in errors; ``section`` merges it under that section."""

    overrides: dict[str, Any]
    where: str = ""
    section: str | None = None


def resolve(params: dict[str, Any], profile: str | None = None, *layers: Layer | dict[str, Any] | None) -> dict[str, Any]:
    """Resolve ``params`` for ``profile`` (default: ``params['data']['profile']``), then apply ``layers`` in
    order (see the module docstring for the order the commands use); ``None`` layers are skipped."""
    base = {k: v for k, v in params.items() if k != "profiles"}
    profile = profile or base.get("data", {}).get("profile")
    profiles = params.get("profiles", {})
    if profile is not None:
        if profile not in profiles:
            raise ConfigError(f"params.yaml: unknown profile '{profile}' (known: {sorted(profiles)})")
        base = deep_merge(base, profiles[profile] or {}, where=f"profiles.{profile}")
        base.setdefault("data", {})["profile"] = profile
    for layer in layers:
        if layer is None:
            continue
        layer = layer if isinstance(layer, Layer) else Layer(layer)
        overrides = {layer.section: layer.overrides} if layer.section else layer.overrides
        try:
            base = deep_merge(base, overrides)
        except ConfigError as err:
            raise ConfigError(f"{layer.where}: {err}" if layer.where else str(err)) from err
    return base


def config_hash(cfg: dict[str, Any], length: int = 12) -> str:
    """Stable hash of a configuration (canonical JSON)."""
    canonical = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(canonical.encode()).hexdigest()[:length]


def train_hash(cfg: dict[str, Any]) -> str:
    """Hash of everything that influences training (the ``test_time`` section excluded)."""
    return config_hash({k: v for k, v in cfg.items() if k != TEST_TIME_KEY})


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the inverse of :func:`flatten`; tuned parameter files are flat)."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = str(dotted).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for logging parameters)."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat
