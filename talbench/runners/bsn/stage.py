"""The proposals stage (``talbench proposals``): train BSN, write its proposals for every video, AR@AN.

Pipeline (BSN, Lin et al. ECCV 2018, Fig. 2):

1. TEM trained on sliding observation windows of the training videos (BSN's THUMOS14 setting,
   ``bsn.window`` cells with ``bsn.window_overlap``), weighted binary logistic loss (eq. 1-2).
2. TEM applied to every video in the same windows; overlapping window outputs are averaged into one
   actionness / start / end curve per video.
3. PGM: boundary candidates per window, start/end pairs inside a window (``<= bsn.max_duration`` cells),
   ranked by ``p_start x p_end``; the top ``pem_top_k_*`` get a BSP feature (section 3.4).
4. PEM trained on the training videos' candidates (tIoU-balanced L2, eq. 8).
5. Every video: score ``p_start x p_end x p_conf`` (eq. 9), Soft-NMS, the top ``bsn.max_proposals`` written
   as ``proposals/<source>-<profile>/<video>.csv`` (seconds); AR@AN on the test split in
   ``results/proposals.json``.

``--train-split train_fit`` (``bsn.train_split``) trains BSN on the tuning's training videos only and writes the
proposals of the training videos (train_fit and holdout) to ``proposals/<source>-<profile>-train_fit/``, with
AR@AN on the holdout in ``results/proposals-train_fit.json``: the proposals of the Optuna studies and of every
choice made on the holdout, from a BSN that never saw the holdout's annotations (the test videos are not read).

BSN trains and proposes on ``run.device`` (deterministic on CUDA as :mod:`talbench.runners.common.device`
describes), with ``run.mixed_precision``; the results file records the device.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rich.console import Console
from rich.text import Text

from talbench.config import load_params, resolve
from talbench.data.proposals import proposals_dir, write_proposals
from talbench.io import atomic_write_json
from talbench.runners.bsn.generate import generate_proposals
from talbench.runners.bsn.train import fit_bsn
from talbench.runners.common.device import (
    configure_determinism,
    device_tags,
    nondeterminism_recorder,
    precision,
    row_device,
)


def _evaluate(cfg: dict[str, Any], dataset, proposals: pd.DataFrame, split: str) -> dict[str, Any]:
    from talbench.eval.proposals import average_recall

    gt = dataset.instances(split)
    return average_recall(gt, proposals, cfg["eval"]["ar_an"], cfg["eval"]["ar_tiou_thresholds"])


def run_proposal_stage(
    profile: str | None = None,
    data_source: str | None = None,
    console: Console | None = None,
    *,
    params: dict[str, Any] | None = None,
    root: str | Path = ".",  # the working directory: DVC runs stages (and queued experiments) there
    train_split: str | None = None,
) -> dict[str, Any]:
    """``talbench proposals``: train BSN on the training videos, write proposals for every video
    (train and test) to ``proposals/<source>-<profile>/``, AR@AN on the test split to
    ``results/proposals.json``; with ``train_split="train_fit"`` see the module docstring. Returns the results
    dictionary."""
    from talbench.data import open_dataset

    params = params if params is not None else load_params("params.yaml")
    overrides: dict[str, Any] = {"data": {"source": data_source}} if data_source else {}
    if train_split:
        overrides["bsn"] = {"train_split": train_split}
    cfg = resolve(params, profile, overrides or None)
    device = row_device(cfg)
    precision(cfg)
    torch.set_num_threads(int(cfg.get("run", {}).get("torch_threads", 1)))
    configure_determinism(device)
    dataset = open_dataset(cfg)
    with nondeterminism_recorder(device) as nondeterministic:
        model = fit_bsn(cfg, dataset, console)
        tuning = model.settings["train_split"] != "train"
        splits, eval_split = (("train",), "holdout") if tuning else (("train", "test"), "test")
        video_ids = [v for split in splits for v in dataset.video_ids(split)]
        t0 = time.perf_counter()
        proposals = generate_proposals(model, dataset, video_ids, console)
        inference_s = time.perf_counter() - t0
    out_dir = proposals_dir(cfg, root)
    write_proposals(out_dir, proposals, video_ids)

    eval_ids = set(dataset.video_ids(eval_split))
    recall = _evaluate(cfg, dataset, proposals[proposals["video_id"].isin(eval_ids)], eval_split)
    results = {
        "profile": cfg["data"]["profile"],
        "data_source": cfg["data"]["source"],
        "stream": model.settings["stream"],
        "train_split": model.settings["train_split"],
        "split": eval_split,
        "proposals_dir": str(out_dir),
        "videos": len(video_ids),
        "proposals_per_video": float(len(proposals) / max(len(video_ids), 1)),
        "average_recall": recall,
        "param_counts": model.param_counts,
        **device_tags(cfg, device, nondeterministic),
        "timings": {**model.timings, "inference_s": inference_s,
                    "videos_per_s": len(video_ids) / max(inference_s, 1e-9)},
    }
    name = "proposals.json" if not tuning else f"proposals-{model.settings['train_split']}.json"
    results_path = Path(root) / "results" / name
    atomic_write_json(results_path, results)
    if console is not None:
        console.print(Text(f"BSN proposals: {len(proposals)} for {len(video_ids)} videos -> {out_dir}"),
                      soft_wrap=True)
        ar = ", ".join(f"AR@{an} {value:.2f}" for an, value in recall["ar"].items())
        console.print(Text(f"{eval_split} split ({recall['n_gt']} instances in {recall['n_videos']} videos): {ar}; "
                           f"all numbers in {results_path}"), soft_wrap=True)
    return results
