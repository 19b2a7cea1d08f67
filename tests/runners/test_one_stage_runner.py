"""The one-stage runner end to end on the tiny synthetic benchmark: metrics, checkpoint reuse, determinism, the
best-test-epoch diagnostic, the complexity task, every encoder / decoder / recipe of the benchmark rows."""

from __future__ import annotations

import pytest

from talbench.config import deep_merge, load_params, resolve
from talbench.runners.common.execution import seed_everything
from talbench.runners.one_stage.complexity import paper_counts
from talbench.runners.one_stage.runner import run_row

METRICS = [f"both/mAP_{t}" for t in ("0.3", "0.4", "0.5", "0.6", "0.7")] + ["both/average_mAP"]


@pytest.fixture(scope="module")
def tiny(tiny_synthetic):
    root, _, dataset, _ = tiny_synthetic
    cfg = resolve(load_params(), "tiny", {"data": {"synthetic_root": str(root)}, "model": {"runner": "one_stage"}})
    return cfg, dataset


def _run(cfg, dataset, seed=0, **kwargs):
    seed_everything(seed)
    return run_row(cfg, seed, dataset, **kwargs)


def test_metrics_cache_and_determinism(tiny, tmp_path, monkeypatch):
    cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / "a"))
    first = _run(cfg, dataset)
    for name in METRICS:
        assert 0.0 <= first.metrics[name] <= 100.0, name
    assert set(first.predictions) == {"both"}
    assert list(first.predictions["both"].columns) == ["video_id", "label", "start", "end", "score"]
    assert first.metrics["params_m"] == pytest.approx(21.908384)  # CLTDR-GMG at the THUMOS14 I3D sizes
    assert first.metrics["params_encoder_m"] == pytest.approx(9.510656)
    assert 0 < first.metrics["params_m_actual"] < 0.1
    assert first.timings["loaded_from_cache"] == 0.0 and first.metrics["seconds_per_epoch"] > 0
    assert (first.checkpoint_dir / "checkpoint.json").is_file()
    durations = dataset.videos["duration"]
    frame = first.predictions["both"]
    assert (frame["start"] >= 0).all() and (frame["end"] <= frame["video_id"].map(durations) + 1e-9).all()

    cached = _run(cfg, dataset)  # same training configuration: loaded, not retrained
    assert cached.timings["loaded_from_cache"] == 1.0
    assert {k: cached.metrics[k] for k in METRICS} == {k: first.metrics[k] for k in METRICS}

    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / "b"))  # retrain from scratch with the same seed
    again = _run(cfg, dataset)
    assert again.timings["loaded_from_cache"] == 0.0
    assert {k: again.metrics[k] for k in METRICS} == {k: first.metrics[k] for k in METRICS}
    assert again.predictions["both"].equals(first.predictions["both"])

    other_seed = _run(cfg, dataset, seed=1)
    assert not other_seed.predictions["both"].equals(first.predictions["both"])


def test_best_test_epoch_diagnostic_measures_without_choosing(tiny, tmp_path, monkeypatch):
    """The snapshot row trains exactly like the default row; its last/* metrics are the default row's, its
    columns those of the best evaluated epoch (the official train.py's choice), never below the last epoch's."""
    cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    default = _run(cfg, dataset)
    snap_cfg = deep_merge(cfg, {"one_stage": {"train": {"snapshots": True}}})
    diagnostic = _run(snap_cfg, dataset)
    for name in METRICS:
        assert diagnostic.metrics[name.replace("both/", "last/")] == default.metrics[name]
    gain = diagnostic.metrics["selected/average_mAP_gain"]
    assert gain >= 0.0
    assert diagnostic.metrics["both/average_mAP"] == pytest.approx(default.metrics["both/average_mAP"] + gain)
    total = cfg["one_stage"]["recipes"]["cltdr_gmg"]["warmup_epochs"] + cfg["one_stage"]["recipes"]["cltdr_gmg"]["epochs"]
    assert (total - 5) // 2 + 1 <= diagnostic.metrics["selected/epoch"] <= total
    reloaded = _run(snap_cfg, dataset)  # the snapshots come back from the checkpoint
    assert reloaded.timings["loaded_from_cache"] == 1.0 and reloaded.metrics == pytest.approx(
        diagnostic.metrics | {"infer_seconds": reloaded.metrics["infer_seconds"]})


def test_report_is_called_after_every_epoch(tiny, tmp_path, monkeypatch):
    cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    calls = []
    _run(cfg, dataset, report=lambda step, value: calls.append((step, value)))
    recipe = cfg["one_stage"]["recipes"]["cltdr_gmg"]
    assert [s for s, _ in calls] == list(range(recipe["warmup_epochs"] + recipe["epochs"]))
    assert all(0.0 <= v <= 100.0 for _, v in calls)


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "actionformer", "encoder": "transformer", "decoder": "actionformer"},
        {"method": "temporalmaxer", "encoder": "maxpool", "decoder": "actionformer"},
        {"method": "tridet", "encoder": "sgp", "decoder": "trident"},
        {"method": "temporalmaxer", "encoder": "maxpool", "decoder": "cltdr",
         "recipes": {"temporalmaxer": {"assignment": "shortest"}}},
        {"cltdr": {"refine": [], "fusion": "concatenation", "cls_layers": ["upper", "lower"]}, "num_levels": 1},
    ],
)
def test_other_methods_and_swaps_train_and_detect(tiny, tmp_path, monkeypatch, overrides):
    cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    cfg = deep_merge(cfg, {"one_stage": overrides})
    for recipe in cfg["one_stage"]["recipes"].values():
        recipe.update(warmup_epochs=1, epochs=1)
    outcome = _run(cfg, dataset)
    assert all(0.0 <= outcome.metrics[name] <= 100.0 for name in METRICS)
    assert outcome.metrics["params_m"] * 1e6 == pytest.approx(paper_counts(cfg)["total"])


def test_least_cost_assignment_needs_per_point_offsets(tiny, tmp_path, monkeypatch):
    cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    cfg = deep_merge(cfg, {"one_stage": {"method": "temporalmaxer", "encoder": "maxpool", "decoder": "cltdr"}})
    with pytest.raises(ValueError, match="min_cost assignment needs the ActionFormer decoder"):
        _run(cfg, dataset)


def test_complexity_task_counts_and_times_without_training(tiny, tmp_path, monkeypatch):
    cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    rows = {
        "cltdr_gmg": ({}, 21_908_384),
        "temporalmaxer": ({"method": "temporalmaxer", "encoder": "maxpool", "decoder": "actionformer"}, 7_117_852),
    }
    for overrides, count in rows.values():
        outcome = _run(deep_merge(cfg, {"one_stage": {"task": "complexity", **overrides}}), dataset)
        assert outcome.metrics["params_m"] == pytest.approx(count / 1e6)
        assert 0 < outcome.metrics["inference_ms_min"] <= outcome.metrics["inference_ms"]
        assert outcome.predictions == {} and outcome.checkpoint_dir is None
    assert not any(tmp_path.iterdir())  # nothing trained
