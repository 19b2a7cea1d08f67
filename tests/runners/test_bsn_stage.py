"""The proposals stage end to end on a small synthetic benchmark generated in tmp_path."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from talbench.config import load_params, resolve
from talbench.data.proposals import load_detector_proposals, load_proposals
from talbench.data.synthetic import generate
from talbench.runners.bsn.stage import run_proposal_stage


@pytest.fixture(scope="module")
def stage(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("stage")
    params = copy.deepcopy(load_params())
    params["data"]["synthetic_root"] = str(root / "synthetic")
    # tiny's 6 training videos (1.5 instances each) are too few for BSN to learn anything: give it 24
    params["profiles"]["tiny"]["synth"]["videos"] = {"train": 24, "test": 6}
    generate(resolve(params, "tiny")["synth"], root / "synthetic" / "tiny")
    monkeypatch_module.setenv("TALBENCH_MODELS_DIR", str(root / "models"))
    run_proposal_stage("tiny", None, None, params=params, root=root)
    return root, params


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_stage_writes_every_video_and_results(stage):
    root, params = stage
    videos = resolve(params, "tiny")["synth"]["videos"]
    out = root / "proposals" / "synthetic-tiny"
    files = sorted(p.stem for p in out.glob("*.csv"))
    # train and test videos: the detector trains on train-video proposals
    assert len(files) == videos["train"] + videos["test"]
    written = json.loads((root / "results" / "proposals.json").read_text())
    assert written["videos"] == len(files) and written["split"] == "test"
    assert written["param_counts"]["tem"] > 0 and written["timings"]["tem_train_s"] > 0
    ar = written["average_recall"]["ar"]
    assert 0.0 < ar["50"] <= ar["100"] <= ar["200"] <= 100.0
    frame = load_proposals(out, files)
    assert (frame["end"] > frame["start"]).all()
    assert frame.groupby("video_id").size().max() <= 200  # tiny: max_proposals
    # score = p_start x p_end x p_conf before Soft-NMS decay, never above it
    product = frame["xmin_score"] * frame["xmax_score"] * frame["iou_score"]
    # the CSV rounds each of the four numbers to 6 decimals (+-5e-7; components <= 1): up to 2e-6 apart
    assert (frame["score"] <= product + 2e-6).all()
    cfg = {"data": {"source": "synthetic", "profile": "tiny"}, "bsn": {"source": "bsn"}}
    assert len(load_detector_proposals(cfg, files, root=root)) == len(frame)


def _ar_at(gt: pd.DataFrame, proposals: pd.DataFrame, an: int, tiou: list[float]) -> float:
    from talbench.eval.proposals import average_recall

    return float(average_recall(gt, proposals, [an], tiou)["ar"][str(an)])


def test_bsn_beats_random_proposals_of_the_same_count(stage):
    root, params = stage
    from talbench.data import open_dataset

    cfg = resolve(params, "tiny")
    dataset = open_dataset(cfg)
    test_ids = dataset.video_ids("test")
    bsn = load_proposals(root / "proposals" / "synthetic-tiny", test_ids)
    rng = np.random.default_rng(0)
    rows = []
    for video_id, group in bsn.groupby("video_id"):
        duration = dataset.duration(video_id)
        a, b = rng.uniform(0, duration, (2, len(group)))
        rows.append(pd.DataFrame({"video_id": video_id, "start": np.minimum(a, b), "end": np.maximum(a, b),
                                  "score": rng.uniform(size=len(group))}))
    random = pd.concat(rows, ignore_index=True)
    gt = dataset.instances("test")
    tiou = cfg["eval"]["ar_tiou_thresholds"]
    # AR@20 over tIoU 0.5:0.05:1.0; measured (tiny, 24 training videos): BSN 62.3, random 20.8
    assert _ar_at(gt, bsn, 20, tiou) > _ar_at(gt, random, 20, tiou) + 15.0


def test_checkpoint_reused_and_training_deterministic(stage, monkeypatch):
    root, params = stage
    folder = root / "proposals" / "synthetic-tiny"
    first = load_proposals(folder, ["video_test_0000001", "video_validation_0000002"])
    screen = Console(record=True, width=100)
    again = run_proposal_stage("tiny", None, screen, params=params, root=root)
    assert again["timings"].get("loaded") == 1.0  # trained model found under models/bsn/<hash>/seed0
    # the stage ended with a 16-line raw dict; now one line of AR@AN
    last = screen.export_text().strip().splitlines()[-1]
    assert last.startswith("test split (") and "AR@100 " in last and "{" not in last
    pd.testing.assert_frame_equal(first, load_proposals(folder, ["video_test_0000001", "video_validation_0000002"]))
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(root / "models_retrain"))
    retrained = run_proposal_stage("tiny", None, None, params=params, root=root)
    assert "tem_train_s" in retrained["timings"]  # trained again from scratch: same seed, same numbers
    pd.testing.assert_frame_equal(first, load_proposals(folder, ["video_test_0000001", "video_validation_0000002"]))


def test_tuning_proposals_come_from_bsn_trained_on_train_fit(stage):
    """`talbench proposals --train-split train_fit`: BSN never sees the holdout's annotations; proposals of the
    training videos only (no test video read), AR@AN on the holdout; a row trained on train_fit reads them."""
    from talbench.data import open_dataset
    from talbench.data.proposals import detector_proposals
    from talbench.errors import DataError

    root, params = stage
    results = run_proposal_stage("tiny", None, None, params=params, root=root, train_split="train_fit")
    cfg = resolve(params, "tiny")
    dataset = open_dataset(cfg)
    out = root / "proposals" / "synthetic-tiny-train_fit"
    assert sorted(p.stem for p in out.glob("*.csv")) == sorted(dataset.video_ids("train"))
    written = json.loads((root / "results" / "proposals-train_fit.json").read_text())
    assert written == json.loads(json.dumps(results))
    assert written["split"] == "holdout" and written["train_split"] == "train_fit"
    assert json.loads((root / "results" / "proposals.json").read_text())["split"] == "test"  # untouched
    tuning = resolve(params, "tiny", {"run": {"train_split": "train_fit", "eval_split": "holdout"}})
    frame = detector_proposals(tuning, dataset, root)
    ids = dataset.video_ids("train_fit") + dataset.video_ids("holdout")
    pd.testing.assert_frame_equal(frame, load_proposals(out, ids))
    holdout = dataset.video_ids("holdout")  # another BSN than the one trained on every training video
    assert not load_proposals(out, holdout).equals(load_proposals(root / "proposals" / "synthetic-tiny", holdout))
    with pytest.raises(DataError, match=r"synthetic-tiny-train_fit: no BSN proposals of a BSN trained on "
                                        r"'train_fit' \(run `talbench proposals --train-split train_fit`\)"):
        detector_proposals(tuning, dataset, root / "elsewhere")
