"""Where a row computes: ``run.device`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:<k>``) and
``run.mixed_precision`` (``null`` | ``bf16``), resolved once per row.

``auto`` is the first CUDA device when torch sees one, else the CPU; naming a CUDA device on a machine without
it is a one-line error. A runner asks for its row's device with :func:`row_device`, builds and seeds its model
on the CPU and moves it (so the initial weights are the same on every device), builds its batches on the CPU
with numpy and moves them, draws its random permutations and masks from CPU ``torch.Generator`` s (the same
draws on every device) and brings results back with ``.cpu()`` before numpy; :func:`autocast` wraps its forward
passes.

On CUDA the row runs as deterministically as PyTorch allows (:func:`configure_determinism`): deterministic
algorithms, no cuDNN autotuning, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for deterministic cuBLAS. An operation
PyTorch has no deterministic CUDA kernel for warns instead of failing the row and is recorded
(:func:`nondeterminism_recorder`, the run's ``nondeterministic_ops`` tag). The same seed then gives the same
numbers on the same GPU model, driver and PyTorch, not across GPU models, and never the CPU's numbers (other
kernels, other summation orders); :func:`device_key` is therefore part of a run's and a checkpoint's identity.
Mixed precision is off unless ``run.mixed_precision`` asks for it; the row's MLflow tags record the device,
its name and the precision (:func:`device_tags`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from talbench.errors import ConfigError

CPUINFO = Path("/proc/cpuinfo")  # the processor's model name on Linux
PRECISIONS = {"bf16": torch.bfloat16}  # bfloat16 needs no loss scaling (float16 would need a GradScaler)
NONDETERMINISTIC = re.compile(r"(\w+) does not have a deterministic implementation")
DEVICE_TAGS = ("device", "mixed_precision", "nondeterministic_ops")  # a row run's tags, :func:`device_tags`


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


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def cpu_name() -> str:
    """The processor's model name (``model name`` of ``/proc/cpuinfo``, e.g. ``AMD EPYC``), else what
    :mod:`platform` knows (often only ``x86_64``): timings (CLTDR-GMG table 15) mean little without it."""
    try:
        with CPUINFO.open(encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200, torch 2.x)`` or ``cpu (<processor model>, torch 2.x, <n> threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}, torch {torch.__version__})"
    return f"cpu ({cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads)"


def device_key(device: torch.device) -> str:
    """What a row's numbers depend on besides its configuration: ``cpu``, or ``cuda/<GPU model>`` (another GPU
    model runs other kernels). Part of a run's reuse keys and of a checkpoint's inputs."""
    return f"cuda/{torch.cuda.get_device_name(device)}" if device.type == "cuda" else "cpu"


def configure_determinism(device: torch.device) -> None:
    """CUDA: deterministic algorithms (warning, not failing, where PyTorch has none), deterministic cuBLAS
    workspace, cuDNN deterministic and not autotuned. Nothing on the CPU, where
    :func:`talbench.runners.common.execution.seed_everything` already asks for deterministic algorithms."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def nondeterminism_recorder(device: torch.device) -> Iterator[list[str]]:
    """On CUDA: the names of the operations that ran without a deterministic implementation (PyTorch's
    warnings under :func:`configure_determinism`, passed on unchanged); on the CPU an empty list."""
    found: list[str] = []
    if device.type != "cuda":
        yield found
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield found
        finally:
            for item in caught:
                match = NONDETERMINISTIC.search(str(item.message))
                if match and match.group(1) not in found:
                    found.append(match.group(1))
    for item in caught:  # shown as they would have been
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno, source=item.source)


def precision(cfg: dict[str, Any]) -> torch.dtype | None:
    """``run.mixed_precision`` as the autocast dtype (None: full float32, the default)."""
    value = cfg.get("run", {}).get("mixed_precision")
    if value in (None, False, "none", "fp32"):
        return None
    if value not in PRECISIONS:
        raise ConfigError(f"params.yaml: field 'run.mixed_precision': '{value}' is not null or bf16")
    return PRECISIONS[value]


def precision_name(cfg: dict[str, Any]) -> str:
    """``bf16`` or ``none``: the ``mixed_precision`` tag of a row."""
    dtype = precision(cfg)
    return next(name for name, d in PRECISIONS.items() if d is dtype) if dtype is not None else "none"


def device_tags(cfg: dict[str, Any], device: torch.device, nondeterministic: list[str] = ()) -> dict[str, str]:
    """A row run's MLflow tags: ``device`` (described), ``mixed_precision`` and, on CUDA, the operations that ran
    without a deterministic implementation (``nondeterministic_ops``)."""
    tags = {"device": describe(device), "mixed_precision": precision_name(cfg)}
    if nondeterministic:
        tags["nondeterministic_ops"] = ",".join(nondeterministic)
    return tags


@contextlib.contextmanager
def autocast(cfg: dict[str, Any], device: torch.device) -> Iterator[None]:
    """Mixed precision around a forward pass when ``run.mixed_precision`` asks for it; otherwise nothing."""
    dtype = precision(cfg)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
