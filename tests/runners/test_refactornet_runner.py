"""RefactorNet's runner end to end on a tiny synthetic benchmark generated in tmp_path. The shared proposals
(the Baseline's) are jittered ground truth plus random segments in BSN's CSV format; RefactorNet rows train
BSN on their refactored features F' (tiny BSN settings)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from talbench.config import load_params, resolve
from talbench.data import open_dataset
from talbench.data.synthetic import generate
from talbench.errors import ConfigError
from talbench.models.refactornet import (
    DeepBaseline,
    RefactorNet,
    build_model,
    parameter_counts,
    refactoring_module,
)
from talbench.runners.families import run_row


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("refactornet")
    cfg = resolve(load_params(), "tiny")
    cfg["data"]["synthetic_root"] = str(root / "synthetic")
    generate(cfg["synth"], root / "synthetic" / "tiny")
    dataset = open_dataset(cfg)
    rng = np.random.default_rng(0)
    (root / "proposals").mkdir()
    for split in ("train", "test"):
        instances = dataset.instances(split)
        for vid in dataset.video_ids(split):
            truth = instances[instances["video_id"] == vid][["start", "end"]].to_numpy()
            duration = dataset.duration(vid)
            length = (truth[:, 1] - truth[:, 0])[:, None]
            jittered = np.repeat(truth, 8, axis=0) + rng.normal(0, 0.1, (8 * len(truth), 2)) * np.repeat(length, 8, 0)
            starts = rng.uniform(0, duration, 40)
            random = np.stack([starts, starts + rng.uniform(0.5, duration / 4, 40)], axis=1)
            segments = np.clip(np.concatenate([jittered, random]), 0, duration)
            segments = segments[segments[:, 1] > segments[:, 0] + 0.1]
            pd.DataFrame({"xmin": segments[:, 0], "xmax": segments[:, 1],
                          "score": rng.uniform(0, 1, len(segments))}).to_csv(root / "proposals" / f"{vid}.csv",
                                                                              index=False)
    cfg["bsn"].update(source="bsn_csv", external_path=str(root / "proposals"), external_normalized=False)
    cfg["model"]["runner"] = "refactornet"
    cfg["detector"].update(aggregation="roi_pool", head_mlps=3)
    cfg["test_time"]["video_cls"] = "none"
    return root, cfg, dataset


def test_run_row_metrics_cache_and_determinism(tiny, monkeypatch):
    root, cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(root / "models_a"))
    from talbench.runners.refactornet import runner

    table3 = []  # the table-3 metrics come from the evaluator's one definition
    measure = runner.high_quality_proposal_metrics
    monkeypatch.setattr(runner, "high_quality_proposal_metrics", lambda *a: table3.append(measure(*a)) or table3[-1])
    first = run_row(cfg, 0, dataset)
    m = first.metrics
    assert len(table3) == 1 and m["class_acc"] == table3[0]["class_accuracy"]
    assert m["mean_tiou"] == table3[0]["mean_tiou"] and m["high_quality_proposals"] == table3[0]["n_high_quality"]
    for name in ("both/mAP_0.3", "both/mAP_0.7", "both/average_mAP", "class_acc", "mean_tiou", "params_m",
                 "probe/context_acc_action", "probe/context_acc_cooccurrence", "probe/context_acc_original",
                 "coupling/pairs", "stage1/L_A", "stage2/L_KL", "train_seconds"):
        assert name in m and np.isfinite(m[name]), name
    assert 0 <= m["both/average_mAP"] <= 100 and m["coupling/pairs"] > 0 and m["loaded_from_cache"] == 0.0
    assert m["stage1/L_A"] >= 0 and 0 <= m["stage1/L_C"] <= 2
    assert set(first.predictions) == {"both"} and len(first.predictions["both"]) > 0
    assert (first.checkpoint_dir / "checkpoint.json").is_file()
    # evaluation proposals from BSN trained on the row's F' (eq. 6), saved with the checkpoint
    assert m["proposals/on_refactored_features"] == 1.0 and 0 < m["proposals/AR_100"] <= 100
    assert m["proposal_seconds"] > 0
    saved = sorted(p.stem for p in (first.checkpoint_dir / "proposals").glob("*.csv"))
    assert saved == sorted(dataset.video_ids("test"))
    shared = pd.read_csv(root / "proposals" / f"{saved[0]}.csv")
    assert len(pd.read_csv(first.checkpoint_dir / "proposals" / f"{saved[0]}.csv")) != len(shared)
    # the same row again: loaded from the checkpoint, same predictions
    again = run_row(cfg, 0, dataset)
    assert again.metrics["loaded_from_cache"] == 1.0
    pd.testing.assert_frame_equal(first.predictions["both"], again.predictions["both"])
    # trained again from scratch elsewhere with the same seed: the same numbers
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(root / "models_b"))
    fresh = run_row(cfg, 0, dataset)
    assert fresh.metrics["loaded_from_cache"] == 0.0
    for name in ("both/average_mAP", "class_acc", "mean_tiou", "stage1/L_R", "stage2/L_R",
                 "probe/context_acc_action", "proposals/AR_100"):
        assert fresh.metrics[name] == pytest.approx(m[name], abs=1e-9), name


def test_baseline_row_has_no_refactoring(tiny, monkeypatch):
    root, cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(root / "models_base"))
    base = resolve(load_params(), "tiny", {"refactornet": {"enabled": False}})
    base.update({k: cfg[k] for k in ("data", "bsn", "model", "test_time")})
    out = run_row(base, 0, dataset)
    assert "probe/context_acc_action" not in out.metrics and "coupling/pairs" not in out.metrics
    assert out.param_counts["paper_refactoring"] == 0 and np.isfinite(out.metrics["both/average_mAP"])
    assert out.metrics["proposals/on_refactored_features"] == 0.0  # the shared proposals
    assert not (out.checkpoint_dir / "proposals").exists()


def test_deep_baseline_and_control_rows_get_bsn_on_their_own_features(tiny, monkeypatch):
    """Table 2's Deep Baseline and its control row (RefactorNet's encoders trained with L_D only), as the
    benchmark file resolves them: each trains BSN on its own output features, as RefactorNet does on F'. On
    THUMOS14-like data no row fuses video-level classification (sec. 5.2: ActivityNet only)."""
    from talbench.benchmark.rows import row_config
    from talbench.benchmark.schema import load_benchmark
    from talbench.runners.refactornet import runner

    root, cfg, dataset = tiny
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(root / "models_rows"))
    monkeypatch.setattr(runner, "video_scores", lambda *a: pytest.fail("video-level fusion on THUMOS14-like data"))
    bench = load_benchmark("refactornet.table2")
    for name in ("Deep Baseline", "Baseline + encoders, L_D only"):
        row_cfg = row_config(load_params(), "tiny", bench, bench.row(name), "refactornet.table2.yaml")
        row_cfg.update({k: cfg[k] for k in ("data", "bsn")})
        row_cfg["test_time"]["video_cls"] = "classifier"
        assert row_cfg["detector"]["head_mlps"] == 3 and row_cfg["detector"]["aggregation"] == "roi_pool"
        out = run_row(row_cfg, 0, dataset)
        m = out.metrics
        assert m["proposals/on_refactored_features"] == 1.0 and 0 < m["proposals/AR_100"] <= 100, name
        assert sorted(p.stem for p in (out.checkpoint_dir / "proposals").glob("*.csv")) == \
            sorted(dataset.video_ids("test"))
        assert "coupling/pairs" not in m and "stage1/L_A" not in m and np.isfinite(m["both/average_mAP"]), name
        # parameter counts at the paper's sizes whatever the profile: the same as the paper profile's
        paper = row_config(load_params(), "paper", bench, bench.row(name), "refactornet.table2.yaml")
        assert m["params_m"] == pytest.approx(parameter_counts(paper, 2048, 20)["total"] / 1e6)
    assert runner.PAPER_HIDDEN_DIM == resolve(load_params(), "paper")["refactornet"]["hidden_dim"]


def test_refactored_features_view_and_bsn_cache_key():
    from talbench.runners.refactornet.proposals import RefactoredFeatures, module_digest

    class Store:
        def features(self, video_id, stream):
            return torch.ones(6, 8).numpy()

        def video_ids(self, split):
            return ["v"]

    torch.manual_seed(0)
    full = RefactorNet(8, 16)
    view = RefactoredFeatures(Store(), full, "both", 4)
    assert view.features("v", "both").shape == (6, 8) and view.video_ids("train") == ["v"]
    with pytest.raises(ValueError, match="stream 'both' only.*'rgb'.*video 'v'"):
        view.features("v", "rgb")
    same = RefactorNet(8, 16)
    same.load_state_dict(full.state_dict())
    assert module_digest(same) == module_digest(full)
    with torch.no_grad():
        same.phi_a.net[0].weight[0, 0] += 1e-3
    assert module_digest(same) != module_digest(full)


def test_deep_baseline_has_the_refactoring_size_at_paper_dims():
    cfg = resolve(load_params(), "paper")
    deep = resolve(load_params(), "paper", {"refactornet": {"deep_baseline": True}})
    counts, deep_counts = parameter_counts(cfg, 2048, 20), parameter_counts(deep, 2048, 20)
    assert abs(deep_counts["refactoring"] - counts["refactoring"]) / counts["refactoring"] < 0.005
    assert deep_counts["detector"] == counts["detector"]  # the same detector on top
    model = build_model(deep, 64, 5)
    assert isinstance(refactoring_module(model), DeepBaseline)
    assert isinstance(refactoring_module(build_model(cfg, 64, 5)), RefactorNet)
    assert refactoring_module(build_model(resolve(load_params(), "paper", {"refactornet": {"enabled": False}}),
                                          64, 5)) is None


def _two_videos(dim: int) -> tuple[list, list[np.ndarray]]:
    from talbench.runners.common.snippets import VideoSnippets

    torch.manual_seed(1)
    videos = []
    for length in (30, 20):
        feats = torch.randn(length, dim)
        videos.append(VideoSnippets(feats, np.arange(length) + 0.5, feats.amax(dim=0)))
    return videos, [np.array([[2.0, 10.0], [20.0, 28.0]]), np.array([[5.0, 9.0]])]


def test_refactored_detector_forward_and_config_errors():
    from talbench.runners.proposal_detector.regions import build_batch

    cfg = resolve(load_params(), "tiny", {"refactornet": {"components": "action"}})
    model = build_model(cfg, 32, 4)
    videos, segments = _two_videos(32)
    out = model(build_batch(videos, segments, 64))
    assert out["cls_logits"].shape == (3, 5) and out["completeness"].shape == (3, 4)
    bad = resolve(load_params(), "tiny", {"refactornet": {"alpha_mode": "learned"}})
    bad["model"]["runner"] = "refactornet"
    with pytest.raises(ConfigError, match="alpha_mode"):
        run_row(bad, 0, dataset=None)


def test_deep_baseline_convolves_the_whole_video_sequence():
    """The Deep Baseline replaces RefactorNet between the features and the detector (table 2): its temporal
    convolutions run over each video's snippet sequence F (never across videos), then the detector gathers the
    proposal regions from the output; a region convolved alone would differ at its ends."""
    from talbench.models.proposal_detector import IdentityEncoder, ProposalDetector, gather_regions
    from talbench.runners.proposal_detector.regions import build_batch

    cfg = resolve(load_params(), "tiny", {"refactornet": {"deep_baseline": True},
                                          "detector": {"aggregation": "roi_pool", "head_mlps": 3}})
    model = build_model(cfg, 16, 4).eval()
    module = refactoring_module(model)
    assert isinstance(module, DeepBaseline)
    videos, segments = _two_videos(16)
    batch = build_batch(videos, segments, 64)
    with torch.no_grad():
        encoded = torch.cat([module(v.features) for v in videos])
        expected = dict(batch)
        for region in ("left", "center", "right"):
            expected[region] = gather_regions(encoded, batch[f"{region}_index"], batch[f"{region}_mask"])
        heads = ProposalDetector(IdentityEncoder(), module.out_dim, 4, module.out_dim, roi_bins=8, head_mlps=3,
                                 dropout=cfg["detector"]["dropout"]).eval()
        heads.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("feature_module.")})
        got, want = model(batch), heads(expected)
        for key in ("cls_logits", "completeness", "regression"):
            torch.testing.assert_close(got[key], want[key])
        count = int(batch["center_mask"][0].sum())
        alone = module(batch["center"][0, :count])  # the proposal's snippets convolved without their neighbours
        assert not torch.allclose(alone, encoded[batch["center_index"][0, :count]])
    assert model.regression_mlp is not None  # sec. 5.2: three head MLPs


def test_module_on_cells_reads_the_snippets_the_module_was_trained_on():
    """BSN reads the module's output at every feature cell: the module runs on 4-cell snippets of every grid
    phase and cell i takes the snippet of cells i-1 .. i+2 (shorter at the video's ends)."""
    from talbench.runners.refactornet.proposals import module_on_cells

    cells = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    out = module_on_cells(torch.nn.Identity(), cells, 4)
    for i in range(1, 7):
        np.testing.assert_allclose(out[i], cells[i - 1:i + 3].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[0], cells[0:3].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[9], cells[8:10].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(module_on_cells(torch.nn.Identity(), cells, 1), cells)
    torch.manual_seed(0)
    conv = DeepBaseline(3, 5, 3)
    with torch.no_grad():  # phase 0 (cells 1, 5): the convolution over the snippet sequence pooled from cell 0
        from talbench.runners.common.snippets import pool_snippets

        sequence = conv(torch.from_numpy(pool_snippets(cells, np.zeros(10), 4)[0])).numpy()
    np.testing.assert_allclose(module_on_cells(conv, cells, 4)[[1, 5]], sequence[[0, 1]], rtol=1e-5, atol=1e-6)
