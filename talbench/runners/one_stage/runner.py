"""Runner ``one_stage``: one row of CLTDR-GMG's tables (AAAI 2025), or of the methods they compare, with one seed.

The row's ``one_stage`` section picks the encoder, the decoder and the training recipe (:mod:`.build`); the model is
trained on the ``run.train_split`` videos (:mod:`.train`) or loaded from ``models/one_stage/<train_hash>/seed<k>/``
(valid only for the same code and data), its EMA weights run on the ``run.eval_split`` videos (:mod:`.infer`) and
the detections are evaluated with the official-semantics mAP. Metrics ``<stream>/mAP_<tIoU>`` and
``<stream>/average_mAP`` (stream ``both``: RGB and Flow features concatenated), ``params_m`` / ``params_encoder_m``
(parameters at the paper's THUMOS14 I3D sizes, ``one_stage.paper``), ``params_m_actual`` (the trained model),
``seconds_per_epoch``, ``train_seconds``, ``infer_seconds``.

* ``one_stage.train.snapshots`` (a diagnostic row, CLTDR-GMG table 1): the official ``train.py`` keeps the epoch
  whose EMA model has the best test mAP (facts sec. 0.4). Such a row evaluates the EMA snapshots of the epochs that
  script evaluates and reports what it would print: ``<stream>/*`` are then the mAPs of the best epoch on the
  evaluation split, ``last/*`` those of the last epoch (the model every other row reports; the training is the
  same), ``selected/epoch`` and ``selected/average_mAP_gain`` (best minus last). The saved model is still the last
  epoch's, and no other row reads these numbers: the choice is only measured, never used.
* ``one_stage.task: complexity`` (table 15): no training; parameters and the CPU time of the forward pass of a
  ``complexity.input_length`` x ``paper.in_dim`` input at the paper's sizes (:mod:`.complexity`).

Devices (``run.device``, :mod:`talbench.runners.common.device`): the model is built and seeded on the CPU and moved
to the row's device, where it trains and infers (:mod:`.train`, :mod:`.infer`); the kind of device
(:func:`~talbench.runners.common.device.device_key`) is one of the checkpoint's inputs.

``report(step, value)`` (tuning) receives the evaluation split's mAP@0.5 of the EMA model after each epoch.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from talbench.eval.detection import evaluate_detection
from talbench.io import atomic_write_json
from talbench.models import count_parameters
from talbench.runners.common.checkpoints import (
    checkpoint_dir,
    load_checkpoint,
    save_checkpoint,
    training_code_hash,
)
from talbench.runners.common.device import device_key, row_device
from talbench.runners.common.outcome import RowOutcome
from talbench.runners.one_stage.build import build_detector, row_width
from talbench.runners.one_stage.complexity import complexity_outcome, paper_counts
from talbench.runners.one_stage.data import check_training_videos, load_sequences
from talbench.runners.one_stage.infer import predict
from talbench.runners.one_stage.train import train_detector

RUNNER = "one_stage"
FINAL_STATE = "ema"
CPU_CONVOLUTIONS = ("onednn", "native")


@contextlib.contextmanager
def cpu_convolution(name: str) -> Iterator[None]:
    """``one_stage.cpu_convolution`` while a row trains and infers: ``onednn`` (PyTorch's default CPU kernels) or
    ``native`` (PyTorch's own, oneDNN off). The same functions, other rounding. oneDNN pays a fixed cost per call
    that dominates at the smoke sizes (D = 32, batch 2): ``native`` trains the default CLTDR-GMG row 17 % faster
    there and ActionFormer's encoder 9 % slower (its depth-wise convolutions); at D = 512 the two are equal. CUDA
    rows are unaffected."""
    if name not in CPU_CONVOLUTIONS:
        raise ValueError(f"one_stage.cpu_convolution must be one of {CPU_CONVOLUTIONS}, got {name!r}")
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = name == "onednn"
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


def _detection_metrics(prefix: str, gt, predictions, thresholds) -> dict[str, float]:
    result = evaluate_detection(gt, predictions, thresholds)
    metrics = {f"{prefix}/mAP_{float(t):g}": float(v) for t, v in zip(result.tiou, result.map, strict=True)}
    metrics[f"{prefix}/average_mAP"] = float(result.average_map)
    return metrics


def _snapshot_name(epoch: int) -> str:
    return f"ema_epoch{epoch:03d}"


def _train_or_load(cfg, seed, dataset, train_videos, inputs, console, after_epoch):
    """The trained model of ``cfg`` (EMA weights, on the row's device), its snapshots (epoch -> state) and the
    training timings."""
    folder = checkpoint_dir(cfg, seed, RUNNER)
    width = row_width(cfg, int(train_videos[0].features.shape[0]), len(dataset.classes))
    torch.manual_seed(seed)
    model = build_detector(cfg, width).to(row_device(cfg))  # initialised on the CPU
    states = load_checkpoint(folder, cfg, inputs)
    if states is not None:
        model.load_state_dict(states.pop(FINAL_STATE))
        snapshots = {int(name.removeprefix("ema_epoch")): state for name, state in states.items()}
        timings = json.loads((folder / "timings.json").read_text(encoding="utf-8"))
        return model.eval(), snapshots, timings | {"loaded_from_cache": 1.0}, folder
    os_cfg = cfg["one_stage"]
    description = f"{os_cfg['encoder']} + {os_cfg['decoder']} ({os_cfg['method']})"
    ema, history = train_detector(model, train_videos, cfg, seed, len(dataset.classes), console=console,
                                  description=description, after_epoch=after_epoch)
    timings = {"train_seconds": history.train_seconds, "seconds_per_epoch": float(np.mean(history.epoch_seconds)),
               "loaded_from_cache": 0.0}
    if console is not None:
        console.print(f"  {description}: {history.train_seconds:.1f}s, {timings['seconds_per_epoch']:.2f}s/epoch, "
                      f"final loss {history.losses[-1]['total']:.3f}")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "timings.json", timings)
    states = {FINAL_STATE: ema.module.state_dict()} | {
        _snapshot_name(epoch): state for epoch, state in history.snapshots.items()}
    save_checkpoint(folder, states, cfg, seed, inputs)
    return ema.module.eval(), history.snapshots, timings, folder


def _best_snapshot(model, snapshots, eval_videos, classes, cfg, gt):
    """The snapshot with the best average mAP on the evaluation split (the official train.py's choice, first
    epoch on ties): its epoch, predictions and metrics. ``model`` keeps its own weights."""
    final = {k: v.clone() for k, v in model.state_dict().items()}
    best = None
    for epoch in sorted(snapshots):
        model.load_state_dict(snapshots[epoch])
        predictions = predict(model, eval_videos, classes, cfg)
        average = evaluate_detection(gt, predictions, cfg["eval"]["tiou_thresholds"]).average_map
        if best is None or average > best[2]:
            best = (epoch, predictions, average)
    model.load_state_dict(final)
    return best[0], best[1]


def run_row(cfg: dict, seed: int, dataset, console=None, report: Callable[[int, float], None] | None = None) -> RowOutcome:
    """Train (or load) the row's detector, infer on ``run.eval_split``, evaluate (module docstring)."""
    os_cfg = cfg["one_stage"]
    if os_cfg["task"] == "complexity":
        return complexity_outcome(cfg)
    if os_cfg["task"] != "detect":
        raise ValueError(f"one_stage.task must be detect or complexity, got {os_cfg['task']!r}")
    train_split, eval_split = cfg["run"]["train_split"], cfg["run"]["eval_split"]
    stream, classes = os_cfg["stream"], list(dataset.classes)
    train_videos = load_sequences(dataset, dataset.video_ids(train_split), train_split, stream)
    eval_videos = load_sequences(dataset, dataset.video_ids(eval_split), eval_split, stream)
    check_training_videos(train_videos, f"{dataset.name} ({train_split})")
    gt = dataset.instances(eval_split)
    thresholds = cfg["eval"]["tiou_thresholds"]

    after_epoch = None
    if report is not None:
        def after_epoch(epoch: int, ema_model) -> None:
            found = evaluate_detection(gt, predict(ema_model, eval_videos, classes, cfg), [0.5])
            report(epoch, float(found.map[0]))

    inputs = {"code": training_code_hash(__name__), "data": dataset.checksum(), "device": device_key(row_device(cfg))}
    with cpu_convolution(os_cfg["cpu_convolution"]):
        model, snapshots, timings, folder = _train_or_load(cfg, seed, dataset, train_videos, inputs, console,
                                                           after_epoch)
        started = time.perf_counter()
        predictions = predict(model, eval_videos, classes, cfg)
        infer_seconds = time.perf_counter() - started
        best = _best_snapshot(model, snapshots, eval_videos, classes, cfg, gt) if snapshots else None
    metrics = _detection_metrics(stream, gt, predictions, thresholds)
    if best is not None:
        last = {name.replace(f"{stream}/", "last/", 1): value for name, value in metrics.items()}
        epoch, predictions = best
        metrics = _detection_metrics(stream, gt, predictions, thresholds) | last
        metrics |= {"selected/epoch": float(epoch),
                    "selected/average_mAP_gain": metrics[f"{stream}/average_mAP"] - last["last/average_mAP"]}
    counts = paper_counts(cfg)
    actual = count_parameters(model)
    metrics |= {
        "params_m": counts["total"] / 1e6,
        "params_encoder_m": counts["encoder"] / 1e6,
        "params_m_actual": actual / 1e6,
        "train_seconds": timings["train_seconds"],
        "seconds_per_epoch": timings["seconds_per_epoch"],
        "infer_seconds": infer_seconds,
    }
    return RowOutcome(metrics=metrics, predictions={stream: predictions},
                      param_counts={f"paper_{k}": v for k, v in counts.items()} | {"actual_total": actual},
                      timings=timings | {"infer_seconds": infer_seconds}, checkpoint_dir=folder)
