"""run_row of the proposal detector end to end on the tiny synthetic benchmark: metrics, caching,
determinism, test-time regrouping (table 2) and original-feature branches (table 3)."""

import pytest

from talbench.config import load_params, resolve
from talbench.runners.common.execution import seed_everything
from talbench.runners.dnet.runner import run_with_proposals


@pytest.fixture(scope="module")
def tiny(tiny_synthetic):
    _, cfg, dataset, proposals = tiny_synthetic
    return cfg, dataset, proposals


def _run(cfg, dataset, proposals, seed=0):
    seed_everything(seed)
    return run_with_proposals(cfg, seed, dataset, proposals)


def test_run_row_metrics_cache_and_determinism(tiny, tmp_path, monkeypatch):
    cfg, dataset, proposals = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / "a"))
    first = _run(cfg, dataset, proposals)
    for stream in ("rgb", "flow", "fusion"):
        for t in ("0.3", "0.5", "0.7"):
            assert 0.0 <= first.metrics[f"{stream}/mAP_{t}"] <= 100.0
        assert set(first.predictions[stream].columns) == {"video_id", "label", "start", "end", "score"}
    assert first.metrics["fusion/mAP_0.3"] > 5.0  # it learned something on jittered ground-truth proposals
    assert first.metrics["params_m"] == pytest.approx(12.11, abs=0.01)
    assert first.metrics["params_m_actual"] < 0.1 and first.metrics["proposals_per_second"] > 0
    assert first.timings["loaded_from_cache"] == 0.0
    assert (first.checkpoint_dir / "checkpoint.json").is_file()

    cached = _run(cfg, dataset, proposals)  # same training config: loaded, not retrained
    assert cached.timings["loaded_from_cache"] == 1.0
    assert cached.metrics == first.metrics | {"proposals_per_second": cached.metrics["proposals_per_second"]}

    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / "b"))  # retrain from scratch, same seed
    again = _run(cfg, dataset, proposals)
    assert again.timings["loaded_from_cache"] == 0.0
    for name, value in first.metrics.items():
        if "/" in name:
            assert again.metrics[name] == value, name

    # table 2: regrouping is test-time only (same checkpoint) and changes the detections
    regrouped = resolve(load_params(), "tiny", {"data": {"synthetic_root": cfg["data"]["synthetic_root"]},
                                                "test_time": {"cls_feature": "F_loc", "loc_feature": "F_cls"}})
    swapped = _run(regrouped, dataset, proposals)
    assert swapped.checkpoint_dir == again.checkpoint_dir and swapped.timings["loaded_from_cache"] == 1.0
    assert not swapped.predictions["rgb"]["score"].equals(again.predictions["rgb"]["score"])


def test_table3_original_feature_branch_reuses_the_baseline(tiny, tmp_path, monkeypatch):
    cfg, dataset, proposals = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    root = {"data": {"synthetic_root": cfg["data"]["synthetic_root"]}}
    baseline_cfg = resolve(load_params(), "tiny", root | {"detector": {"encoder": "none"}})
    baseline = _run(baseline_cfg, dataset, proposals)
    pro_pro = resolve(load_params(), "tiny", root | {"test_time": {"cls_feature": "F_pro", "loc_feature": "F_pro"}})
    both = _run(pro_pro, dataset, proposals)
    # F_pro / F_pro is the independent original-feature model, i.e. the A-Net baseline (table 3 row 1 = table 1 row 1)
    for stream in ("rgb", "flow", "fusion"):
        assert both.metrics[f"{stream}/mAP_0.5"] == baseline.metrics[f"{stream}/mAP_0.5"]
    mixed = _run(resolve(load_params(), "tiny", root | {"test_time": {"cls_feature": "F_pro"}}), dataset, proposals)
    assert mixed.timings["loaded_from_cache"] == 1.0  # D-Net and baseline both trained above
    assert not mixed.predictions["fusion"]["score"].equals(both.predictions["fusion"]["score"])


def test_report_called_after_each_final_stage_epoch(tiny, tmp_path, monkeypatch):
    cfg, dataset, proposals = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    calls = []
    seed_everything(0)
    run_with_proposals(cfg, 0, dataset, proposals, report=lambda step, value: calls.append((step, value)))
    assert [s for s, _ in calls] == list(range(cfg["detector"]["epochs"]))
    assert all(0.0 <= v <= 100.0 for _, v in calls)


def test_epoch_bars_show_no_nan_loss_and_an_eta(tiny, tmp_path, monkeypatch):
    """The epoch bars used to start at "loss nan" and had no remaining-time estimate."""
    import io

    from rich.console import Console

    cfg, dataset, proposals = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    screen = io.StringIO()
    seed_everything(0)
    run_with_proposals(cfg, 0, dataset, proposals, console=Console(file=screen, force_terminal=True, width=200))
    shown = screen.getvalue()
    assert "loss -" in shown and "eta" in shown
    assert "nan" not in shown
