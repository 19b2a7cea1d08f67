"""Measure a design choice on the holdout: variants of one benchmark row trained on train_fit and evaluated on the
holdout (never the test split), several seeds, written to results/choices/<name>.json.

    python scripts/holdout_choice.py refactornet-bsn-encoders --table refactornet.table2 \
        --row "Baseline + RefactorNet" --set final refactornet.proposals.encoders=final \
        --set stage1 refactornet.proposals.encoders=stage1 --seeds 0 1 2

Each ``--set NAME KEY=VALUE[,KEY=VALUE...]`` is one variant (dotted params.yaml keys, YAML values). The rows read
the proposals of BSN trained on train_fit (`talbench proposals --train-split train_fit`). Metrics: the runner's
mAP, AR@AN of the evaluation proposals and, where the runner reports them, class_acc and mean_tiou.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import torch
import yaml

from talbench.benchmark.rows import row_config
from talbench.benchmark.schema import load_benchmark
from talbench.config import REPO_ROOT, deep_merge, load_params, nest
from talbench.data import DatasetCache
from talbench.io import atomic_write_json
from talbench.runners.families import run_row
from talbench.stats import mean_std
from talbench.tracking.provenance import git_commit, git_dirty

KEPT = ("average_mAP", "mAP_0.5", "proposals/AR_50", "proposals/AR_100", "proposals/AR_1000", "class_acc",
        "mean_tiou")
SPLITS = {"train_split": "train_fit", "eval_split": "holdout"}


def parse_set(text: str) -> dict:
    pairs = dict(item.split("=", 1) for item in text.split(","))
    return nest({key: yaml.safe_load(value) for key, value in pairs.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name")
    parser.add_argument("--table", required=True)
    parser.add_argument("--row", required=True)
    parser.add_argument("--set", nargs=2, action="append", metavar=("VARIANT", "KEY=VALUE"), required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()

    torch.set_num_threads(1)
    bench = load_benchmark(args.table)
    row = bench.row(args.row)
    datasets = DatasetCache()
    variants = {}
    for name, assignment in args.set:
        overrides = {**parse_set(assignment), "run": SPLITS}
        cfg = row_config(load_params(), args.profile, bench, row, f"{args.table}.yaml")
        cfg = deep_merge(cfg, overrides, where=f"--set {name}")
        runs = []
        for seed in args.seeds:
            start = time.perf_counter()
            metrics = run_row(cfg, seed, datasets(cfg)).metrics
            kept = {k: float(v) for k, v in metrics.items() if k.endswith(KEPT)}
            runs.append({"seed": seed, "seconds": time.perf_counter() - start, "metrics": kept})
            print(name, seed, {k: round(v, 2) for k, v in kept.items()}, flush=True)
        names = sorted(runs[0]["metrics"])
        variants[name] = {"set": assignment, "runs": runs,
                          "mean": {k: mean_std([r["metrics"][k] for r in runs])[0] for k in names},
                          "std": {k: mean_std([r["metrics"][k] for r in runs])[1] for k in names}}
    atomic_write_json(REPO_ROOT / "results" / "choices" / f"{args.name}.json", {
        "name": args.name, "table": args.table, "row": args.row, "profile": cfg["data"]["profile"],
        "splits": SPLITS, "seeds": args.seeds, "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": git_commit(REPO_ROOT), "git_dirty": git_dirty(REPO_ROOT),
        "data_checksum": datasets(cfg).checksum(), "variants": variants})


if __name__ == "__main__":
    main()
