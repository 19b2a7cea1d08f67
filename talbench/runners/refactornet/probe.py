"""RefactorNet's figure 4 as a number: how much scene context each component carries (synthetic data only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from talbench.eval.probe import linear_probe
from talbench.models.refactornet import RefactorNet
from talbench.runners.common.device import autocast, module_device
from talbench.runners.common.snippets import VideoSnippets


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
            feats.append(snippets.features[torch.from_numpy(keep).to(snippets.features.device)])
            labels.append(context[cells][keep].astype(np.int64))
        x, y = torch.cat(feats), np.concatenate(labels)
        limit = rc["probe"]["max_snippets"]
        if len(y) > limit:
            pick = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
            x, y = x[torch.from_numpy(pick).to(x.device)], y[pick]
        sets[part] = (x, y)
    module.eval()
    with torch.no_grad(), autocast(cfg, module_device(module)):
        views = {name: {part: fn(x) for part, (x, _) in sets.items()} for name, fn in (
            ("action", module.phi_a), ("cooccurrence", module.phi_c), ("original", lambda t: t))}
    metrics = {}
    for name, view in views.items():
        result = linear_probe(view["train"].float().cpu().numpy(), sets["train"][1],
                              view["eval"].float().cpu().numpy(), sets["eval"][1], l2=rc["probe"]["l2"])
        metrics[f"probe/context_acc_{name}"] = 100 * result.accuracy
    metrics["probe/context_chance"] = 100 * result.chance
    return metrics
