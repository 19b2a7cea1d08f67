"""Calibration of the synthetic benchmark (issue 3): numbers for docs/synthetic.md.

For a profile (generated on the fly unless it exists under ``--root``), measures

* generation time and size on disk (when it generates);
* a simple baseline: a per-snippet ridge least-squares classifier (background + C classes, fitted on the
  training videos only) whose per-snippet argmax is grouped into runs of one class; a run is a segment
  scored by its mean class output; mAP at tIoU 0.3:0.1:0.7 on the test videos for RGB, Flow and both;
* a linear probe (talbench.eval.probe) of the context class from coupling snippets (no action, context on),
  and from pure action snippets, per stream;
* context dominance: mean squared distance of coupling vs plain background snippets (the context signal)
  against action vs coupling snippets of the same class (the action signal), per stream;
* the histogram of instance durations.

Usage::

    python benchmarks/calibration/synthetic_baseline.py --profile smoke [--root DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from talbench.config import load_params, resolve
from talbench.data import open_dataset
from talbench.data.synthetic import generate
from talbench.eval.detection import evaluate_detection
from talbench.eval.probe import linear_probe
from talbench.io import atomic_write_json

STREAMS = ("rgb", "flow", "both")
RIDGE_L2 = 1e-2  # fixed ridge penalty on standardised features (not tuned)
DURATION_BINS_S = [1, 2, 4, 8, 16, 32, 64]


def load_latents(root: Path, video_id: str) -> dict[str, np.ndarray]:
    with np.load(root / "latents" / f"{video_id}.npz") as npz:
        return {key: npz[key] for key in npz.files}


def normal_equations(dataset, videos, root: Path) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One pass over the training videos: ``[x, 1]^T [x, 1]`` of the two-stream features (each stream's
    system is a sub-block) and the cross products with one-hot targets, per class (0 = background, 1 + class)
    and class-agnostic (0 = background, 1 = action)."""
    num_classes = len(dataset.classes) + 1
    dim = dataset.stream_dim("both")
    gram = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
    cross = {"class": torch.zeros(dim + 1, num_classes, dtype=torch.float64),
             "agnostic": torch.zeros(dim + 1, 2, dtype=torch.float64)}  # fmt: skip
    for video_id in videos:
        x = torch.from_numpy(np.asarray(dataset.features(video_id, "both"), dtype=np.float32))
        x = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
        latents = load_latents(root, video_id)
        target = np.where(latents["instance"] >= 0, latents["instance_label"][latents["instance"]] + 1, 0)
        target = torch.from_numpy(target.astype(np.int64))
        gram += (x.T @ x).double()
        cross["class"] += (x.T @ torch.nn.functional.one_hot(target, num_classes).float()).double()
        cross["agnostic"] += (x.T @ torch.nn.functional.one_hot(target.clamp(max=1), 2).float()).double()
    return gram, cross


def solve_ridge(gram: torch.Tensor, cross: torch.Tensor, columns: np.ndarray) -> np.ndarray:
    """Ridge solution on standardised features for the feature ``columns`` (bias appended); the returned
    weights act on the raw ``[x, 1]``."""
    index = torch.from_numpy(np.append(columns, gram.shape[0] - 1))
    gram, cross = gram[index][:, index], cross[index]
    dim = index.numel() - 1
    count = gram[-1, -1]
    mean = gram[-1, :-1] / count
    var = torch.diagonal(gram)[:-1] / count - mean**2
    std = torch.sqrt(var.clamp_min(0)) + 1e-8
    # Standardise inside the normal equations: z = (x - mean) / std  =>  [z, 1] = [x, 1] A.
    transform = torch.eye(dim + 1, dtype=torch.float64)
    transform[:-1, :-1] = torch.diag(1 / std)
    transform[-1, :-1] = -mean / std
    penalty = torch.eye(dim + 1, dtype=torch.float64) * RIDGE_L2 * count
    penalty[-1, -1] = 0
    weights_z = torch.linalg.solve(transform.T @ gram @ transform + penalty, transform.T @ cross)
    return (transform @ weights_z).numpy()


def detect(dataset, videos: list[str], stream: str, weights: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Argmax per snippet, runs of one class -> segments [first centre - half stride, last centre + half stride]."""
    rows = []
    for video_id in videos:
        x = np.asarray(dataset.features(video_id, stream), dtype=np.float64)
        out = np.hstack([x, np.ones((x.shape[0], 1))]) @ weights
        label = out.argmax(axis=1)
        change = np.flatnonzero(np.diff(label)) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [label.size]])
        run_label = label[starts]
        keep = run_label > 0
        starts, ends, run_label = starts[keep], ends[keep], run_label[keep]
        cumulative = np.vstack([np.zeros((1, out.shape[1])), np.cumsum(out, axis=0)])
        scores = (cumulative[ends, run_label] - cumulative[starts, run_label]) / (ends - starts)
        centers = dataset.snippet_centers(video_id)
        half = dataset.layout.stride / 2 / dataset.fps(video_id)
        rows.append(pd.DataFrame({
            "video_id": video_id,
            "label": [labels[c - 1] for c in run_label],
            "start": centers[starts] - half,
            "end": centers[ends - 1] + half,
            "score": scores,
        }))
    return pd.concat(rows, ignore_index=True)


def snippet_sets(dataset, videos: list[str], stream: str, root: Path, per_video: int, seed: int):
    """Sampled snippets of each kind: coupling (no action, context on), action, plain background."""
    rng = np.random.default_rng(seed)
    out = {"coupling": ([], []), "action": ([], []), "background": ([], [])}
    for video_id in videos:
        x = dataset.features(video_id, stream)
        lat = load_latents(root, video_id)
        kinds = {
            "coupling": (lat["phase"] == 0) & (lat["context"] >= 0),
            "action": lat["phase"] > 0,
            "background": (lat["phase"] == 0) & (lat["context"] < 0),
        }
        for kind, mask in kinds.items():
            idx = np.flatnonzero(mask)
            idx = rng.choice(idx, size=min(per_video, idx.size), replace=False) if idx.size else idx
            out[kind][0].append(np.asarray(x[idx], dtype=np.float64))
            out[kind][1].append(lat["context"][idx].astype(np.int64))
    return {kind: (np.concatenate(xs), np.concatenate(ys)) for kind, (xs, ys) in out.items()}


def context_dominance(sets) -> dict[str, float]:
    """Squared distance of class means: context effect (coupling vs background) vs action effect
    (action vs coupling of the same class), averaged over classes."""
    bg = sets["background"][0].mean(axis=0)
    ctx, act = [], []
    for c in np.unique(sets["action"][1]):
        coupling = sets["coupling"][0][sets["coupling"][1] == c]
        action = sets["action"][0][sets["action"][1] == c]
        if len(coupling) and len(action):
            ctx.append(float(((coupling.mean(0) - bg) ** 2).sum()))
            act.append(float(((action.mean(0) - coupling.mean(0)) ** 2).sum()))
    return {"context_effect": float(np.mean(ctx)), "action_effect": float(np.mean(act))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--root", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--probe-per-video", type=int, default=200)
    args = parser.parse_args()
    console = Console()
    torch.set_num_threads(1)

    cfg = resolve(load_params(), args.profile)
    cfg["data"].update(source="synthetic", synthetic_root=str(args.root), profile=args.profile)
    root = args.root / args.profile
    result: dict = {"profile": args.profile}
    if not (root / "annotations" / "thumos14.json").is_file():
        report = generate(cfg["synth"], root, progress=True)
        result["generation"] = report.as_dict()
        console.print(report.summary())
    dataset = open_dataset(cfg)
    train, test = dataset.video_ids("train"), dataset.video_ids("test")
    gt = dataset.instances("test")
    thresholds = cfg["eval"]["tiou_thresholds"]

    table = Table(title=f"per-snippet ridge baseline + grouping, {args.profile} (mAP %, test)")
    for col in ["stream", *[f"{t:.1f}" for t in thresholds], "avg", "solve+infer s"]:
        table.add_column(col, justify="right")
    result["baseline"], result["localization"] = {}, {}
    began = time.perf_counter()
    gram, cross = normal_equations(dataset, track(train, description="normal equations", transient=True), root)
    result["normal_equations_seconds"] = round(time.perf_counter() - began, 1)
    dim = dataset.stream_dim("rgb")
    columns = {"rgb": np.arange(dim), "flow": np.arange(dim, 2 * dim), "both": np.arange(2 * dim)}
    gt_agnostic = gt.assign(label="action")
    for task, kind, truth, labels in (
        ("baseline", "class", gt, dataset.classes), ("localization", "agnostic", gt_agnostic, ["action"])
    ):
        for stream in STREAMS:
            began = time.perf_counter()
            weights = solve_ridge(gram, cross[kind], columns[stream])
            pred = detect(dataset, test, stream, weights, labels)
            res = evaluate_detection(truth, pred, thresholds)
            seconds = time.perf_counter() - began
            result[task][stream] = {
                "map": [round(float(m), 2) for m in res.map], "average_map": round(res.average_map, 2),
                "predictions": len(pred), "seconds": round(seconds, 1),
            }
            name = stream if task == "baseline" else f"{stream}, class-agnostic"
            table.add_row(name, *[f"{m:.1f}" for m in res.map], f"{res.average_map:.1f}", f"{seconds:.1f}")
    console.print(table)

    probe_table = Table(title="linear probe of the context class (test accuracy %)")
    for col in ["stream", "from coupling snippets", "chance", "from action snippets", "context eff.", "action eff."]:
        probe_table.add_column(col, justify="right")
    result["probe"] = {}
    for stream in STREAMS:
        tr = snippet_sets(dataset, train, stream, root, args.probe_per_video, seed=1)
        te = snippet_sets(dataset, test, stream, root, args.probe_per_video, seed=2)
        coupling = linear_probe(*tr["coupling"], *te["coupling"])
        action = linear_probe(*tr["action"], *te["action"])
        dominance = context_dominance(tr)
        result["probe"][stream] = {
            "coupling_accuracy": round(100 * coupling.accuracy, 2), "coupling_chance": round(100 * coupling.chance, 2),
            "action_accuracy": round(100 * action.accuracy, 2), "num_coupling_train": coupling.num_train,
            **{k: round(v, 2) for k, v in dominance.items()},
        }
        probe_table.add_row(
            stream, f"{100 * coupling.accuracy:.1f}", f"{100 * coupling.chance:.1f}", f"{100 * action.accuracy:.1f}",
            f"{dominance['context_effect']:.1f}", f"{dominance['action_effect']:.1f}",
        )
    console.print(probe_table)

    instances = pd.concat([dataset.instances("train"), gt], ignore_index=True)
    durations = (instances["end"] - instances["start"]).to_numpy()
    counts, _ = np.histogram(durations, bins=DURATION_BINS_S)
    result["durations"] = {
        "bins_s": DURATION_BINS_S, "counts": counts.tolist(), "min": round(float(durations.min()), 2),
        "median": round(float(np.median(durations)), 2), "max": round(float(durations.max()), 2),
        "instances_per_video": round(len(instances) / (len(train) + len(test)), 2),
    }
    console.print("durations (s):", result["durations"])
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
