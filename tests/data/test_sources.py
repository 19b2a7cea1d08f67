"""ActivityNet v1.3 annotations (real BMN files; ActionFormer's archive layout) and UntrimmedNet scores (real
uNet_test.npy)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.paths import SHARED_DATA

from talbench.config import load_params, resolve
from talbench.data import install_activitynet_archive, open_dataset
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
    cfg["data"]["activitynet"].update(root=str(root), annotation_format="bmn")
    ds = open_dataset(cfg)
    assert ds.video_ids("train") == sorted(train) and ds.video_ids("test") == sorted(test)
    assert ds.features(test[0], "rgb").shape == (10, 512) and ds.stream_dim("both") == 512
    # TSP grid: 16-frame clips every 16 frames at 15 fps
    np.testing.assert_allclose(ds.snippet_centers(test[0])[:3], [8 / 15, 24 / 15, 40 / 15])
    with pytest.raises(DataError, match="unknown stream 'flow'"):
        ds.features(test[0], "flow")
    expected = anet.instances[anet.instances["video_id"].isin(test)]
    assert len(ds.instances("test")) == len(expected)


def _actionformer_release(folder: Path, anet, videos: list[str], cells: int = 10) -> Path:
    """A stand-in for ActionFormer's anet_1.3.tar.gz: ``anet_1.3/annotations/anet1.3_tsp_filtered.json`` (keys
    without ``v_``, no fps) and ``anet_1.3/tsp_features/v_<id>.npy``, from the real BMN annotations."""
    release = folder / "anet_1.3"
    (release / "annotations").mkdir(parents=True)
    (release / "tsp_features").mkdir()
    database = json.loads((ANET / "anet_anno_action.json").read_text())
    subset = {"train": "training", "test": "validation"}
    labels = sorted({a["label"] for v in videos for a in database[v]["annotations"]})  # ids 0..C-1 of this subset
    entries = {}
    for v in videos:
        annotations = [{"label": a["label"], "segment": a["segment"], "label_id": labels.index(a["label"])}
                       for a in database[v]["annotations"]]
        entries[v.removeprefix("v_")] = {"subset": subset[anet.videos.loc[v, "split"]],
                                         "duration": database[v]["duration_second"], "annotations": annotations}
        np.save(release / "tsp_features" / f"{v}.npy", np.ones((cells, 512), np.float32))
    (release / "annotations" / "anet1.3_tsp_filtered.json").write_text(json.dumps({"database": entries}))
    archive = folder / "anet_1.3.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(release, arcname="anet_1.3")
    return archive


def test_activitynet_archive_is_verified_and_unpacked_on_first_use(tmp_path, anet):
    train = anet.videos.index[anet.videos["split"] == "train"][:3].tolist()
    test = anet.videos.index[anet.videos["split"] == "test"][:2].tolist()
    archive = _actionformer_release(tmp_path / "release", anet, train + test)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=f"field 'md5': md5 {md5} differs from the pinned c415f501"):
        install_activitynet_archive(archive, tmp_path / "out", md5="c415f50120b9425ee1ede9ac3ce11203", progress=False)
    assert not (tmp_path / "out").exists()
    cfg = resolve(load_params(), "activitynet")
    cfg["data"]["source"] = "activitynet"
    cfg["data"]["activitynet"].update(root=str(tmp_path / "missing"), archive=str(tmp_path / "none.tar.gz"))
    with pytest.raises(DataError, match="`dvc update activitynet.dvc`"):
        open_dataset(cfg)
    cfg["data"]["activitynet"].update(root=str(tmp_path / "out"), archive=str(archive), archive_md5=md5)
    ds = open_dataset(cfg)
    assert (tmp_path / "out" / "tsp_features" / f"{test[0]}.npy").is_file()
    assert ds.video_ids("train") == sorted(train) and ds.video_ids("test") == sorted(test)
    assert ds.features(test[0]).shape == (10, 512) and ds.fps(test[0]) == 15.0
    expected = anet.instances[anet.instances["video_id"].isin(test)]
    assert ds.instances("test")[["video_id", "label", "start", "end"]].sort_values(["video_id", "start"]).to_numpy(
    ).tolist() == expected[["video_id", "label", "start", "end"]].sort_values(["video_id", "start"]).to_numpy().tolist()


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
