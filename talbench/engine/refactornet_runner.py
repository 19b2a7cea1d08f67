"""Runner ``refactornet``: one row of RefactorNet's tables (CVPR 2022) with one seed.

Pipeline of one row (sections 3.3-4.2 and 5.2):

1. 16-frame snippets of the ``refactornet.stream`` features (RGB & Flow concatenated by default), pooled as
   the shared detector does (``detector.snippet_pooling``), for the ``run.train_split`` and ``run.eval_split``
   videos.
2. Sample collection (sec. 3.3, :mod:`talbench.engine.coupling_samples`) on the training snippets.
3. Stage 1 (sec. 5.2): phi_A and phi_C alone, ``alpha (L_A + L_C)`` (eqs. 1, 2, 5), Adam.
4. Stage 2 (sec. 5.2): the whole network end to end, ``L_R + L_D`` (eqs. 5, 7), Adam, with the refactoring
   module in the shared detector's encoder slot and RoI-pooled proposal features with three MLP heads
   (``detector.aggregation: roi_pool``, as the benchmark rows set it), on the labelled proposals of the
   training videos from the shared BSN stage (the only proposals that exist before F' is final).
5. Proposals of the evaluation videos (sec. 3.6 and 4.2, eq. 6): BSN trained on the final F' of the training
   videos with ``L_P = L_bl^s + gamma L_bl^e`` (:mod:`talbench.engine.refactored_proposals`); the Baseline,
   the Deep Baseline and ``refactornet.proposals.features: original`` read the shared BSN proposals.
6. Inference (sec. 4.2): score = classification x completeness, Soft-NMS; mAP, table 3's classification
   accuracy and mean tIoU of high-quality proposals, AR@AN of the row's proposals, and the context probe
   (figure 4 as a number).

Variants (params ``refactornet.*``): ``enabled: false`` is the Baseline (detector on the original
features), ``deep_baseline: true`` the Deep Baseline (temporal 1-D convolutions of the encoders' size and
depth, trained with L_D only), ``use_la_lc`` / ``use_kl`` table 4, ``components`` table 5. Every variant
trains the detector with the same stage-2 schedule, so rows differ only in the refactoring (and the proposals
it yields).
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
from rich.progress import track
from torch import nn

from talbench.config import ConfigError
from talbench.data.proposals import load_detector_proposals, load_proposals, write_proposals
from talbench.engine.checkpoints import checkpoint_dir, load_checkpoint, save_checkpoint
from talbench.engine.coupling_samples import CouplingSamples, collect_coupling_samples
from talbench.engine.infer import predict_stream, single_stream, to_detections
from talbench.engine.proposal_sampling import VideoSnippets
from talbench.engine.refactored_proposals import refactored_proposals
from talbench.engine.runner import RowOutcome
from talbench.engine.train import assign_training_proposals, load_snippets, train_detector
from talbench.engine.video_classifier import video_scores
from talbench.eval.detection import evaluate_detection
from talbench.eval.probe import linear_probe
from talbench.eval.proposals import average_recall
from talbench.eval.tiou import pairwise_tiou
from talbench.io import atomic_write_json
from talbench.models.proposal_detector import IdentityEncoder, ProposalDetector, aggregation_bins
from talbench.models.refactornet import (
    COMPONENT_CHOICES,
    DeepBaseline,
    RefactorNet,
    count_parameters,
    matched_deep_hidden_dim,
    refactoring_loss,
)

RUNNER = "refactornet"
PAPER_FEATURE_DIM = 2048  # I3D RGB (1024) and Flow (1024) concatenated (sec. 5.2)
PAPER_NUM_CLASSES = 20  # THUMOS14
PROPOSAL_FEATURES = ("refactored", "original")  # BSN on F' (sec. 3.6, eq. 6) | the shared BSN on F


# ------------------------------------------------------------------------------------------ the model


class FeatureSlot(nn.Module):
    """Puts a feature module ``(..., D) -> (..., D')`` into the detector's encoder slot: both the
    classification and the localization branch read the refactored features f' (sec. 3.6)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.module(x)
        return {"cls": y, "loc": y}


class RefactoredDetector(ProposalDetector):
    """The shared proposal detector on refactored features: the region snippets go through the encoder slot
    (shared detector); with A-Net aggregation, so does the video-level descriptor of A-Net's global context
    (max over the video's original snippets), as a length-1 sequence, so that every detector input lives in
    the space of f'. RoI pooling (sec. 5.2) reads the proposal's snippets only."""

    def forward(self, batch: dict[str, torch.Tensor], cls_feature: str = "F_cls",
                loc_feature: str = "F_loc") -> dict[str, torch.Tensor]:
        if self.roi_bins is None:
            batch = dict(batch)
            batch["video_global"] = self.encoder(batch["video_global"].unsqueeze(1))["cls"].squeeze(1)
        return super().forward(batch, cls_feature=cls_feature, loc_feature=loc_feature)


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
    if rc["proposals"]["gamma"] < 0:
        raise ConfigError("params.yaml: refactornet.proposals.gamma must be >= 0")
    if rc["soft_nms"]["method"] not in ("gaussian", "linear", "hard"):
        raise ConfigError(f"params.yaml: refactornet.soft_nms.method must be gaussian, linear or hard, "
                          f"got '{rc['soft_nms']['method']}'")
    return rc


def build_feature_module(rc: dict, in_dim: int) -> nn.Module | None:
    """RefactorNet's phi_A / phi_C, the size-matched Deep Baseline, or ``None`` (Baseline)."""
    if not rc["enabled"]:
        return None
    refactor = RefactorNet(in_dim, rc["hidden_dim"], rc["component_dim"], rc["num_layers"], rc["dropout"],
                           rc["components"])
    if not rc["deep_baseline"]:
        return refactor
    width = matched_deep_hidden_dim(count_parameters(refactor), in_dim, refactor.out_dim, rc["num_layers"],
                                    rc["deep_kernel_size"])
    return DeepBaseline(in_dim, width, refactor.out_dim, rc["num_layers"], rc["deep_kernel_size"])


def build_model(cfg: dict, in_dim: int, num_classes: int) -> RefactoredDetector:
    """Refactoring module (or none) in the encoder slot of the shared detector (``detector`` section)."""
    rc, det = cfg["refactornet"], cfg["detector"]
    module = build_feature_module(rc, in_dim)
    encoder = IdentityEncoder() if module is None else FeatureSlot(module)
    feature_dim = in_dim if module is None else module.out_dim
    hidden = det["head_hidden"] or feature_dim
    return RefactoredDetector(encoder, feature_dim, num_classes, hidden, head_layers=det["head_layers"],
                              dropout=det["dropout"], attention=cfg["anet"]["attention"],
                              roi_bins=aggregation_bins(det))


def refactoring_module(model: RefactoredDetector) -> nn.Module | None:
    return model.encoder.module if isinstance(model.encoder, FeatureSlot) else None


def parameter_counts(cfg: dict, in_dim: int, num_classes: int) -> dict[str, int]:
    """``refactoring`` (phi_A + phi_C, or the Deep Baseline convolutions), ``detector`` and ``total``."""
    model = build_model(cfg, in_dim, num_classes)
    module = refactoring_module(model)
    refactoring = count_parameters(module) if module is not None else 0
    total = count_parameters(model)
    return {"refactoring": refactoring, "detector": total - refactoring, "total": total}


# ------------------------------------------------------------------------------------------ training


def pair_alpha(similarity: np.ndarray, mode: str, scale: float) -> np.ndarray:
    """alpha of eq. 5 per pair: the pair's cosine similarity (sec. 5.2) times ``scale``, or ``scale``."""
    if mode == "similarity":
        return (scale * similarity).astype(np.float32)
    return np.full(similarity.shape, scale, dtype=np.float32)


class PairBatches:
    """Tensors of the (action, coupling) pairs and their alpha; seeded mini-batches of pair indices."""

    def __init__(self, samples: CouplingSamples, rc: dict):
        features = torch.from_numpy(samples.features)
        self.action = features[torch.from_numpy(samples.action_index)]
        self.coupling = features[torch.from_numpy(samples.coupling_index)]
        self.alpha = torch.from_numpy(pair_alpha(samples.similarity, rc["alpha_mode"], rc["alpha_scale"]))

    def __len__(self) -> int:
        return int(self.alpha.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.action[index], self.coupling[index], self.alpha[index]


def train_stage1(module: RefactorNet, pairs: PairBatches, rc: dict, seed: int, console=None) -> list[dict[str, float]]:
    """Stage 1 (sec. 5.2): the two encoders alone with ``alpha (L_A + L_C)``, Adam, ``stage1`` schedule."""
    stage = rc["stage1"]
    optimizer = torch.optim.Adam(module.parameters(), lr=stage["lr"])
    generator = torch.Generator().manual_seed(seed)
    history = []
    epochs = range(stage["epochs"])
    for _ in track(epochs, description="refactornet stage 1", console=console, disable=console is None,
                   transient=True):
        module.train()
        order = torch.randperm(len(pairs), generator=generator)
        sums, steps = {}, 0
        for first in range(0, len(pairs), stage["batch_size"]):
            index = order[first:first + stage["batch_size"]]
            if index.numel() < 2:
                continue
            action, coupling, alpha = pairs.batch(index)
            loss, parts = refactoring_loss(module, action, coupling, alpha, rc["beta"], use_la_lc=True, use_kl=False)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        history.append({k: v / max(steps, 1) for k, v in sums.items()})
    return history


def stage2_config(cfg: dict) -> dict:
    """The detector section with RefactorNet's stage-2 schedule (sec. 5.2: 20 epochs, lr 1e-3)."""
    stage = cfg["refactornet"]["stage2"]
    out = copy.deepcopy(cfg)
    out["detector"]["epochs"] = stage["epochs"]
    out["detector"]["lr"] = stage["lr"]
    out["detector"]["lr_steps"] = list(stage["lr_steps"])
    return out


def train_encoders(cfg: dict, seed: int, model: RefactoredDetector, train_videos: dict[str, VideoSnippets],
                   train_truth: dict[str, pd.DataFrame], console=None) -> tuple[PairBatches | None, dict]:
    """Sample collection (on ``train_truth``: video -> ``start, end, label_id``) and stage 1 of ``model``'s
    refactoring module; returns the pairs (``None`` without refactoring losses) and the training log."""
    rc = cfg["refactornet"]
    module = refactoring_module(model)
    refactor = module if isinstance(module, RefactorNet) else None
    log: dict = {"stage1": [], "stage2_refactoring": [], "coupling": {}}
    pairs = None
    start = time.perf_counter()
    if refactor is not None and (rc["use_la_lc"] or rc["use_kl"]):
        coupling = rc["coupling"]
        samples = collect_coupling_samples(
            ((vid, v.features.numpy(), v.centers, train_truth[vid]) for vid, v in train_videos.items()),
            min_similarity=coupling["min_similarity"], top_k=coupling["top_k"], chunk_size=coupling["chunk_size"],
        )
        log["coupling"] = samples.summary()
        pairs = PairBatches(samples, rc)
    log["collect_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    if pairs is not None and rc["use_la_lc"]:
        torch.manual_seed(seed)
        log["stage1"] = train_stage1(refactor, pairs, rc, seed, console)
    log["stage1_seconds"] = time.perf_counter() - start
    return pairs, log


def train_end_to_end(cfg: dict, seed: int, model: RefactoredDetector, pairs: PairBatches | None, log: dict,
                     train_videos: dict[str, VideoSnippets], assigned, console=None,
                     after_epoch: Callable[[int], None] | None = None) -> dict:
    """Stage 2 of ``model`` on the labelled training proposals ``assigned``, ``L_D + L_R``; completes ``log``."""
    rc = cfg["refactornet"]
    refactor = refactoring_module(model)
    extra_loss = None
    if pairs is not None:
        generator = torch.Generator().manual_seed(seed + 1)
        batch_size = min(rc["stage2"]["pair_batch_size"], len(pairs))

        def extra_loss() -> torch.Tensor:
            index = torch.randperm(len(pairs), generator=generator)[:batch_size]
            action, coupling_feats, alpha = pairs.batch(index)
            loss, parts = refactoring_loss(refactor, action, coupling_feats, alpha, rc["beta"],
                                           use_la_lc=rc["use_la_lc"], use_kl=rc["use_kl"])
            log["stage2_refactoring"].append(parts)
            return loss

    stage2 = stage2_config(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=rc["stage2"]["lr"])
    history = train_detector(model, train_videos, assigned, stage2, seed, description=f"{RUNNER} stage 2",
                             console=console, after_epoch=after_epoch, optimizer=optimizer, extra_loss=extra_loss)
    log["stage2_seconds"] = history.train_seconds
    log["seconds_per_epoch"] = float(np.mean(history.epoch_seconds))
    log["stage2_final_loss"] = history.losses[-1]
    steps = len(log["stage2_refactoring"])
    if steps:  # keep the mean refactoring loss parts of the last epoch only
        per_epoch = max(steps // max(len(history.epoch_seconds), 1), 1)
        last = log["stage2_refactoring"][-per_epoch:]
        log["stage2_refactoring"] = {k: float(np.mean([p[k] for p in last])) for k in last[0]}
    else:
        log["stage2_refactoring"] = {}
    return log


# ------------------------------------------------------------------------------------------ evaluation


def high_quality_stats(scores: dict, gt: pd.DataFrame, classes: list[str], min_tiou: float) -> tuple[float, float, int]:
    """Table 3: over the proposals whose regressed boundaries have tIoU > ``min_tiou`` with a ground truth of
    their video, the classification accuracy (argmax class = that ground truth's class) and the mean tIoU,
    both in percent, and how many such proposals there are."""
    gt_by_video = {k: g for k, g in gt.groupby("video_id", sort=False)}
    label_ids = {name: i for i, name in enumerate(classes)}
    correct, tious = [], []
    for vid, out in scores.items():
        truth = gt_by_video.get(vid)
        if truth is None or len(out.boundaries) == 0:
            continue
        iou = pairwise_tiou(out.boundaries, truth[["start", "end"]].to_numpy(dtype=np.float64))
        best = iou.argmax(axis=1)
        best_iou = iou[np.arange(len(best)), best]
        good = best_iou > min_tiou
        truth_label = truth["label"].map(label_ids).to_numpy()[best[good]]
        correct.append(out.cls_prob[good].argmax(axis=1) == truth_label)
        tious.append(best_iou[good])
    correct_all = np.concatenate(correct) if correct else np.zeros(0, bool)
    tiou_all = np.concatenate(tious) if tious else np.zeros(0)
    if correct_all.size == 0:
        return 0.0, 0.0, 0
    return float(100 * correct_all.mean()), float(100 * tiou_all.mean()), int(correct_all.size)


def latents_path(dataset, video_id: str) -> Path:
    """The synthetic benchmark's sidecar ``latents/<video_id>.npz`` next to the feature folder."""
    return Path(dataset.layout.feature_dir).parent / "latents" / f"{video_id}.npz"


def context_probe(module: RefactorNet, dataset, videos: dict[str, dict[str, VideoSnippets]], cfg: dict,
                  seed: int) -> dict[str, float]:
    """Figure 4 as a number: linear-probe accuracy (%) of the context label of non-action snippets from
    phi_A(f), phi_C(f) and f (trained on training videos, measured on evaluation videos). Uses the synthetic
    sidecar latents; returns nothing when they are absent (real THUMOS14)."""
    factor, rc = cfg["detector"]["snippet_pooling"], cfg["refactornet"]
    sets = {}
    for part, part_videos in videos.items():
        feats, labels = [], []
        for vid, snippets in part_videos.items():
            path = latents_path(dataset, vid)
            if not path.is_file():
                return {}
            with np.load(path) as latents:
                phase, context = latents["phase"], latents["context"]
            cells = np.minimum(np.arange(len(snippets.features)) * factor + factor // 2, len(phase) - 1)
            keep = phase[cells] == 0  # non-action snippets: the context is not confounded with the action
            feats.append(snippets.features[torch.from_numpy(keep)])
            labels.append(context[cells][keep].astype(np.int64))
        x, y = torch.cat(feats), np.concatenate(labels)
        limit = rc["probe"]["max_snippets"]
        if len(y) > limit:
            pick = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
            x, y = x[torch.from_numpy(pick)], y[pick]
        sets[part] = (x, y)
    module.eval()
    with torch.no_grad():
        views = {name: {part: fn(x) for part, (x, _) in sets.items()} for name, fn in (
            ("action", module.phi_a), ("cooccurrence", module.phi_c), ("original", lambda t: t))}
    metrics = {}
    for name, view in views.items():
        result = linear_probe(view["train"].numpy(), sets["train"][1], view["eval"].numpy(), sets["eval"][1],
                              l2=rc["probe"]["l2"])
        metrics[f"probe/context_acc_{name}"] = 100 * result.accuracy
    metrics["probe/context_chance"] = 100 * result.chance
    return metrics


# ------------------------------------------------------------------------------------------ the row


def uses_refactored_proposals(model: RefactoredDetector, rc: dict) -> bool:
    """BSN on F' for RefactorNet's encoders; the Baseline and the Deep Baseline (temporal convolutions at
    the detector's snippet stride, which do not apply to BSN's feature cells) read the shared BSN proposals."""
    return isinstance(refactoring_module(model), RefactorNet) and rc["proposals"]["features"] == "refactored"


def segments_by_video(proposals: pd.DataFrame, video_ids: list[str]) -> dict[str, np.ndarray]:
    groups = {k: g for k, g in proposals.groupby("video_id", sort=False)}
    return {v: groups[v][["start", "end"]].to_numpy(np.float64) for v in video_ids if v in groups}


def run_row(cfg: dict, seed: int, dataset, console=None, report: Callable[[int, float], None] | None = None) -> RowOutcome:
    """Train (or load) from ``models/refactornet/<train_hash>/seed<k>/`` and evaluate one row. The detector
    trains on the shared BSN proposals of the training videos; the evaluation videos' proposals of a row with
    RefactorNet come from BSN trained on its final F' and are saved in the checkpoint folder
    (``proposals/<video>.csv``)."""
    rc = validate_config(cfg)
    det = cfg["detector"]
    stream = rc["stream"]
    train_split, eval_split = cfg["run"]["train_split"], cfg["run"]["eval_split"]
    train_ids, eval_ids = dataset.video_ids(train_split), dataset.video_ids(eval_split)
    ids = train_ids + eval_ids  # the shared proposals' videos
    train_videos = load_snippets(dataset, train_ids, stream, det["snippet_pooling"])
    eval_videos = load_snippets(dataset, eval_ids, stream, det["snippet_pooling"])
    train_gt, gt = dataset.instances(train_split), dataset.instances(eval_split)
    truth_groups = {vid: g for vid, g in train_gt.groupby("video_id", sort=False)}
    train_truth = {vid: truth_groups.get(vid, train_gt.iloc[0:0]) for vid in train_ids}
    tt = cfg["test_time"]
    vscores = video_scores(cfg, dataset, train_ids, eval_ids, seed)
    soft_nms = rc["soft_nms"] if rc["soft_nms"]["method"] != "hard" else None
    in_dim = dataset.stream_dim(stream)

    torch.manual_seed(seed)
    model = build_model(cfg, in_dim, len(dataset.classes))
    refactored = uses_refactored_proposals(model, rc)
    folder = checkpoint_dir(cfg, seed, RUNNER)
    states = load_checkpoint(folder, cfg)
    if states is not None:
        model.load_state_dict(states["model"])
        log = json.loads((folder / "train_log.json").read_text(encoding="utf-8"))
        loaded = 1.0
    else:
        folder.mkdir(parents=True, exist_ok=True)
        pairs, log = train_encoders(cfg, seed, model, train_videos, train_truth, console)
        shared = load_detector_proposals(cfg, ids, {v: dataset.duration(v) for v in ids})
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
            generated, log["bsn"] = refactored_proposals(cfg, refactoring_module(model), dataset, eval_ids,
                                                         console)
            write_proposals(folder / "proposals", generated, eval_ids)
        log["proposal_seconds"] = time.perf_counter() - start
        atomic_write_json(folder / "train_log.json", log)
        save_checkpoint(folder, {"model": model.state_dict()}, cfg, seed)
        loaded = 0.0
    proposals = load_proposals(folder / "proposals", eval_ids) if refactored else \
        load_detector_proposals(cfg, eval_ids, {v: dataset.duration(v) for v in eval_ids})

    infer_start = time.perf_counter()
    outputs, speed = predict_stream(model, eval_videos, segments_by_video(proposals, eval_ids), cfg)
    predictions = {stream: to_detections(single_stream(outputs), dataset.classes, tt, vscores, soft_nms)}
    result = evaluate_detection(gt, predictions[stream], cfg["eval"]["tiou_thresholds"])
    metrics: dict[str, float] = {f"{stream}/mAP_{float(t):g}": float(v) for t, v in zip(result.tiou, result.map)}
    metrics[f"{stream}/average_mAP"] = float(result.average_map)
    class_acc, mean_tiou, n_high = high_quality_stats(outputs, gt, dataset.classes, rc["high_quality_tiou"])
    metrics.update({"class_acc": class_acc, "mean_tiou": mean_tiou, "high_quality_proposals": float(n_high)})
    infer_seconds = time.perf_counter() - infer_start
    recall = average_recall(gt, proposals, cfg["eval"]["ar_an"], cfg["eval"]["ar_tiou_thresholds"])
    metrics.update({f"proposals/AR_{an}": float(value) for an, value in recall["ar"].items()})  # AR@AN
    metrics["proposals/on_refactored_features"] = float(refactored)

    module = refactoring_module(model)
    if isinstance(module, RefactorNet):
        metrics.update(context_probe(module, dataset, {"train": train_videos, "eval": eval_videos}, cfg, seed))
    paper = parameter_counts(cfg, PAPER_FEATURE_DIM, PAPER_NUM_CLASSES)
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
        metrics=metrics, predictions=predictions,
        param_counts={f"paper_{k}": v for k, v in paper.items()} | {f"actual_{k}": v for k, v in actual.items()},
        timings=timings, checkpoint_dir=folder,
    )
