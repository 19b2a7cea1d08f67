"""AR@AN on the real TURN proposals and hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.paths import SHARED_DATA

from talbench.eval.io import load_ground_truth, load_turn_proposals
from talbench.eval.proposals import TALNET_AR_TIOU, average_recall, recall_by_video, recall_table

DATA = SHARED_DATA


def test_talnet_tiou_grid():
    assert TALNET_AR_TIOU == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def test_ar_at_an_on_real_turn_proposals():
    gt = load_ground_truth(DATA / "thumos14" / "annotations" / "thumos14.json", "test")
    props = load_turn_proposals(DATA / "thumos14" / "proposals_turn" / "test_proposals_from_TURN.txt")
    result = average_recall(gt, props, [50, 100, 200, 500, 1000])
    ar = [result["ar"][k] for k in ("50", "100", "200", "500", "1000")]
    np.testing.assert_allclose(ar, [19.3297, 27.6301, 34.8638, 42.8529, 47.3604], atol=1e-3)
    assert np.all(np.diff(ar) > 0)
    assert result["n_gt"] == 3358 and result["n_videos"] == 212
    assert result["recall"]["100"][0] == pytest.approx(54.8243, abs=1e-3)  # recall@100 at tIoU 0.5
    parts = recall_by_video(gt, props, [50, 100, 200, 500, 1000])
    for an, value in result["ar"].items():  # the per-video parts add up to AR@AN (what the bootstrap resamples)
        part = parts[parts["an"] == int(an)]
        assert len(part) == 212 and part["instances"].sum() == 3358  # one row per video with GT
        assert 100 * part["recalled"].sum() / part["instances"].sum() == pytest.approx(value, abs=1e-9)


def _hand_case():
    gt = pd.DataFrame({"video_id": ["a", "a", "b"], "label": ["x", "y", "x"],
                       "start": [0.0, 20.0, 0.0], "end": [10.0, 30.0, 10.0]})
    props = pd.DataFrame({"video_id": ["a", "a", "a", "b", "c"],
                          "start": [0.0, 20.0, 0.0, 5.0, 0.0], "end": [10.0, 29.0, 9.0, 10.0, 10.0],
                          "score": [0.9, 0.5, 0.8, 0.7, 1.0]})
    return gt, props


def test_recall_table_by_rank_and_threshold():
    gt, props = _hand_case()
    table = recall_table(gt, props, [1, 2, 3], [0.5, 0.9, 1.0])
    # AN 1: a keeps [0,10] (recalls GT0 at 1.0), b keeps [5,10] (tIoU 0.5 with GT2)
    assert table.loc[1].tolist() == pytest.approx([200 / 3, 100 / 3, 100 / 3])
    # AN 3: a's [20,29] (tIoU 0.9) recalls GT1 at 0.5 and 0.9
    assert table.loc[3].tolist() == pytest.approx([100.0, 200 / 3, 100 / 3])
    assert table.loc[2].tolist() == table.loc[1].tolist()  # a's second proposal [0,9] adds nothing new
    parts = recall_by_video(gt, props, [1, 3], [0.5, 0.9, 1.0]).set_index(["an", "video_id"])
    # AN 1: a recalls GT0 at all three thresholds, GT1 at none; b recalls GT2 at 0.5 only
    assert parts.loc[(1, "a")].tolist() == [1.0, 2] and parts.loc[(1, "b")].tolist() == [pytest.approx(1 / 3), 1]
    assert parts.loc[(3, "a"), "recalled"] == pytest.approx(1 + 2 / 3)


def test_recall_bad_arguments():
    gt, props = _hand_case()
    with pytest.raises(ValueError, match="AN values must be positive"):
        recall_table(gt, props, [0], [0.5])
    with pytest.raises(ValueError, match=r"tIoU thresholds must lie in \(0, 1\]"):
        recall_table(gt, props, [1], [1.5])
