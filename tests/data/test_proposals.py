"""Proposal files: BSN CSV round trip, bad input, external TURN / BSN CSV sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.paths import SHARED_DATA

from talbench.data.proposals import (
    load_bsn_csv,
    load_detector_proposals,
    load_proposals,
    proposals_dir,
    write_proposals,
)
from talbench.errors import ConfigError, DataError

SHARED = SHARED_DATA
TURN_FILE = SHARED / "thumos14" / "proposals_turn" / "test_proposals_from_TURN.txt"


def _proposals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": ["v1", "v1", "v2"],
            "start": [1.5, 0.25, 3.0],
            "end": [4.0, 2.0, 9.5],
            "score": [0.2, 0.7, 0.9],
            "xmin_score": [0.5, 0.9, 0.95],
            "xmax_score": [0.8, 0.9, 0.99],
            "iou_score": [0.5, 0.864198, 0.956835],
        }
    )


def _cfg(source="bsn", path=None, normalized=False):
    return {
        "data": {"source": "synthetic", "profile": "tiny"},
        "bsn": {"source": source, "external_path": path, "external_normalized": normalized},
    }


def test_round_trip_sorted_with_empty_video(tmp_path):
    out = tmp_path / "proposals" / "synthetic-tiny"
    write_proposals(out, _proposals(), ["v1", "v2", "v3"])
    assert sorted(p.name for p in out.iterdir()) == ["v1.csv", "v2.csv", "v3.csv"]
    header = (out / "v1.csv").read_text().splitlines()[0]
    assert header == "xmin,xmax,score,xmin_score,xmax_score,iou_score"
    back = load_proposals(out, ["v1", "v2", "v3"])
    assert list(back.columns[:4]) == ["video_id", "start", "end", "score"]
    assert back["video_id"].tolist() == ["v1", "v1", "v2"]
    assert back["score"].tolist() == [0.7, 0.2, 0.9]  # best first per video
    assert back.loc[0, ["start", "end"]].tolist() == [0.25, 2.0]
    assert back["iou_score"].to_numpy() == pytest.approx([0.864198, 0.5, 0.956835])
    assert proposals_dir(_cfg(), tmp_path) == out


def test_rewrite_replaces_the_folder(tmp_path):
    out = tmp_path / "p"
    write_proposals(out, _proposals(), ["v1", "v2"])
    write_proposals(out, _proposals()[_proposals().video_id == "v2"], ["v2"])
    assert [p.name for p in out.iterdir()] == ["v2.csv"]


def test_bad_files_name_file_video_and_field(tmp_path):
    with pytest.raises(DataError, match=r"v9.*missing"):
        load_proposals(tmp_path, ["v9"])
    (tmp_path / "v1.csv").write_text("xmin,xmax,score\n1.0,2.0,abc\n")
    with pytest.raises(DataError, match=r"v1\.csv.*'v1'.*'score' row 0"):
        load_proposals(tmp_path, ["v1"])
    (tmp_path / "v2.csv").write_text("xmin,score\n1.0,0.5\n")
    with pytest.raises(DataError, match=r"'v2'.*column 'xmax'"):
        load_proposals(tmp_path, ["v2"])
    (tmp_path / "v3.csv").write_text("xmin,xmax,score\n1.0,2.0,0.5\n5.0,4.0,0.5\n")
    with pytest.raises(DataError, match=r"'v3'.*row 1.*xmax < xmin"):
        load_proposals(tmp_path, ["v3"])


def test_normalised_bsn_csv_scaled_by_duration(tmp_path):
    (tmp_path / "v_abc.csv").write_text(
        "xmin,xmax,xmin_score,xmax_score,iou_score,score\n0.1,0.5,0.9,0.8,0.7,0.504\n0.0,1.0,0.5,0.5,0.2,0.05\n"
    )
    frame = load_bsn_csv(tmp_path, ["v_abc"], durations={"v_abc": 120.0})
    assert frame[["start", "end"]].to_numpy() == pytest.approx(np.array([[12.0, 60.0], [0.0, 120.0]]))
    via_cfg = load_detector_proposals(_cfg("bsn_csv", str(tmp_path), True), ["v_abc"], {"v_abc": 120.0})
    assert via_cfg["end"].tolist() == pytest.approx([60.0, 120.0])
    with pytest.raises(DataError, match="no duration"):
        load_bsn_csv(tmp_path, ["v_abc"], durations={})


@pytest.mark.skipif(not TURN_FILE.is_file(), reason="shared TURN proposals not present")
def test_real_turn_proposals_as_detector_source():
    frame = load_detector_proposals(_cfg("turn", str(TURN_FILE)), ["video_test_0000896", "video_test_0000004"])
    assert set(frame["video_id"]) == {"video_test_0000896", "video_test_0000004"}
    first = frame[frame.video_id == "video_test_0000896"].iloc[0]
    assert first["start"] == pytest.approx(882 / 30) and first["end"] == pytest.approx(1062 / 30)
    assert (frame["end"] > frame["start"]).all()
    with pytest.raises(DataError, match="video_validation_0000051"):
        load_detector_proposals(_cfg("turn", str(TURN_FILE)), ["video_validation_0000051"])


def test_source_config_errors():
    with pytest.raises(ConfigError, match="external_path"):
        load_detector_proposals(_cfg("turn", None), ["v"])
    with pytest.raises(ConfigError, match="bsn.source"):
        load_detector_proposals(_cfg("slidingwindow", "x"), ["v"])


def test_bad_bsn_settings_are_config_errors():
    from talbench.config import load_params, resolve
    from talbench.runners.bsn.train import validate_settings

    bsn = resolve(load_params(), "tiny")["bsn"]
    assert validate_settings(bsn)["window"] == 64
    with pytest.raises(ConfigError, match=r"bsn\.stream"):
        validate_settings({**bsn, "stream": "audio"})
    with pytest.raises(ConfigError, match=r"bsn\.window_overlap"):
        validate_settings({**bsn, "window_overlap": 1.0})
    with pytest.raises(ConfigError, match=r"bsn\.max_proposals"):
        validate_settings({**bsn, "max_proposals": 0})
