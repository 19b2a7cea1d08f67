"""The data's premises (issue 15), measured: the measurements themselves on hand-made annotations and on the
real THUMOS14 annotations, the premises asserted on the `smoke` profile, and `talbench premises`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers.paths import REPO, SHARED_DATA
from typer.testing import CliRunner

from talbench.cli import app
from talbench.config import load_params, resolve
from talbench.data import open_dataset
from talbench.data.synthetic import generate
from talbench.premises import annotation_statistics, measure_premises, reference_statistics


def test_annotation_statistics_by_hand():
    videos = pd.DataFrame({"duration": [10.0, 20.0, 8.0]}, index=pd.Index(["a", "b", "c"], name="video_id"))
    instances = pd.DataFrame({
        "video_id": ["a", "a", "b", "b", "b"],
        "label_id": [0, 1, 1, 1, 1],
        "start": [1.0, 2.0, 0.0, 5.0, 18.0],
        "end": [3.0, 4.0, 0.5, 10.0, 30.0],  # a: overlapping (3 s covered); b: the last one clipped at 20 s
    })
    cell = pd.Series(0.5, index=videos.index)  # 0.5 s a cell
    stats = annotation_statistics(videos, instances, ["x", "y"], cell)
    assert stats["instances"] == 5 and stats["instances_per_video"] == {"mean": pytest.approx(5 / 3, abs=1e-3),
                                                                         "median": 2.0, "max": 3}
    assert stats["classes_per_video"] == {"0": 1, "1": 1, "2": 1} and stats["multi_class_video_fraction"] == 0.3333
    assert stats["instances_per_class"] == {"x": 1, "y": 4}
    assert stats["background_fraction"] == pytest.approx(1 - (3 + 0.5 + 5 + 2) / 38, abs=1e-4)
    # half lengths in cells: 2, 2, 0.5, 5, 12 -> levels [0,4) x3, [4,8) x1, [8,16) x1
    assert list(stats["instances_per_pyramid_level"].values()) == [3, 1, 1, 0, 0, 0]
    # tIoU-0.7 tolerance 3 d / 17 in cells: 0.71, 0.71, 0.18, 1.76, 4.24 -> strides 1, 1, 1, 1, 4
    assert stats["coarsest_stride_within_tiou_0.7"] == {"stride1": 4, "stride2": 0, "stride4": 1, "stride8": 0,
                                                        "stride16": 0, "stride32": 0}  # fmt: skip
    assert stats["duration_s"]["histogram"]["0-1"] == 1 and stats["duration_s"]["histogram"]["8-16"] == 1


def test_real_thumos14_reference():
    ref = reference_statistics(SHARED_DATA / "thumos14" / "annotations" / "thumos14.json")
    assert (ref["train"]["videos"], ref["test"]["videos"]) == (200, 212)
    assert (ref["train"]["instances"], ref["test"]["instances"]) == (3007, 3358)
    assert ref["train"]["multi_class_video_fraction"] == 0.135 and ref["test"]["multi_class_video_fraction"] == 0.1604
    assert 0.65 < ref["test"]["background_fraction"] < 0.75
    assert ref["test"]["duration_s"]["median"] == pytest.approx(3.2, abs=0.05)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("premises") / "smoke"
    cfg = resolve(load_params(), "smoke")
    generate(cfg["synth"], root)
    cfg["data"].update(source="synthetic", synthetic_root=str(root.parent), profile="smoke")
    dataset = open_dataset(cfg)
    return measure_premises(cfg, dataset)


def test_smoke_has_the_premises(smoke):
    ann, video, window, lat = smoke["annotations"], smoke["video_classifier"], smoke["window_probes"], smoke["latents"]
    json.dumps(smoke)  # a metrics file
    # videos with two classes, as THUMOS14's 13.5-16%
    assert all(0 < ann[s]["multi_class_video_fraction"] < 0.35 for s in ("train", "test"))
    # context is shared by several classes and misleads a context-reliant classifier now and then
    assert lat["context"]["contexts_shared_by_several_classes"] >= 2 and 0.7 < lat["context"]["reliability"] < 0.97
    # a video-level classifier that is good but not perfect; so is a linear classifier of whole segments
    assert 0.6 < video["top1"] < 1.0 and 0.5 < window["segment_classifier_top1"] < 0.97
    # the key phase decides the class; every phase of the body is action, background is not
    phases = lat["class_top1_by_phase"]
    assert phases["key"] > max(phases["onset"], phases["body"], phases["offset"])
    recall = lat["actionness_recall_by_phase"]
    assert recall["body"] > 0.7 and min(recall["onset"], recall["offset"]) > 0.3 and recall["background"] < 0.1
    # classes need coarse context: a window around the centre classifies better the more it sees
    by_window = window["class_top1_by_window_cells"]
    assert by_window["32"] > by_window["1"]
    # durations from under a second to tens of seconds: every pyramid level but the coarsest has instances
    test = ann["test"]
    assert test["duration_s"]["min"] < 1.0 and test["duration_s"]["max"] > 15.0
    assert sum(n >= 5 for n in test["instances_per_pyramid_level"].values()) >= 5


def test_premises_command(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    generate(resolve(load_params(), "tiny")["synth"], tmp_path / "data" / "synthetic" / "tiny")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["premises", "--profile", "tiny", "--out", "results/premises.json"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "results" / "premises.json").read_text())
    assert written["profile"] == "tiny" and written["dataset"] == "synthetic-tiny"
    assert {"annotations", "video_classifier", "window_probes", "latents"} <= set(written)
    assert "video-level classifier top-1" in result.output
    missing = CliRunner().invoke(app, ["premises", "--profile", "smoke"])
    assert missing.exit_code == 2 and "talbench synth --profile smoke" in " ".join(missing.output.split())
    assert not np.isnan(written["video_classifier"]["top1"])
