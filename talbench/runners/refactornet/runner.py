"""Runner ``refactornet``: one row of RefactorNet's tables (CVPR 2022) with one seed.

Pipeline of one row (sections 3.3-4.2 and 5.2):

1. 16-frame snippets of the ``refactornet.stream`` features (RGB & Flow concatenated by default), pooled as
   the shared detector does (``detector.snippet_pooling``), for the ``run.train_split`` and ``run.eval_split``
   videos.
2. Sample collection (sec. 3.3, :mod:`talbench.runners.refactornet.coupling`) on the training snippets.
3. Stage 1 (sec. 5.2, :mod:`talbench.runners.refactornet.training`): phi_A and phi_C alone,
   ``alpha (L_A + L_C)`` (eqs. 1, 2, 5), Adam.
4. Stage 2 (sec. 5.2): the whole network end to end, ``L_R + L_D`` (eqs. 5, 7), Adam, with the module mapping each
   video's snippet sequence F to F' before the shared detector, RoI-pooled proposal features and three head MLPs
   (``detector.aggregation: roi_pool``, ``head_mlps: 3``, as the benchmark rows set them), on the labelled
   proposals of the training videos from the shared BSN stage (the only proposals that exist before F' is final).
5. Proposals of the evaluation videos (sec. 3.6 and 4.2, eq. 6): BSN trained on the module's output for the
   training videos with ``L_P = L_bl^s + gamma L_bl^e`` (:mod:`talbench.runners.refactornet.proposals`), for
   RefactorNet and the Deep Baseline alike; the Baseline and ``refactornet.proposals.features: original`` read the
   shared BSN proposals.
6. Inference (sec. 4.2): score = classification x completeness, Soft-NMS (video-level classification fusion only
   on ``refactornet.video_fusion_sources``: ActivityNet, sec. 5.2); mAP, table 3's classification accuracy and
   mean tIoU of high-quality proposals, AR@AN of the row's proposals, and the context probe (figure 4 as a number).

Variants (params ``refactornet.*``): ``enabled: false`` is the Baseline (detector on the original
features), ``deep_baseline: true`` the Deep Baseline (temporal 1-D convolutions over the snippet sequence, of the
encoders' size and depth, trained with L_D only), ``use_la_lc`` / ``use_kl`` table 4 (both off: table 2's control
row, the encoders trained with L_D only), ``components`` table 5. Every variant trains the detector with the same
stage-2 schedule, so rows differ only in the module before the detector (and the proposals it yields).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from talbench.data.proposals import detector_proposals, load_proposals, proposals_fingerprint, write_proposals
from talbench.errors import ConfigError
from talbench.eval.classification import high_quality_proposal_metrics
from talbench.eval.detection import evaluate_detection
from talbench.eval.proposals import average_recall
from talbench.io import atomic_write_json
from talbench.models.refactornet import (
    COMPONENT_CHOICES,
    KL_FORMS,
    RefactoredDetector,
    RefactorNet,
    build_model,
    parameter_counts,
    refactoring_module,
)
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
    labelled_proposals,
    predict_stream,
    single_stream,
    to_detections,
)
from talbench.runners.proposal_detector.sampling import assign_training_proposals
from talbench.runners.refactornet.probe import context_probe
from talbench.runners.refactornet.proposals import refactored_proposals
from talbench.runners.refactornet.training import train_encoders, train_end_to_end

RUNNER = "refactornet"
PAPER_FEATURE_DIM = 2048  # I3D RGB (1024) and Flow (1024) concatenated (sec. 5.2)
PAPER_NUM_CLASSES = 20  # THUMOS14
PAPER_HIDDEN_DIM = 1024  # encoder width of the `paper` profile (the paper gives none; a test checks params.yaml)
PROPOSAL_FEATURES = ("refactored", "original")  # BSN on F' (sec. 3.6, eq. 6) | the shared BSN on F
PROPOSAL_ENCODERS = ("final", "stage1")  # BSN on the F' of the encoders after stage 2 | after stage 1


def validate_config(cfg: dict) -> dict:
    """The ``refactornet`` section, checked; a bad value is a :class:`ConfigError` naming the key."""
    rc = cfg["refactornet"]
    if rc["components"] not in COMPONENT_CHOICES:
        raise ConfigError(f"params.yaml: refactornet.components must be one of {COMPONENT_CHOICES}, "
                          f"got '{rc['components']}'")
    if rc["alpha_mode"] not in ("similarity", "constant"):
        raise ConfigError(f"params.yaml: refactornet.alpha_mode must be similarity or constant, got '{rc['alpha_mode']}'")
    if rc["deep_baseline"] and not rc["enabled"]:
        raise ConfigError("params.yaml: refactornet.deep_baseline needs refactornet.enabled: true (it takes its slot)")
    if rc["beta"] < 0 or rc["alpha_scale"] < 0:
        raise ConfigError("params.yaml: refactornet.beta and refactornet.alpha_scale must be >= 0")
    if rc["proposals"]["features"] not in PROPOSAL_FEATURES:
        raise ConfigError(f"params.yaml: refactornet.proposals.features must be one of {PROPOSAL_FEATURES}, "
                          f"got '{rc['proposals']['features']}'")
    if rc["proposals"]["encoders"] not in PROPOSAL_ENCODERS:
        raise ConfigError(f"params.yaml: refactornet.proposals.encoders must be one of {PROPOSAL_ENCODERS}, "
                          f"got '{rc['proposals']['encoders']}'")
    if rc["kl_form"] not in KL_FORMS:
        raise ConfigError(f"params.yaml: refactornet.kl_form must be one of {KL_FORMS}, got '{rc['kl_form']}'")
    if rc["proposals"]["gamma"] < 0:
        raise ConfigError("params.yaml: refactornet.proposals.gamma must be >= 0")
    if rc["soft_nms"]["method"] not in ("gaussian", "linear", "hard"):
        raise ConfigError(f"params.yaml: refactornet.soft_nms.method must be gaussian, linear or hard, "
                          f"got '{rc['soft_nms']['method']}'")
    return rc


def uses_refactored_proposals(model: RefactoredDetector, rc: dict) -> bool:
    """BSN on the module's output for RefactorNet's encoders and for the Deep Baseline (each gets BSN trained on
    its own output features); the Baseline (no module) reads the shared BSN proposals of F."""
    return refactoring_module(model) is not None and rc["proposals"]["features"] == "refactored"


def paper_config(cfg: dict) -> dict:
    """``cfg`` at the paper's sizes (the ``paper`` profile's encoder width; D and C are the counts' arguments),
    for the parameter counts reported as ``params_m``: a profile's smaller width must not enter them."""
    paper = copy.deepcopy(cfg)
    paper["refactornet"]["hidden_dim"] = PAPER_HIDDEN_DIM
    paper["refactornet"]["component_dim"] = None
    paper["detector"]["head_hidden"] = None
    return paper


def segments_by_video(proposals: pd.DataFrame, video_ids: list[str]) -> dict[str, np.ndarray]:
    groups = {k: g for k, g in proposals.groupby("video_id", sort=False)}
    return {v: groups[v][["start", "end"]].to_numpy(np.float64) for v in video_ids if v in groups}


def run_row(cfg: dict, seed: int, dataset, console=None, report: Callable[[int, float], None] | None = None) -> RowOutcome:
    """Train (or load) from ``models/refactornet/<train_hash>/seed<k>/`` and evaluate one row. The detector
    trains on the shared BSN proposals of the training videos; the evaluation videos' proposals of a row with a
    module (RefactorNet, the Deep Baseline) come from BSN trained on its output (after stage 2, or stage 1 with
    ``proposals.encoders: stage1``) and are saved in the checkpoint folder (``proposals/<video>.csv``)."""
    rc = validate_config(cfg)
    det = cfg["detector"]
    stream = rc["stream"]
    train_split, eval_split = cfg["run"]["train_split"], cfg["run"]["eval_split"]
    train_ids, eval_ids = dataset.video_ids(train_split), dataset.video_ids(eval_split)
    device = row_device(cfg)
    train_videos = load_snippets(dataset, train_ids, stream, det["snippet_pooling"], device)
    eval_videos = load_snippets(dataset, eval_ids, stream, det["snippet_pooling"], device)
    train_gt, gt = dataset.instances(train_split), dataset.instances(eval_split)
    truth_groups = {vid: g for vid, g in train_gt.groupby("video_id", sort=False)}
    train_truth = {vid: truth_groups.get(vid, train_gt.iloc[0:0]) for vid in train_ids}
    tt = cfg["test_time"]
    # sec. 5.2: video-level classification fusion ([45]) on ActivityNet v1.3 only
    vscores = video_scores(cfg, dataset, train_ids, eval_ids, seed) \
        if cfg["data"]["source"] in rc["video_fusion_sources"] else None
    soft_nms = rc["soft_nms"] if rc["soft_nms"]["method"] != "hard" else None
    in_dim = dataset.stream_dim(stream)

    torch.manual_seed(seed)
    model = build_model(cfg, in_dim, len(dataset.classes)).to(device)  # initialised on the CPU
    refactored = uses_refactored_proposals(model, rc)
    folder = checkpoint_dir(cfg, seed, RUNNER)
    shared = detector_proposals(cfg, dataset)
    inputs = {"code": training_code_hash(__name__), "data": dataset.checksum(),
              "proposals": proposals_fingerprint(shared), "device": device_key(device)}
    states = load_checkpoint(folder, cfg, inputs)
    if states is not None:
        model.load_state_dict(states["model"])
        log = json.loads((folder / "train_log.json").read_text(encoding="utf-8"))
        loaded = 1.0
    else:
        folder.mkdir(parents=True, exist_ok=True)
        pairs, log = train_encoders(cfg, seed, model, train_videos, train_truth, console)
        stage1_module = copy.deepcopy(refactoring_module(model)) if rc["proposals"]["encoders"] == "stage1" else None
        assigned = assign_training_proposals(dataset, train_ids, shared, train_gt, det["sampling"])
        epoch_segments = segments_by_video(shared, eval_ids)

        def after_epoch(epoch: int) -> None:
            outs, _ = predict_stream(model, eval_videos, epoch_segments, cfg)
            pred = to_detections(single_stream(outs), dataset.classes, tt, vscores, soft_nms)
            report(epoch, float(evaluate_detection(gt, pred, [0.5]).map[0]))

        log = train_end_to_end(cfg, seed, model, pairs, log, train_videos, assigned, console,
                               after_epoch if report is not None else None)
        start = time.perf_counter()
        if refactored:
            generated, log["bsn"] = refactored_proposals(cfg, stage1_module or refactoring_module(model), dataset,
                                                         eval_ids, console)
            write_proposals(folder / "proposals", generated, eval_ids)
        log["proposal_seconds"] = time.perf_counter() - start
        atomic_write_json(folder / "train_log.json", log)
        save_checkpoint(folder, {"model": model.state_dict()}, cfg, seed, inputs)
        loaded = 0.0
    proposals = load_proposals(folder / "proposals", eval_ids) if refactored else \
        shared[shared["video_id"].isin(set(eval_ids))].reset_index(drop=True)

    infer_start = time.perf_counter()
    outputs, speed = predict_stream(model, eval_videos, segments_by_video(proposals, eval_ids), cfg)
    predictions = {stream: to_detections(single_stream(outputs), dataset.classes, tt, vscores, soft_nms)}
    result = evaluate_detection(gt, predictions[stream], cfg["eval"]["tiou_thresholds"])
    metrics: dict[str, float] = {f"{stream}/mAP_{float(t):g}": float(v) for t, v in zip(result.tiou, result.map)}
    metrics[f"{stream}/average_mAP"] = float(result.average_map)
    table3 = high_quality_proposal_metrics(gt, labelled_proposals(outputs, dataset.classes), rc["high_quality_tiou"])
    metrics.update({"class_acc": table3["class_accuracy"], "mean_tiou": table3["mean_tiou"],
                    "high_quality_proposals": float(table3["n_high_quality"])})
    per_video = table3["per_video"]
    video_stats = pd.concat([
        pd.DataFrame({"metric": "class_acc", "video_id": per_video["video_id"],
                      "numerator": per_video["n_correct"], "denominator": per_video["n_high_quality"]}),
        pd.DataFrame({"metric": "mean_tiou", "video_id": per_video["video_id"],
                      "numerator": per_video["sum_tiou"], "denominator": per_video["n_high_quality"]}),
    ], ignore_index=True)
    infer_seconds = time.perf_counter() - infer_start
    recall = average_recall(gt, proposals, cfg["eval"]["ar_an"], cfg["eval"]["ar_tiou_thresholds"])
    metrics.update({f"proposals/AR_{an}": float(value) for an, value in recall["ar"].items()})  # AR@AN
    metrics["proposals/on_refactored_features"] = float(refactored)

    module = refactoring_module(model)
    if isinstance(module, RefactorNet):
        metrics.update(context_probe(module, dataset, {"train": train_videos, "eval": eval_videos}, cfg, seed))
    paper = parameter_counts(paper_config(cfg), PAPER_FEATURE_DIM, PAPER_NUM_CLASSES)
    actual = parameter_counts(cfg, in_dim, len(dataset.classes))
    train_seconds = log["collect_seconds"] + log["stage1_seconds"] + log["proposal_seconds"] + log["stage2_seconds"]
    metrics.update({
        "params_m": paper["total"] / 1e6,
        "params_m_refactoring": paper["refactoring"] / 1e6,
        "params_m_actual": actual["total"] / 1e6,
        "train_seconds": float(train_seconds),
        "stage1_seconds": float(log["stage1_seconds"]),
        "proposal_seconds": float(log["proposal_seconds"]),
        "stage2_seconds": float(log["stage2_seconds"]),
        "seconds_per_epoch": float(log["seconds_per_epoch"]),
        "proposals_per_second": float(speed),
        "loaded_from_cache": loaded,
    })
    metrics.update({k: float(v) for k, v in log["coupling"].items()})
    if log["stage1"]:
        metrics.update({f"stage1/{k}": float(v) for k, v in log["stage1"][-1].items()})
    metrics.update({f"stage2/{k}": float(v) for k, v in log["stage2_refactoring"].items()})
    timings = {"collect": log["collect_seconds"], "stage1": log["stage1_seconds"],
               "proposals": log["proposal_seconds"], "stage2": log["stage2_seconds"],
               "train": metrics["train_seconds"], "infer": infer_seconds, "loaded_from_cache": loaded}
    return RowOutcome(
        metrics=metrics, predictions=predictions, video_stats=video_stats,
        param_counts={f"paper_{k}": v for k, v in paper.items()} | {f"actual_{k}": v for k, v in actual.items()},
        timings=timings, checkpoint_dir=folder,
    )
