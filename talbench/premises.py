"""The data's premises, measured (issue 15): what the four papers need their data to contain.

``talbench premises`` (a DVC stage) writes ``results/premises.json`` for the configured dataset; every number is a
property of the data (or of the pipeline's own video-level classifier), measured on the training videos and scored
on the test videos, never tuned on them:

* **annotations** (any dataset): videos, instances per video and per class, classes per video (the share of
  videos with more than one class), background share of the time, instance and video durations, and the
  instances per feature-pyramid level (ActionFormer / TriDet / CLTDR-GMG regression ranges: a centre point
  regresses ``max(left, right)`` cells, about half an instance's length, in ``[0, 4], [4, 8], ..., [64, inf)``)
  and the coarsest stride that still places an instance's boundaries within tIoU 0.7 (a shift of ``3 d / 17``);
* **video-level classifier** (any dataset): top-1 of the pipeline's own classifier
  (:mod:`talbench.runners.common.video_classifier`, ``test_time.video_cls: classifier``): the share of test
  videos whose top class is one of their classes (UntrimmedNet on THUMOS14: 91.98%), and the share whose
  classes are all in its top 2 (what the top-2 fusion keeps);
* **class from a window** (any dataset): a linear probe (:func:`talbench.eval.probe.linear_probe`) of an
  instance's class from the mean feature of ``w`` cells around its centre, for growing ``w``, and from its
  whole ground-truth segment (a linear stand-in for classifying perfect proposals, RefactorNet table 3);
* **latents** (the synthetic benchmark's sidecar only): how reliable the context is as a class cue (the share
  of instances whose visible context is their own class's), how many classes each context co-occurs with,
  the phases' share of an instance, a probe of the class from the snippets of each phase (the key phase
  decides it), how well action snippets of each phase are told from background (localisation needs the
  whole body), and a probe of the context class from coupling snippets.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from talbench.data.synthetic import PHASES, read_latents
from talbench.eval.probe import linear_probe, ridge_classify

PYRAMID_RANGES = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, float("inf")))
"""Regression ranges (cells, on max(left, right) offset) of the six pyramid levels, strides 1, 2, ..., 32."""
DURATION_BINS_S = (0, 1, 2, 4, 8, 16, 32, 64, float("inf"))
WINDOWS = (1, 2, 4, 8, 16, 32)
PROBE_L2 = 1e-2  # ridge penalty on standardised features, fixed (not tuned)
MAX_PROBE_SNIPPETS = 20000  # snippets per probe set (seeded subsample beyond)


def _round(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}"


def annotation_statistics(videos: pd.DataFrame, instances: pd.DataFrame, classes: list[str],
                          cell_seconds: pd.Series) -> dict[str, Any]:
    """Statistics of one split's annotations. ``videos``: index video_id, column ``duration``; ``instances``:
    video_id, label_id, start, end; ``cell_seconds``: feature-grid step per video (stride / fps)."""
    inst = instances[instances["video_id"].isin(videos.index)]
    per_video = inst.groupby("video_id").size().reindex(videos.index, fill_value=0)
    classes_per_video = inst.groupby("video_id")["label_id"].nunique().reindex(videos.index, fill_value=0)
    duration = (inst["end"] - inst["start"]).to_numpy(dtype=np.float64)
    hist = np.histogram(duration, bins=np.array(DURATION_BINS_S))[0]
    half_cells = 0.5 * duration / inst["video_id"].map(cell_seconds).to_numpy(dtype=np.float64)
    levels = {
        f"level{k}_{_bin_label(lo, hi)}": int(((half_cells >= lo) & (half_cells < hi)).sum())
        for k, (lo, hi) in enumerate(PYRAMID_RANGES)
    }
    # boundary error allowed at tIoU 0.7 (a segment shifted by e: (d - e) / (d + e) >= 0.7 <=> e <= 3 d / 17), in
    # cells; the coarsest stride that places a boundary within it is the largest power of two not above it (1 when
    # below one cell): instances counted by that stride need a level at least that fine
    tolerance = 2 * half_cells * 3 / 17
    needed = np.clip(np.floor(np.log2(np.maximum(tolerance, 1e-9))), 0, len(PYRAMID_RANGES) - 1).astype(int)
    return {
        "videos": len(videos),
        "instances": len(inst),
        "instances_per_video": {"mean": _round(per_video.mean(), 3), "median": float(per_video.median()),
                                "max": int(per_video.max()) if len(per_video) else 0},
        "classes_per_video": {str(k): int(v) for k, v in classes_per_video.value_counts().sort_index().items()},
        "multi_class_video_fraction": _round((classes_per_video > 1).mean()),
        "instances_per_class": {classes[k]: int(n) for k, n in
                                inst["label_id"].value_counts().reindex(range(len(classes)), fill_value=0).items()},
        "background_fraction": _round(1 - _union_seconds(inst, videos).sum() / videos["duration"].sum()),
        "duration_s": {
            "min": _round(duration.min(), 2), "p5": _round(np.percentile(duration, 5), 2),
            "median": _round(np.median(duration), 2), "p95": _round(np.percentile(duration, 95), 2),
            "max": _round(duration.max(), 2),
            "histogram": {_bin_label(lo, hi): int(n) for lo, hi, n in
                          zip(DURATION_BINS_S[:-1], DURATION_BINS_S[1:], hist, strict=True)},
        },
        "video_duration_s": {"min": _round(videos["duration"].min(), 1),
                             "median": _round(videos["duration"].median(), 1),
                             "max": _round(videos["duration"].max(), 1)},
        "instances_per_pyramid_level": levels,
        "coarsest_stride_within_tiou_0.7": {f"stride{2**k}": int((needed == k).sum())
                                            for k in range(len(PYRAMID_RANGES))},
    }


def _union_seconds(inst: pd.DataFrame, videos: pd.DataFrame) -> pd.Series:
    """Annotated time per video (overlapping instances counted once, clipped to the video)."""
    covered = {}
    for video_id, group in inst.groupby("video_id"):
        limit = float(videos.loc[video_id, "duration"])
        total, lo, hi = 0.0, None, None
        for s, e in sorted(zip(group["start"].clip(lower=0), group["end"].clip(upper=limit), strict=True)):
            if e <= s:
                continue
            if hi is None or s > hi:
                total += 0.0 if hi is None else hi - lo
                lo, hi = s, e
            else:
                hi = max(hi, e)
        covered[video_id] = total + (0.0 if hi is None else hi - lo)
    return pd.Series(covered, dtype=np.float64).reindex(videos.index, fill_value=0.0)


def video_classifier_accuracy(cfg: dict[str, Any], dataset, seed: int = 0) -> dict[str, Any]:
    """The pipeline's video-level classifier trained on the training videos, scored on the test videos (its
    seed only sets a small initialisation of a full-batch, convex fit: other seeds gave the same top-1)."""
    from talbench.runners.common.video_classifier import video_scores

    cfg = copy.deepcopy(cfg)
    cfg["test_time"]["video_cls"] = "classifier"
    cfg["run"]["train_split"] = "train"
    cfg["run"]["device"] = "cpu"  # a premise of the data, not of a machine: the same number everywhere
    truth = dataset.instances("test").groupby("video_id")["label_id"].agg(set)
    scores = video_scores(cfg, dataset, dataset.video_ids("train"), dataset.video_ids("test"), seed)
    ranked = {v: np.argsort(-scores[v], kind="stable") for v in truth.index}
    return {
        "top1": _round(np.mean([ranked[v][0] in truth[v] for v in truth.index])),
        "top2_holds_every_class": _round(np.mean([truth[v] <= set(ranked[v][:2].tolist()) for v in truth.index])),
        "seed": seed,
        "test_videos": len(truth),
    }


def _cell_of(times: np.ndarray, dataset, video_id: str) -> np.ndarray:
    centers = dataset.snippet_centers(video_id)
    return np.clip(np.searchsorted(centers, times), 0, len(centers) - 1)


def window_probes(dataset, windows=WINDOWS) -> dict[str, Any]:
    """Class of an instance from the mean feature of ``w`` cells around its centre, and of its whole segment."""
    sets: dict[str, dict[str, list]] = {}
    for split in ("train", "test"):
        inst = dataset.instances(split)
        for video_id, group in inst.groupby("video_id"):
            x = np.asarray(dataset.features(video_id, "both"), dtype=np.float64)
            centers = dataset.snippet_centers(video_id)
            mid = _cell_of(0.5 * (group["start"] + group["end"]).to_numpy(), dataset, video_id)
            for w in windows:
                lo = np.clip(mid - w // 2, 0, max(len(x) - w, 0))
                rows = np.stack([x[a:a + w].mean(axis=0) for a in lo])
                sets.setdefault(f"{w}", {}).setdefault(split, []).append((rows, group["label_id"].to_numpy()))
            inside = [(centers >= s) & (centers < e) for s, e in zip(group["start"], group["end"], strict=True)]
            rows = np.stack([x[m].mean(axis=0) if m.any() else x[c] for m, c in zip(inside, mid, strict=True)])
            sets.setdefault("segment", {}).setdefault(split, []).append((rows, group["label_id"].to_numpy()))
    out = {}
    for name, parts in sets.items():
        (xtr, ytr), (xte, yte) = ([np.concatenate(z) for z in zip(*parts[s], strict=True)] for s in ("train", "test"))
        out[name] = linear_probe(xtr, ytr, xte, yte, l2=PROBE_L2)
    return {
        "class_top1_by_window_cells": {w: _round(r.accuracy) for w, r in out.items() if w != "segment"},
        "segment_classifier_top1": _round(out["segment"].accuracy),
        "chance": _round(out["segment"].chance),
        "test_instances": out["segment"].num_test,
    }


def latent_premises(dataset, seed: int = 0) -> dict[str, Any] | None:
    """Context reliability and co-occurrence, phase shares and per-phase probes (synthetic sidecar latents)."""
    rng = np.random.default_rng(seed)
    snippets: dict[str, dict[str, list]] = {"train": {}, "test": {}}
    context_of_instance, label_of_instance, phase_cells = [], [], np.zeros(len(PHASES))
    for split in ("train", "test"):
        for video_id in dataset.video_ids(split):
            lat = read_latents(dataset.layout.feature_dir, video_id)
            if lat is None:
                return None
            x = np.asarray(dataset.features(video_id, "both"), dtype=np.float32)
            phase, context, instance = lat["phase"], lat["context"], lat["instance"]
            labels = lat["instance_label"].astype(np.int64)
            action_class = np.where(instance >= 0, labels[np.maximum(instance, 0)], -1)
            for k in range(1, len(PHASES)):
                mask = phase == k
                snippets[split].setdefault(PHASES[k], []).append((x[mask], action_class[mask]))
            coupling = (phase == 0) & (context >= 0)
            snippets[split].setdefault("coupling", []).append((x[coupling], context[coupling].astype(np.int64)))
            snippets[split].setdefault("actionness", []).append((x, phase.astype(np.int64)))
            if split == "test":
                phase_cells += np.bincount(phase, minlength=len(PHASES))
                for j, label in enumerate(labels):
                    seen = context[instance == j]
                    seen = seen[seen >= 0]
                    context_of_instance.append(int(np.bincount(seen).argmax()) if seen.size else -1)
                    label_of_instance.append(int(label))

    def stacked(split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = (np.concatenate(z) for z in zip(*snippets[split][name], strict=True))
        if len(y) > MAX_PROBE_SNIPPETS:
            keep = np.sort(rng.choice(len(y), size=MAX_PROBE_SNIPPETS, replace=False))
            x, y = x[keep], y[keep]
        return x, y

    probes = {}
    for name in ("onset", "body", "key", "offset", "coupling"):
        probes[name] = linear_probe(*stacked("train", name), *stacked("test", name), l2=PROBE_L2).accuracy
    recall = _actionness_by_phase(*stacked("train", "actionness"), *stacked("test", "actionness"))

    ctx, lab = np.array(context_of_instance), np.array(label_of_instance)
    seen = ctx >= 0
    cooccurrence: dict[str, dict[str, int]] = {}
    for c, y in zip(ctx[seen], lab[seen], strict=True):
        row = cooccurrence.setdefault(dataset.classes[c], {})
        row[dataset.classes[y]] = row.get(dataset.classes[y], 0) + 1
    action_cells = phase_cells[1:].sum()
    return {
        "context": {
            "reliability": _round((ctx[seen] == lab[seen]).mean()),
            "instances_with_context": int(seen.sum()),
            "classes_per_context": _round(np.mean([len(r) for r in cooccurrence.values()]), 3),
            "contexts_shared_by_several_classes": int(sum(len(r) > 1 for r in cooccurrence.values())),
            "cooccurrence": {c: dict(sorted(r.items())) for c, r in sorted(cooccurrence.items())},
        },
        "phase_share_of_action_time": {PHASES[k]: _round(phase_cells[k] / action_cells)
                                       for k in range(1, len(PHASES))},
        "class_top1_by_phase": {k: _round(v) for k, v in probes.items() if k != "coupling"},
        "context_top1_from_coupling": _round(probes["coupling"]),
        "actionness_recall_by_phase": recall,
    }


def _actionness_by_phase(xtr, ptr, xte, pte) -> dict[str, float]:
    """A class-agnostic ridge probe (action vs background) fitted on training snippets: the share of test
    snippets of each phase it calls action (background: its false-alarm rate)."""
    called = ridge_classify(xtr, (ptr > 0).astype(np.int64), xte, l2=PROBE_L2) == 1
    return {PHASES[k]: _round(called[pte == k].mean()) for k in range(len(PHASES)) if (pte == k).any()}


def measure_premises(cfg: dict[str, Any], dataset) -> dict[str, Any]:
    """Every premise measurement of ``dataset`` (see the module docstring)."""
    cell = pd.Series({v: dataset.layout.stride / dataset.fps(v) for v in dataset.videos.index})
    videos = dataset.videos
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "annotations": {
            split: annotation_statistics(videos.loc[dataset.video_ids(split)], dataset.instances(split),
                                         dataset.classes, cell)
            for split in ("train", "test")
        },
        "video_classifier": video_classifier_accuracy(cfg, dataset),
        "window_probes": window_probes(dataset),
    }
    latents = latent_premises(dataset)
    if latents is not None:
        result["latents"] = latents
    return result


def reference_statistics(path: str | Path) -> dict[str, Any]:
    """Annotation statistics of real annotations without features: an ActionFormer THUMOS14 JSON (grid: 4
    frames at the video's fps) or a folder of BMN's ActivityNet files (grid: 16 frames at 15 fps)."""
    from talbench.data.activitynet import load_activitynet_annotations
    from talbench.data.annotations import THUMOS14_CLASSES, load_thumos14_annotations

    path = Path(path)
    if path.is_dir():
        parsed = load_activitynet_annotations(path)
        cell = pd.Series(16 / 15, index=parsed.videos.index)
    else:
        parsed = load_thumos14_annotations(path, THUMOS14_CLASSES)
        cell = 4 / parsed.videos["fps"]
    return {"file": str(path), **{
        split: annotation_statistics(parsed.videos[parsed.videos["split"] == split], parsed.instances,
                                     parsed.classes, cell)
        for split in ("train", "test")
    }}


def run_premises_stage(profile: str | None = None, data_source: str | None = None,
                       out: str | Path = "results/premises.json", reference: str | Path | None = None,
                       console=None) -> dict[str, Any]:
    """``talbench premises``: measure the configured dataset's premises into ``out`` (written atomically)."""
    import torch

    from talbench.config import load_params, resolve
    from talbench.data import open_dataset
    from talbench.io import atomic_write_json

    cfg = resolve(load_params("params.yaml"), profile, {"data": {"source": data_source}} if data_source else None)
    torch.set_num_threads(int(cfg["run"]["torch_threads"]))
    result = {"profile": cfg["data"]["profile"], **measure_premises(cfg, open_dataset(cfg))}
    if reference is not None:
        result["reference"] = reference_statistics(reference)
    atomic_write_json(out, result)
    if console is not None:
        console.print(summary_table(result, out))
    return result


def summary_table(result: dict[str, Any], out: str | Path):
    """The headline numbers of a premises result as a rich table."""
    from rich.table import Table

    table = Table(title=f"premises of {result['dataset']} -> {out}", min_width=90)
    table.add_column("premise")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    ann = result["annotations"]
    for label, get in (
        ("videos", lambda a: a["videos"]),
        ("instances per video (mean)", lambda a: a["instances_per_video"]["mean"]),
        ("videos with more than one class", lambda a: f"{100 * a['multi_class_video_fraction']:.1f}%"),
        ("background share of the time", lambda a: f"{100 * a['background_fraction']:.1f}%"),
        ("instance duration min / median / max (s)",
         lambda a: f"{a['duration_s']['min']} / {a['duration_s']['median']} / {a['duration_s']['max']}"),
    ):
        table.add_row(label, str(get(ann["train"])), str(get(ann["test"])))
    video, window = result["video_classifier"], result["window_probes"]
    table.add_row("video-level classifier top-1", "", f"{100 * video['top1']:.1f}%")
    table.add_row("class from the whole segment (linear)", "", f"{100 * window['segment_classifier_top1']:.1f}%")
    if "latents" in result:
        lat = result["latents"]
        table.add_row("context is the instance's own class", "", f"{100 * lat['context']['reliability']:.1f}%")
        table.add_row("classes per context", "", str(lat["context"]["classes_per_context"]))
        phases = lat["class_top1_by_phase"]
        table.add_row("class from key / body snippets (linear)", "",
                      f"{100 * phases['key']:.1f}% / {100 * phases['body']:.1f}%")
    return table
