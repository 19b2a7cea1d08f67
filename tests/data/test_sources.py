"""ActivityNet v1.3 annotations (real BMN files) and UntrimmedNet scores (real uNet_test.npy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.paths import SHARED_DATA

from talbench.config import load_params, resolve
from talbench.data import open_dataset
from talbench.data.activitynet import load_activitynet_annotations
from talbench.data.annotations import THUMOS14_CLASSES, load_thumos14_annotations
from talbench.data.untrimmednet import load_untrimmednet_scores
from talbench.errors import DataError

SHARED = SHARED_DATA
ANET = SHARED / "activitynet13" / "annotations"
UNET = SHARED / "thumos14" / "untrimmednet" / "uNet_test.npy"


@pytest.fixture(scope="module")
def anet():
    return load_activitynet_annotations(ANET)


def test_activitynet_counts(anet):
    assert len(anet.classes) == 200 and anet.classes[:2] == ["Applying sunscreen", "Arm wrestling"]
    assert anet.videos["split"].value_counts().to_dict() == {"train": 9649, "test": 4728}
    split = anet.instances["video_id"].map(anet.videos["split"])
    assert (split == "train").sum() == 14859 and (split == "test").sum() == 7293
    assert anet.instances["label_id"].between(0, 199).all()


def _small_anet(tmp_path: Path, anet, videos: list[str], cells: int = 10) -> Path:
    root = tmp_path / "activitynet13"
    (root / "annotations").mkdir(parents=True)
    (root / "tsp_features").mkdir()
    database = json.loads((ANET / "anet_anno_action.json").read_text())
    (root / "annotations" / "anet_anno_action.json").write_text(json.dumps({v: database[v] for v in videos}))
    info = pd.read_csv(ANET / "video_info_new.csv")
    info[info["video"].isin(videos)].to_csv(root / "annotations" / "video_info_new.csv", index=False)
    (root / "annotations" / "action_name.csv").write_bytes((ANET / "action_name.csv").read_bytes())
    for v in videos:
        np.save(root / "tsp_features" / f"{v}.npy", np.ones((cells, 512), np.float32))
    return root


def test_open_activitynet(tmp_path, anet):
    train = anet.videos.index[anet.videos["split"] == "train"][:3].tolist()
    test = anet.videos.index[anet.videos["split"] == "test"][:2].tolist()
    root = _small_anet(tmp_path, anet, train + test)
    cfg = resolve(load_params(), "smoke")
    cfg["data"]["source"] = "activitynet"
    cfg["data"]["activitynet"]["root"] = str(root)
    ds = open_dataset(cfg)
    assert ds.video_ids("train") == sorted(train) and ds.video_ids("test") == sorted(test)
    assert ds.features(test[0], "rgb").shape == (10, 512) and ds.stream_dim("both") == 512
    # TSP grid: 16-frame clips every 16 frames at 15 fps
    np.testing.assert_allclose(ds.snippet_centers(test[0])[:3], [8 / 15, 24 / 15, 40 / 15])
    with pytest.raises(DataError, match="unknown stream 'flow'"):
        ds.features(test[0], "flow")
    expected = anet.instances[anet.instances["video_id"].isin(test)]
    assert len(ds.instances("test")) == len(expected)


def test_activitynet_bad_label(tmp_path, anet):
    video = anet.videos.index[0]
    root = _small_anet(tmp_path, anet, [video])
    path = root / "annotations" / "anet_anno_action.json"
    database = json.loads(path.read_text())
    database[video]["annotations"][0]["label"] = "Unicycling upside down"
    path.write_text(json.dumps(database))
    with pytest.raises(DataError) as err:
        load_activitynet_annotations(root / "annotations")
    message = str(err.value)
    assert str(path) in message and f"video '{video}'" in message and "annotations[0].label" in message


def test_untrimmednet_scores():
    thumos = load_thumos14_annotations(
        SHARED / "thumos14" / "annotations" / "thumos14.json", THUMOS14_CLASSES
    )
    test_ids = thumos.videos.index[thumos.videos["split"] == "test"].tolist()
    scores = load_untrimmednet_scores(UNET, test_ids)
    assert scores.shape == (212, 20) and list(scores.columns) == THUMOS14_CLASSES
    raw = np.load(UNET)
    assert scores.loc["video_test_0000004", "BaseballPitch"] == raw[3, 6]  # row 4-1, UCF101 id 7-1
    assert scores.loc["video_test_0001558", "VolleyballSpiking"] == raw[1557, 96]
    # the mapping is right: the top class is a ground-truth class of the video for nearly every video
    truth = thumos.instances.groupby("video_id")["label"].agg(set)
    top = scores.idxmax(axis=1)
    hits = np.mean([top[v] in truth[v] for v in truth.index if v in top.index])
    assert hits > 0.9


def test_untrimmednet_bad_input(tmp_path):
    with pytest.raises(DataError, match="video 'video_validation_0000001', field 'video_id'"):
        load_untrimmednet_scores(UNET, ["video_validation_0000001"])
    with pytest.raises(DataError, match="video 'video_test_0009999', field 'row': row 9998 is outside"):
        load_untrimmednet_scores(UNET, ["video_test_0009999"])
    bad = tmp_path / "scores.npy"
    np.save(bad, np.zeros((10, 20), np.float32))
    with pytest.raises(DataError, match=r"field 'scores': expected shape \(videos, 101\), got \(10, 20\)"):
        load_untrimmednet_scores(bad, ["video_test_0000001"])
