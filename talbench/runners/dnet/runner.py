"""Runner ``dnet``: one benchmark row of D-Net's tables (AAAI 2022) with one seed.

RGB and Flow detectors are trained separately on the ``run.train_split`` videos' proposals (or loaded from
``models/dnet/<train_hash>/seed<k>/``), scored on ``run.eval_split``, fused 5:6 and evaluated
with the official-semantics mAP. ``test_time`` selects, without retraining:

* ``cls_feature`` / ``loc_feature`` in ``F_cls``, ``F_loc`` (table 2, regrouped inside the trained model) or
  ``F_pro`` (table 3): the classification (or localization) predictions then come from an *independent*
  model trained on the original features, i.e. the A-Net baseline of table 1 (``detector.encoder: none``,
  everything else equal, cached under its own training hash), combined with the other branch's predictions;
* ``fusion_weights`` (RGB, Flow), ``video_cls`` (video-level classification fusion) and the NMS settings.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from talbench.data.proposals import detector_proposals, proposals_fingerprint
from talbench.eval.detection import evaluate_detection
from talbench.io import atomic_write_json
from talbench.models import count_parameters
from talbench.models.proposal_detector import LossWeights, build_detector, parameter_counts
from talbench.runners.common.checkpoints import (
    checkpoint_dir,
    load_checkpoint,
    save_checkpoint,
    training_code_hash,
)
from talbench.runners.common.device import device_key, row_device
from talbench.runners.common.outcome import RowOutcome
from talbench.runners.common.snippets import load_snippets
from talbench.runners.common.video_classifier import video_scores
from talbench.runners.proposal_detector.infer import (
    combine_branches,
    fuse_streams,
    predict_stream,
    single_stream,
    to_detections,
)
from talbench.runners.proposal_detector.sampling import assign_training_proposals
from talbench.runners.proposal_detector.train import train_detector

STREAMS = ("rgb", "flow")
RUNNER = "dnet"
PAPER_FEATURE_DIM = 1024  # I3D, per stream (D-Net sec. 4)
PAPER_NUM_CLASSES = 20  # THUMOS14


def run_row(cfg: dict, seed: int, dataset, console=None, report: Callable[[int, float], None] | None = None) -> RowOutcome:
    """Train (or load) the RGB and Flow detectors, infer on ``run.eval_split``, fuse, evaluate."""
    proposals = detector_proposals(cfg, dataset)
    return run_with_proposals(cfg, seed, dataset, proposals, console=console, report=report)


def _segments_by_video(proposals: pd.DataFrame, video_ids: list[str]) -> dict[str, np.ndarray]:
    groups = {k: g for k, g in proposals.groupby("video_id", sort=False)}
    top = {}
    for vid in video_ids:
        g = groups.get(vid)
        top[vid] = np.zeros((0, 2)) if g is None else g[["start", "end"]].to_numpy(dtype=np.float64)
    return top


class _StreamData:
    """Snippets of one stream for the training and evaluation videos (loaded once per row, on its device)."""

    def __init__(self, dataset, train_ids, eval_ids, stream, factor, device):
        self.train = load_snippets(dataset, train_ids, stream, factor, device)
        self.eval = load_snippets(dataset, eval_ids, stream, factor, device)


def _train_or_load(cfg, seed, dataset, data: dict[str, _StreamData], assigned, inputs, console,
                   flow_epoch_hook=None) -> tuple[dict[str, torch.nn.Module], dict, Path]:
    """The two stream models of ``cfg`` (cached by training hash) on the row's device (initialised on the CPU);
    timings of the training if it ran."""
    folder = checkpoint_dir(cfg, seed, RUNNER)
    num_classes = len(dataset.classes)
    models = {}
    for i, stream in enumerate(STREAMS):
        torch.manual_seed(seed * 1009 + i)
        models[stream] = build_detector(cfg, data[stream].train[next(iter(data[stream].train))].features.shape[1],
                                        num_classes).to(row_device(cfg))
    states = load_checkpoint(folder, cfg, inputs)
    if states is not None:
        for stream in STREAMS:
            models[stream].load_state_dict(states[stream])
        timings = json.loads((folder / "timings.json").read_text(encoding="utf-8"))
        timings["loaded_from_cache"] = 1.0
        return models, timings, folder
    epoch_seconds = []
    weights = LossWeights(regression=cfg["dnet"]["lambda1"], completeness=cfg["dnet"]["lambda2"])  # eq. 15
    for stream in STREAMS:
        after_epoch = None
        if flow_epoch_hook is not None and stream == STREAMS[-1]:
            def after_epoch(epoch: int) -> None:
                flow_epoch_hook(models, epoch)
        history = train_detector(models[stream], data[stream].train, assigned, cfg, seed, weights,
                                 description=f"{cfg['detector']['encoder']} {stream}", console=console,
                                 after_epoch=after_epoch)
        epoch_seconds += history.epoch_seconds
        if console is not None:
            console.print(f"  {stream}: {history.train_seconds:.1f}s, {np.mean(history.epoch_seconds):.2f}s/epoch, "
                          f"final loss {history.losses[-1]['total']:.3f}")
    timings = {"train_seconds": float(np.sum(epoch_seconds)), "seconds_per_epoch": float(np.mean(epoch_seconds)),
               "loaded_from_cache": 0.0}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "timings.json", timings)
    save_checkpoint(folder, {s: models[s].state_dict() for s in STREAMS}, cfg, seed, inputs)
    return models, timings, folder


def _baseline_cfg(cfg: dict) -> dict:
    base = copy.deepcopy(cfg)
    base["detector"]["encoder"] = "none"
    return base


def run_with_proposals(cfg: dict, seed: int, dataset, proposals: pd.DataFrame, console=None,
                       report: Callable[[int, float], None] | None = None) -> RowOutcome:
    """:func:`run_row` with the proposals given (``video_id, start, end, score`` in seconds)."""
    tt, det = cfg["test_time"], cfg["detector"]
    train_split, eval_split = cfg["run"]["train_split"], cfg["run"]["eval_split"]
    train_ids, eval_ids = dataset.video_ids(train_split), dataset.video_ids(eval_split)
    for key in ("cls_feature", "loc_feature"):
        if tt[key] not in ("F_cls", "F_loc", "F_pro"):
            raise ValueError(f"test_time.{key} must be F_cls, F_loc or F_pro, got {tt[key]!r}")
    device = row_device(cfg)
    data = {s: _StreamData(dataset, train_ids, eval_ids, s, det["snippet_pooling"], device) for s in STREAMS}
    assigned = assign_training_proposals(dataset, train_ids, proposals, dataset.instances(train_split), det["sampling"])
    eval_segments = _segments_by_video(proposals, eval_ids)
    gt = dataset.instances(eval_split)
    thresholds = cfg["eval"]["tiou_thresholds"]
    vscores = video_scores(cfg, dataset, train_ids, eval_ids, seed)

    def predict(models, cls_feature="F_cls", loc_feature="F_loc"):
        # Test-time draws (table 4's random removed codes) come from the row's seed, apart from the global
        # stream: the same predictions whether the detectors were just trained or loaded from their checkpoint.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            outs, speeds = {}, []
            for s in STREAMS:
                outs[s], speed = predict_stream(models[s], data[s].eval, eval_segments, cfg, cls_feature, loc_feature)
                speeds.append(speed)
        return outs, float(np.mean(speeds))

    def report_hook(models, epoch):
        outs, _ = predict(models)
        fused = to_detections(fuse_streams([outs[s] for s in STREAMS], tt["fusion_weights"]), dataset.classes, tt, vscores)
        report(epoch, float(evaluate_detection(gt, fused, [0.5]).map[0]))

    uses_pro = "F_pro" in (tt["cls_feature"], tt["loc_feature"])
    uses_main = tt["cls_feature"] != "F_pro" or tt["loc_feature"] != "F_pro"
    hook = report_hook if report is not None and uses_main else None
    inputs = {"code": training_code_hash(__name__), "data": dataset.checksum(),
              "proposals": proposals_fingerprint(proposals), "device": device_key(device)}
    models, timings, folder = _train_or_load(cfg, seed, dataset, data, assigned, inputs, console, hook)
    outputs, speed = predict(models, *(f if f != "F_pro" else "F_cls" for f in (tt["cls_feature"], tt["loc_feature"])))
    if uses_pro:
        base_cfg = _baseline_cfg(cfg)
        base_hook = report_hook if report is not None and not uses_main else None
        base_models, base_timings, _ = _train_or_load(base_cfg, seed, dataset, data, assigned, inputs, console,
                                                      base_hook)
        base_outputs, _ = predict(base_models)
        timings = {k: timings[k] + base_timings[k] for k in ("train_seconds", "seconds_per_epoch")} | {
            "loaded_from_cache": min(timings["loaded_from_cache"], base_timings["loaded_from_cache"])}
        cls_src = base_outputs if tt["cls_feature"] == "F_pro" else outputs
        loc_src = base_outputs if tt["loc_feature"] == "F_pro" else outputs
        outputs = {s: combine_branches(cls_src[s], loc_src[s]) for s in STREAMS}

    infer_start = time.perf_counter()
    predictions = {s: to_detections(single_stream(outputs[s]), dataset.classes, tt, vscores) for s in STREAMS}
    predictions["fusion"] = to_detections(fuse_streams([outputs[s] for s in STREAMS], tt["fusion_weights"]),
                                          dataset.classes, tt, vscores)
    metrics: dict[str, float] = {}
    for name, pred in predictions.items():
        result = evaluate_detection(gt, pred, thresholds)
        for t, value in zip(result.tiou, result.map):
            metrics[f"{name}/mAP_{float(t):g}"] = float(value)
        metrics[f"{name}/average_mAP"] = float(result.average_map)
    counts_paper = parameter_counts(cfg, PAPER_FEATURE_DIM, PAPER_NUM_CLASSES)
    actual = count_parameters(models[STREAMS[0]])
    metrics.update({
        "params_m": counts_paper["total"] / 1e6,
        "params_m_actual": actual / 1e6,
        "train_seconds": timings["train_seconds"],
        "seconds_per_epoch": timings["seconds_per_epoch"],
        "proposals_per_second": speed,
    })
    timings = timings | {"infer_postprocess_seconds": time.perf_counter() - infer_start,
                         "proposals_per_second": speed}
    return RowOutcome(metrics=metrics, predictions=predictions,
                      param_counts={f"paper_{k}": v for k, v in counts_paper.items()} | {"actual_total": actual},
                      timings=timings, checkpoint_dir=folder)
