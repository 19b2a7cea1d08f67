"""Model size and speed at the paper's sizes (CLTDR-GMG sec. E.4, table 15: "number of parameters and inference
time (average over five times) ... using an input feature size of 2304 x 2048").

* :func:`paper_counts` builds the row's architecture at ``one_stage.paper`` (THUMOS14 I3D: input 2048, 20
  classes, D = head = 512) on the meta device (shapes only) and counts its parameters, total and per part.
* :func:`complexity_outcome` (``one_stage.task: complexity``) times the forward pass of the network (encoder, neck,
  decoder; no decoding or NMS) on one ``complexity.input_length`` x ``paper.in_dim`` input, every cell valid, in
  evaluation mode on the row's device (``run.device``; on the CPU with ``run.torch_threads`` threads; on a GPU the
  clock is read after ``torch.cuda.synchronize``), autocast by ``run.mixed_precision``: one untimed pass, then
  ``complexity.repeats`` (5) timed ones; ``inference_ms`` is their median (a shared CPU makes the mean fragile),
  ``inference_ms_min`` / ``_mean`` are reported too. The paper's times are on an RTX 4090 GPU: only the ordering of
  the methods can be compared (and only on a GPU their size).
"""

from __future__ import annotations

import statistics
import time

import torch

from talbench.models import count_parameters
from talbench.runners.common.device import autocast, module_device, row_device
from talbench.runners.common.outcome import RowOutcome
from talbench.runners.one_stage.build import build_detector, paper_width


def paper_counts(cfg: dict) -> dict[str, int]:
    """Parameters of the row's model at the paper's sizes: total, encoder, neck, decoder."""
    with torch.device("meta"):
        model = build_detector(cfg, paper_width(cfg))
    parts = {name: count_parameters(getattr(model, name)) for name in ("encoder", "neck", "decoder")}
    return {"total": count_parameters(model), **parts}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def forward_times_ms(model: torch.nn.Module, in_dim: int, length: int, repeats: int, cfg: dict | None = None
                     ) -> list[float]:
    """Milliseconds of ``repeats`` forward passes of ``model`` on its device (after one untimed pass)."""
    model.eval()
    device = module_device(model)
    x = torch.randn(1, in_dim, length, generator=torch.Generator().manual_seed(0)).to(device)
    mask = torch.ones(1, 1, length, dtype=torch.bool).to(device)
    with autocast(cfg or {}, device):
        model(x, mask)  # untimed: first-call allocations
        times = []
        for _ in range(repeats):
            _synchronize(device)
            started = time.perf_counter()
            model(x, mask)
            _synchronize(device)
            times.append(1000.0 * (time.perf_counter() - started))
    return times


def complexity_outcome(cfg: dict) -> RowOutcome:
    width = paper_width(cfg)
    model = build_detector(cfg, width).to(row_device(cfg))
    times = forward_times_ms(model, width.in_dim, cfg["one_stage"]["complexity"]["input_length"],
                             cfg["one_stage"]["complexity"]["repeats"], cfg)
    counts = paper_counts(cfg)
    metrics = {
        "params_m": counts["total"] / 1e6,
        "params_encoder_m": counts["encoder"] / 1e6,
        "inference_ms": statistics.median(times),
        "inference_ms_min": min(times),
        "inference_ms_mean": statistics.fmean(times),
    }
    return RowOutcome(metrics=metrics, param_counts={f"paper_{k}": v for k, v in counts.items()},
                      timings={"forward_seconds": sum(times) / 1000.0})
