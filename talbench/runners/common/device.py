"""Where a row computes: ``run.device`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:<k>``) and
``run.mixed_precision`` (``null`` | ``bf16``), resolved once per row.

``auto`` is the first CUDA device when torch sees one, else the CPU; naming a CUDA device on a machine without
it is a one-line error. On CUDA the row runs as deterministically as PyTorch allows
(:func:`configure_determinism`): deterministic algorithms (already on for every row), no cuDNN autotuning,
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for deterministic cuBLAS; the same seed then gives the same numbers on the
same GPU model and driver, not across GPU models, and never the CPU's numbers (other kernels). Mixed precision is
off unless ``run.mixed_precision`` asks for it; the row's MLflow tags record the device and its precision.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from typing import Any

import torch

from talbench.errors import ConfigError

PRECISIONS = {"bf16": torch.bfloat16}  # bfloat16 needs no loss scaling (float16 would need a GradScaler)


def resolve_device(spec: str | None) -> torch.device:
    """``run.device`` as a torch device (``None`` and ``auto``: CUDA when available, else the CPU)."""
    spec = "auto" if spec is None else str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = 0 if spec == "cuda" else spec.partition(":")[2]
        if not str(index).isdigit():
            raise ConfigError(f"params.yaml: field 'run.device': '{spec}' is not auto, cpu, cuda or cuda:<index>")
        if not torch.cuda.is_available():
            raise ConfigError(f"params.yaml: field 'run.device': '{spec}' asked for, but torch sees no CUDA "
                              "device on this machine (use auto or cpu)")
        if int(index) >= torch.cuda.device_count():
            raise ConfigError(f"params.yaml: field 'run.device': '{spec}' asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device(f"cuda:{int(index)}")
    raise ConfigError(f"params.yaml: field 'run.device': '{spec}' is not auto, cpu, cuda or cuda:<index>")


def row_device(cfg: dict[str, Any]) -> torch.device:
    """The device of a row's configuration (``run.device``)."""
    return resolve_device(cfg.get("run", {}).get("device"))


def describe(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200, torch 2.x)`` or ``cpu (<processor>, torch 2.x, <n> threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}, torch {torch.__version__})"
    processor = platform.processor() or platform.machine()
    return f"cpu ({processor}, torch {torch.__version__}, {torch.get_num_threads()} threads)"


def configure_determinism(device: torch.device) -> None:
    """CUDA: deterministic cuBLAS workspace, cuDNN deterministic and not autotuned (nothing to do on the CPU)."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def precision(cfg: dict[str, Any]) -> torch.dtype | None:
    """``run.mixed_precision`` as the autocast dtype (None: full float32, the default)."""
    value = cfg.get("run", {}).get("mixed_precision")
    if value in (None, False, "none", "fp32"):
        return None
    if value not in PRECISIONS:
        raise ConfigError(f"params.yaml: field 'run.mixed_precision': '{value}' is not null or bf16")
    return PRECISIONS[value]


@contextlib.contextmanager
def autocast(cfg: dict[str, Any], device: torch.device) -> Iterator[None]:
    """Mixed precision around a forward pass when ``run.mixed_precision`` asks for it; otherwise nothing."""
    dtype = precision(cfg)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
