"""Data layer on the real THUMOS14 annotations (../shared/data): counts, segment policy, holdout, taxonomy."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.paths import SHARED_DATA

from talbench.data.annotations import (
    THUMOS14_CLASSES,
    apply_segment_policy,
    holdout_split,
    load_thumos14_annotations,
)
from talbench.errors import ConfigError, DataError

SHARED = SHARED_DATA
THUMOS_JSON = SHARED / "thumos14" / "annotations" / "thumos14.json"
# Annotations ending after the video's duration in thumos14.json (every one starts after it, too).
PAST_END = {
    "video_validation_0000364": 2,
    "video_validation_0000856": 2,
    "video_test_0000270": 22,  # duration 176.25 s in the JSON, annotations up to 713.7 s
    "video_test_0000814": 3,
    "video_test_0001081": 1,
}


@pytest.fixture(scope="module")
def thumos():
    return load_thumos14_annotations(THUMOS_JSON, THUMOS14_CLASSES)


def test_real_counts(thumos):
    assert len(thumos.videos) == 412
    assert thumos.videos["split"].value_counts().to_dict() == {"test": 212, "train": 200}
    assert set(thumos.videos.loc[thumos.videos["split"] == "train", "subset"]) == {"Validation"}
    split = thumos.instances["video_id"].map(thumos.videos["split"])
    assert (split == "test").sum() == 3358  # the official test annotations (Ambiguous excluded)
    assert (split == "train").sum() == 3007
    assert thumos.classes == THUMOS14_CLASSES
    assert list(thumos.instances.columns) == ["video_id", "label", "label_id", "start", "end"]
    # the official per-class txt files agree (class, video, start, end)
    official = pd.concat(
        pd.read_csv(f, sep=r"\s+", header=None, names=["video_id", "start", "end"]).assign(label=f.stem[:-5])
        for f in (SHARED / "thumos14" / "annotations_original_txt" / "annotations_test").glob("*_test.txt")
        if not f.stem.startswith("Ambiguous")
    )
    test = thumos.instances[split == "test"]
    assert len(official) == len(test)
    key = ["video_id", "label", "start", "end"]
    assert (
        official[key].sort_values(key).to_numpy().tolist() == test[key].sort_values(key).to_numpy().tolist()
    )


def test_derived_taxonomy_equals_thumos_classes():
    assert load_thumos14_annotations(THUMOS_JSON).classes == THUMOS14_CLASSES


@pytest.mark.parametrize("policy", ["clip", "drop"])
def test_out_of_range_annotations_reported(thumos, policy):
    kept, report = apply_segment_policy(thumos, policy)
    assert report.problems.groupby("video_id").size().to_dict() == PAST_END
    assert set(report.problems["issue"]) == {"end_past_duration"}
    # the four the data README names, plus video_test_0000270's broken duration
    assert {
        "video_validation_0000364",
        "video_validation_0000856",
        "video_test_0000814",
        "video_test_0001081",
    } < set(report.problems["video_id"])
    # every one starts after the end, so clipping leaves nothing: both policies drop the 4 training ones
    assert (report.clipped, report.dropped, report.kept_in_test) == (0, 4, 26)
    assert len(kept) == 6365 - 4
    assert "4 dropped" in report.summary() and "26 kept as annotated" in report.summary()
    assert report.to_dict()["problem_videos"] == sorted(PAST_END)


def _write(tmp_path: Path, database: dict) -> Path:
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"database": database}))
    return path


def _video(subset: str, duration: float, *segments, label: str = "HighJump") -> dict:
    anns = [{"label": label, "segment": list(s), "label_id": THUMOS14_CLASSES.index(label)} for s in segments]
    return {"subset": subset, "duration": duration, "fps": 30.0, "annotations": anns}


def test_clip_and_drop_policies_on_partial_overlaps(tmp_path):
    path = _write(
        tmp_path,
        {
            "v_train": _video(
                "Validation", 10.0, (1.0, 2.0), (8.0, 12.0), (-1.0, 3.0), (5.0, 5.0), (11.0, 13.0)
            ),
            "v_test": _video("Test", 10.0, (8.0, 12.0), (4.0, 3.0)),
        },
    )
    ann = load_thumos14_annotations(path, THUMOS14_CLASSES)
    clipped, report = apply_segment_policy(ann, "clip")
    train = clipped[clipped["video_id"] == "v_train"]
    assert train[["start", "end"]].to_numpy().tolist() == [[1.0, 2.0], [8.0, 10.0], [0.0, 3.0]]
    assert (report.clipped, report.dropped, report.kept_in_test) == (2, 2, 2)
    assert report.problems["issue"].tolist() == [
        "end_past_duration", "start_negative", "end_not_after_start", "end_past_duration",
        "end_past_duration", "end_not_after_start",
    ]  # fmt: skip
    # the test ground truth is never altered
    assert clipped[clipped["video_id"] == "v_test"][["start", "end"]].to_numpy().tolist() == [[8, 12], [4, 3]]
    dropped, report = apply_segment_policy(ann, "drop")
    assert dropped[dropped["video_id"] == "v_train"][["start", "end"]].to_numpy().tolist() == [[1.0, 2.0]]
    assert (report.clipped, report.dropped, report.kept_in_test) == (0, 4, 2)
    with pytest.raises(ConfigError, match="data.segment_policy must be clip or drop, got 'trim'"):
        apply_segment_policy(ann, "trim")


def test_label_not_in_taxonomy(tmp_path):
    path = _write(tmp_path, {"v1": _video("Test", 10.0, (1.0, 2.0)) | {}})
    database = json.loads(path.read_text())["database"]
    database["v1"]["annotations"].append({"label": "Juggling", "segment": [3.0, 4.0], "label_id": 20})
    path = _write(tmp_path, database)
    with pytest.raises(DataError) as err:
        load_thumos14_annotations(path, THUMOS14_CLASSES)
    message = str(err.value)
    assert str(path) in message and "video 'v1'" in message and "annotations[1].label" in message
    assert "'Juggling' is not in the taxonomy" in message


def test_label_id_mismatch_and_bad_fields(tmp_path):
    video = _video("Test", 10.0, (1.0, 2.0))
    video["annotations"][0]["label_id"] = 3
    path = _write(tmp_path, {"v1": video})
    with pytest.raises(
        DataError, match=r"video 'v1', field 'annotations\[0\].label_id': label_id 3 does not match"
    ):
        load_thumos14_annotations(path, THUMOS14_CLASSES)
    video = _video("Test", 10.0, (1.0, "late"))
    path = _write(tmp_path, {"v2": video})
    with pytest.raises(
        DataError, match=r"video 'v2', field 'annotations\[0\].segment\[1\]': expected a number"
    ):
        load_thumos14_annotations(path)
    path = _write(tmp_path, {"v3": {"subset": "Test", "fps": 30.0, "annotations": []}})
    with pytest.raises(DataError, match=r"video 'v3', field 'duration': missing"):
        load_thumos14_annotations(path)
    with pytest.raises(DataError, match="annotation file not found"):
        load_thumos14_annotations(tmp_path / "absent.json")


def test_bad_label_id_and_encoding_are_named(tmp_path):
    """`label_id: "abc"` used to raise a bare ValueError, a Latin-1 file a UnicodeDecodeError."""
    video = _video("Test", 10.0, (1.0, 2.0), (3.0, 4.0))
    video["annotations"][1]["label_id"] = "abc"
    with pytest.raises(DataError, match=r"video 'v1', field 'annotations\[1\].label_id': expected an integer "
                                        r"class id, got 'abc'"):
        load_thumos14_annotations(_write(tmp_path, {"v1": video}))
    video["annotations"][1]["label_id"] = 2.5
    with pytest.raises(DataError, match=r"annotations\[1\].label_id': expected an integer class id, got 2.5"):
        load_thumos14_annotations(_write(tmp_path, {"v1": video}))
    video["annotations"][1]["label_id"] = "11"  # an integer written as a string is read as one
    loaded = load_thumos14_annotations(_write(tmp_path, {"v1": video}), THUMOS14_CLASSES)
    assert loaded.instances["label_id"].tolist() == [11, 11]
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps({"database": {"v\u00e9": _video("Test", 10.0, (1.0, 2.0))}},
                                ensure_ascii=False).encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.json: not UTF-8 text \(byte 0xe9"):
        load_thumos14_annotations(path)


def test_holdout_is_deterministic_and_disjoint(thumos):
    train = thumos.videos.index[thumos.videos["split"] == "train"].tolist()
    test = set(thumos.videos.index[thumos.videos["split"] == "test"])
    fit, held = holdout_split(train, 0.2, seed=0)
    assert len(held) == 40 and len(fit) == 160
    assert set(fit).isdisjoint(held) and set(fit) | set(held) == set(train)
    assert test.isdisjoint(held)
    assert holdout_split(list(reversed(train)), 0.2, seed=0) == (fit, held)  # order of input irrelevant
    assert holdout_split(train, 0.2, seed=1)[1] != held
    assert holdout_split(train, 0.0, seed=0) == (sorted(train), [])
    with pytest.raises(ConfigError, match=r"data.holdout_fraction must be in \[0, 1\), got 1.0"):
        holdout_split(train, 1.0, seed=0)
