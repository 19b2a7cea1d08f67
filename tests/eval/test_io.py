"""Evaluation file readers/writers: real files and bad input (every message names file, video, field)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers.paths import SHARED_DATA

from talbench.errors import DataError
from talbench.eval.io import (
    load_cbr_detections,
    load_ground_truth,
    load_predictions,
    load_turn_proposals,
    predictions_to_json,
)

DATA = SHARED_DATA
THUMOS_JSON = DATA / "thumos14" / "annotations" / "thumos14.json"


def test_thumos_subsets_case_insensitive():
    test = load_ground_truth(THUMOS_JSON, "test")
    assert len(test) == 3358 and test["video_id"].nunique() == 212
    assert len(load_ground_truth(THUMOS_JSON, "TEST")) == 3358
    val = load_ground_truth(THUMOS_JSON, "Validation")
    assert test["label"].nunique() == 20 and val["video_id"].nunique() == 200
    assert len(load_ground_truth(THUMOS_JSON, None)) == 6365
    assert list(test.columns) == ["video_id", "label", "start", "end"]


def test_cbr_class_mapping_and_inverted_rows_kept():
    pred = load_cbr_detections(DATA / "golden" / "cbr_thumos14" / "CBR_THUMOS-14_IoU0.5.txt")
    assert len(pred) == 12653
    assert pred.iloc[0].to_dict() == {"video_id": "video_test_0000896", "label": "BaseballPitch",
                                      "start": 103.794262695, "end": 108.036751302, "score": 0.200168}
    assert set(pred["label"]) <= set(load_ground_truth(THUMOS_JSON, "test")["label"]) | {"Ambiguous"}


def test_turn_proposals_in_seconds_ranked_by_file_order():
    props = load_turn_proposals(DATA / "thumos14" / "proposals_turn" / "test_proposals_from_TURN.txt")
    assert len(props) == 61823
    first = props.iloc[0]
    assert (first["video_id"], first["start"], first["end"], first["score"]) == (
        "video_test_0000896", 882 / 30, 1062 / 30, 1.0)
    assert props.iloc[1]["score"] == 0.5


def test_prediction_json_round_trip(tmp_path):
    pred = pd.DataFrame({"video_id": ["b", "a", "b"], "label": ["x", "y", "x"], "start": [1.0, 2.0, 3.0],
                         "end": [2.0, 3.0, 4.5], "score": [0.3, 0.2, 0.1]})
    payload = predictions_to_json(pred, tmp_path / "p.json")
    assert list(payload["results"]) == ["b", "a"]
    back = load_predictions(tmp_path / "p.json")
    expected = pred.iloc[[0, 2, 1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected)


def _write(tmp_path, obj, name="f.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


@pytest.mark.parametrize(("obj", "message"), [
    ({"database": {"v1": {"subset": "test", "annotations": [{"label": "x", "segment": [1.0]}]}}},
     r"video 'v1' field 'annotations\[0\]\.segment' must be \[start, end\]"),
    ({"database": {"v1": {"subset": "test", "annotations": [{"segment": [1.0, 2.0]}]}}},
     r"video 'v1' field 'annotations\[0\]\.label' is missing"),
    ({"database": {"v1": {"annotations": []}}}, r"video 'v1' field 'subset' is missing"),
    ({"database": {"v1": {"subset": "train", "annotations": []}}}, r"no video in subset 'test'"),
    ({"videos": {}}, r"field 'database' must be an object"),
])
def test_bad_ground_truth(tmp_path, obj, message):
    path = _write(tmp_path, obj)
    with pytest.raises(DataError, match=message) as info:
        load_ground_truth(path, "test")
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("obj", "message"), [
    ({"results": {"v9": [{"label": "x", "segment": [1.0, 2.0]}]}}, r"video 'v9' field 'results\[0\]\.score'"),
    ({"results": {"v9": [{"label": "x", "segment": [1.0, "a"], "score": 1}]}},
     r"video 'v9' field 'results\[0\]\.segment' must be a finite number"),
    ({"results": {"v9": [{"label": "x", "segment": [1.0, 2.0], "score": float("nan")}]}},
     r"video 'v9' field 'results\[0\]\.score' must be a finite number"),
    ({"results": {"v9": {"label": "x"}}}, r"video 'v9' field 'results' must be a list"),
    ({"results": {"v9": [{"label": "x", "segment": [1.0, 2.0], "score": "0.5"}]}},
     r"video 'v9' field 'results\[0\]\.score' must be a finite number, got '0.5'"),
    ({"results": {"v9": [{"label": "x", "segment": [1.0, 2.0, 3.0], "score": 1}]}},
     r"video 'v9' field 'results\[0\]\.segment' must be \[start, end\], got \[1.0, 2.0, 3.0\]"),
    ({"results": {"v9": [{"label": "x", "segment": [True, 2.0], "score": 1}]}},
     r"video 'v9' field 'results\[0\]\.segment' must be a finite number, got True"),
    ({"results": {"v9": ["x"]}}, r"video 'v9' field 'results\[0\]' must be an object"),
    ("{not json", r"not valid JSON"),
])
def test_bad_predictions(tmp_path, obj, message):
    path = _write(tmp_path, obj)
    with pytest.raises(DataError, match=message) as info:
        load_predictions(path)
    assert str(path) in str(info.value)


def test_bad_text_files(tmp_path):
    cbr = tmp_path / "cbr.txt"
    cbr.write_text("video_test_1 1.0 2.0 7 0.5\nvideo_test_2 1.0 2.0 8 0.5\n")
    with pytest.raises(DataError, match=r"cbr.txt: line 2 video 'video_test_2' field 'class_id' 8 is not"):
        load_cbr_detections(cbr)
    cbr.write_text("video_test_1 1.0 x 7 0.5\n")
    with pytest.raises(DataError, match=r"line 1 video 'video_test_1' field 'end' is not a finite number"):
        load_cbr_detections(cbr)
    with pytest.raises(DataError, match="file not found"):
        load_turn_proposals(tmp_path / "missing.txt")


def test_fast_prediction_reader_equals_the_checked_one(tmp_path):
    """Well-formed files are read column-wise; the frame is the one the entry-by-entry check builds."""
    from talbench.eval.io import _checked_predictions
    from talbench.io import read_json

    path = DATA / "golden" / "autoloc_thumos14" / "autoloc_pred.json"
    fast = load_predictions(path)
    assert len(fast) == 20763
    pd.testing.assert_frame_equal(fast, pd.DataFrame(_checked_predictions(path, read_json(path)["results"])))
    mixed = {"results": {"v1": [{"label": 7, "segment": [1, 2], "score": 1}], "v2": []}}  # int label: checked path
    assert load_predictions(_write(tmp_path, mixed)).to_dict("records") == [
        {"video_id": "v1", "label": "7", "start": 1.0, "end": 2.0, "score": 1.0}]


def test_prediction_file_not_utf8(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes('{"results": {"v\xe9": []}}'.encode("cp1252"))
    with pytest.raises(DataError, match=r"p.json: not UTF-8 text \(byte 0xe9 at offset 15\)"):
        load_predictions(path)
