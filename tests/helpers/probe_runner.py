"""An analytic stand-in for a model in the tuning tests: validation mAP peaks at lambda1 = 1 and rises over the
epochs; every call is recorded in :data:`CALLS` (which splits it trained and evaluated on)."""

from __future__ import annotations

import math

from talbench.runners.common.outcome import RowOutcome

SECTIONS = ("bsn", "detector", "anet", "dnet")
RUNNER = "helpers.probe_runner:run_row"
CALLS: list[dict] = []


def run_row(cfg, seed, dataset, console=None, report=None) -> RowOutcome:
    CALLS.append({"train": cfg["run"]["train_split"], "eval": cfg["run"]["eval_split"], "report": report is not None,
                  "seed": seed, "videos": tuple(dataset.video_ids(cfg["run"]["eval_split"]))})
    quality = 60.0 - 20.0 * math.log(cfg["dnet"]["lambda1"]) ** 2 - 5.0 * math.log(cfg["dnet"]["lambda2"]) ** 2
    for epoch in range(cfg["detector"]["epochs"]):
        if report is not None:
            report(epoch, quality * (epoch + 1) / cfg["detector"]["epochs"])
    return RowOutcome(metrics={"fusion/mAP_0.5": quality + seed})
