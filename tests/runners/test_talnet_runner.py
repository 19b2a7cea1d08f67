"""TAL-Net's runner end to end on the tiny synthetic benchmark: the metrics of every output and their per-video
parts, checkpoint reuse, determinism for a seed, the per-epoch report, early fusion, both grids and the errors
of bad settings."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from talbench.errors import ConfigError
from talbench.runners.families import run_row

pytestmark = pytest.mark.filterwarnings("ignore:.*absent from the ground truth")
TIMES = ("seconds", "ms_per", "time/")  # metrics that measure the machine, not the model


@pytest.fixture()
def talnet_cfg(tiny_synthetic):
    _, cfg, dataset, _ = tiny_synthetic
    cfg = copy.deepcopy(cfg)
    cfg["model"]["runner"] = "talnet"
    cfg["eval"]["tiou_thresholds"] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]  # as the TAL-Net tables set it
    return cfg, dataset


def checkpoints(root) -> list:
    return sorted(root.glob("talnet/*/seed0/checkpoint.json"))


def test_metrics_cache_determinism_and_report(talnet_cfg, tmp_path, monkeypatch):
    cfg, dataset = talnet_cfg
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / "a"))
    reports = []
    first = run_row(cfg, 0, dataset, report=lambda epoch, value: reports.append((epoch, value)))
    m = first.metrics
    names = [f"mAP_{t}" for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)] + ["average_mAP"]
    names += [f"AR_{an}" for an in cfg["eval"]["ar_an"]] + ["ms_per_3000_frames", "proposals_per_video"]
    for out in ("rgb", "flow", "fusion", "output"):
        for name in names:
            assert np.isfinite(m[f"{out}/{name}"]), f"{out}/{name}"
        assert 0 <= m[f"{out}/average_mAP"] <= 100 and 0 < m[f"{out}/AR_100"] <= 100
        assert 0 < m[f"{out}/proposals_per_video"] <= 300
        assert set(first.predictions[out].columns) == {"video_id", "label", "start", "end", "score"}
    assert m["fusion/AR_100"] > 10  # proposals of two briefly trained networks already find instances
    for name in names:  # the row's output (late fusion) is the fusion output
        assert m[f"output/{name}"] == m[f"fusion/{name}"]
    assert m["time/ms_per_3000_frames"] == m["output/ms_per_3000_frames"] > 0
    assert m["loaded_from_cache"] == 0.0 and m["train_seconds"] > 0 and m["seconds_per_epoch"] > 0
    assert m["infer_seconds_per_video"] > 0 and first.timings["infer_per_video"] == m["infer_seconds_per_video"]
    assert first.param_counts["paper_late"] == 2 * first.param_counts["paper_rgb"]
    assert m["params_m"] == first.param_counts["paper_late"] / 1e6
    assert set(first.predictions["fusion"]["label"]) <= set(dataset.classes)
    # AR@AN is the ratio of its per-video parts (what the verdicts' bootstrap over test videos resamples)
    stats = first.video_stats
    for metric, part in stats.groupby("metric"):
        assert 100 * part["numerator"].sum() / part["denominator"].sum() == pytest.approx(m[metric], abs=1e-9)
    assert set(stats["video_id"]) == set(dataset.instances("test")["video_id"])
    epochs = cfg["talnet"]["train"]["epochs"]
    assert [e for e, _ in reports] == list(range(epochs)) and all(0 <= v <= 100 for _, v in reports)
    assert reports[-1][1] == pytest.approx(m["output/mAP_0.5"])  # after the last epoch of the flow network
    assert len(checkpoints(tmp_path / "a")) == 2  # the RGB and Flow networks

    again = run_row(cfg, 0, dataset)
    assert again.metrics["loaded_from_cache"] == 1.0
    for out in ("rgb", "flow", "fusion"):
        pd.testing.assert_frame_equal(first.predictions[out], again.predictions[out])

    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / "b"))
    fresh = run_row(cfg, 0, dataset)  # retrained from scratch: the same numbers
    assert fresh.metrics["loaded_from_cache"] == 0.0
    for out in ("rgb", "flow", "fusion"):
        pd.testing.assert_frame_equal(first.predictions[out], fresh.predictions[out])
    for name, value in m.items():
        if not any(t in name for t in TIMES):
            assert fresh.metrics[name] == value, name
    other = run_row(cfg, 1, dataset)
    assert not other.predictions["rgb"].equals(first.predictions["rgb"])


def test_fusions_reuse_the_stream_networks_on_either_grid(talnet_cfg, tmp_path, monkeypatch):
    cfg, dataset = talnet_cfg
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    cfg["talnet"]["grid"]["mode"] = "native"
    cfg["talnet"]["test"]["max_per_video"] = 50  # test settings do not retrain
    late = run_row(cfg, 0, dataset)
    assert len(checkpoints(tmp_path)) == 2
    assert late.predictions["fusion"].groupby("video_id").size().max() <= 50
    cfg["talnet"]["fusion"] = "early"
    early = run_row(cfg, 0, dataset)
    assert len(checkpoints(tmp_path)) == 3  # only the early-fusion network was trained
    assert early.metrics["loaded_from_cache"] == 0.0
    pd.testing.assert_frame_equal(late.predictions["rgb"], early.predictions["rgb"])
    assert early.metrics["params_m"] == early.param_counts["paper_early"] / 1e6
    assert early.param_counts["actual_early"] < early.param_counts["actual_late"]
    assert early.metrics["output/mAP_0.3"] == early.metrics["fusion/mAP_0.3"] != late.metrics["fusion/mAP_0.3"]
    cfg["talnet"]["fusion"] = "flow"
    flow = run_row(cfg, 0, dataset)
    assert flow.metrics["loaded_from_cache"] == 1.0 and "fusion/mAP_0.5" not in flow.metrics
    assert flow.metrics["output/AR_100"] == flow.metrics["flow/AR_100"] == early.metrics["flow/AR_100"]
    pd.testing.assert_frame_equal(flow.predictions["output"], flow.predictions["flow"])
    # the pooled grid (params.yaml's) is another network: trained anew
    cfg["talnet"]["grid"]["mode"] = "pooled"
    pooled = run_row(cfg, 0, dataset)
    assert pooled.metrics["loaded_from_cache"] == 0.0 and len(checkpoints(tmp_path)) == 5
    assert pooled.metrics["flow/proposals_per_video"] < flow.metrics["flow/proposals_per_video"]


def test_jointly_trained_late_fusion(talnet_cfg, tmp_path, monkeypatch):
    """talnet.late_fusion: joint trains one more model, both networks on the averaged logits; the single-stream
    outputs stay those of the separately trained networks."""
    cfg, dataset = talnet_cfg
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    separate = run_row(cfg, 0, dataset)
    cfg["talnet"]["late_fusion"] = "joint"
    reports = []
    joint = run_row(cfg, 0, dataset, report=lambda epoch, value: reports.append(value))
    assert len(checkpoints(tmp_path)) == 3 and joint.metrics["loaded_from_cache"] == 0.0
    assert reports[-1] == pytest.approx(joint.metrics["output/mAP_0.5"])  # the joint model reports
    assert joint.metrics["rgb/AR_100"] == separate.metrics["rgb/AR_100"]
    assert not joint.predictions["fusion"].equals(separate.predictions["fusion"])
    assert joint.metrics["params_m"] == separate.metrics["params_m"]  # the same two networks
    again = run_row(cfg, 0, dataset)
    assert again.metrics["loaded_from_cache"] == 1.0
    pd.testing.assert_frame_equal(again.predictions["fusion"], joint.predictions["fusion"])


def test_the_spn_trains_alike_with_and_without_classifier_context(talnet_cfg, tmp_path, monkeypatch):
    """Table 3 changes only the classifier: the SPN (its own reduction, its own gradient) and therefore the
    proposals, AR@AN and the sampled mini-batches are the same (tables 1-2 need no classifier setting)."""
    cfg, dataset = talnet_cfg
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    cfg["talnet"]["fusion"] = "rgb"
    with_context = run_row(cfg, 0, dataset)
    cfg["talnet"]["model"]["classifier_context"] = False
    without = run_row(cfg, 0, dataset)
    assert without.metrics["loaded_from_cache"] == 0.0
    for an in cfg["eval"]["ar_an"]:
        assert without.metrics[f"rgb/AR_{an}"] == with_context.metrics[f"rgb/AR_{an}"]
    assert without.metrics["train_rgb/spn_cls"] == with_context.metrics["train_rgb/spn_cls"]
    assert without.metrics["train_rgb/cls"] != with_context.metrics["train_rgb/cls"]


@pytest.mark.parametrize("override, message", [
    ({"model": {"architecture": "single"}}, "spn_context"),
    ({"fusion": "mid"}, "talnet.fusion"),
    ({"late_fusion": "both"}, "talnet.late_fusion"),
    ({"grid": {"mode": "dense"}}, "talnet.grid.mode"),
    ({"model": {"architecture": "dilated", "spn_context": False}}, "talnet.model.architecture"),
    ({"train": {"anchor_positive_fraction": 0.0}}, "anchor_positive_fraction"),
    ({"train": {"epochs": 1.5}}, "talnet.train.epochs"),
])
def test_bad_settings_name_their_key(talnet_cfg, override, message):
    cfg, dataset = talnet_cfg
    for section, values in override.items():
        if isinstance(values, dict):
            cfg["talnet"][section].update(values)
        else:
            cfg["talnet"][section] = values
    with pytest.raises(ConfigError, match=message):
        run_row(cfg, 0, dataset)
