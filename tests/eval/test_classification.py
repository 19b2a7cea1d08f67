"""RefactorNet's table-3 metrics (classification accuracy and mean tIoU of high-quality proposals) on hand cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from talbench.eval.classification import high_quality_proposal_metrics


def test_high_quality_metrics():
    gt = pd.DataFrame({"video_id": ["a", "a", "a"], "label": ["x", "y", "z"],
                       "start": [0.0, 0.0, 50.0], "end": [10.0, 10.0, 60.0]})
    props = pd.DataFrame({"video_id": ["a", "a", "a", "a", "b"], "label": ["y", "z", "z", "x", "x"],
                          "start": [0.0, 0.5, 50.0, 30.0, 0.0], "end": [9.0, 10.0, 57.0, 40.0, 10.0]})
    out = high_quality_proposal_metrics(gt, props)
    # high quality: [0,9] (0.9, label y matches a GT), [0.5,10] (0.95, z does not match x/y); [50,57] is 0.7
    assert out["n_high_quality"] == 2 and out["n_proposals"] == 5
    assert out["class_accuracy"] == pytest.approx(50.0)
    assert out["mean_tiou"] == pytest.approx(92.5)
    none = high_quality_proposal_metrics(gt, props.iloc[[3]])
    assert none["n_high_quality"] == 0 and np.isnan(none["class_accuracy"])


def test_two_ground_truths_above_the_threshold_accept_either_label():
    """A segment annotated twice (THUMOS14 has such pairs): a proposal above 0.7 with both counts as correct
    with either label; its tIoU is the best one."""
    gt = pd.DataFrame({"video_id": ["a", "a"], "label": ["x", "y"], "start": [0.0, 0.0], "end": [10.0, 10.5]})
    props = pd.DataFrame({"video_id": ["a", "a"], "label": ["y", "z"], "start": [0.0, 0.2], "end": [10.0, 10.2]})
    out = high_quality_proposal_metrics(gt, props)
    assert out["n_high_quality"] == 2 and out["class_accuracy"] == pytest.approx(50.0)
    # [0, 10] (label y): 1.0 with x, 10 / 10.5 with y, both above 0.7: correct; [0.2, 10.2] (label z): wrong,
    # its best tIoU 9.8 / 10.2 with x (10 / 10.5 with y)
    assert out["mean_tiou"] == pytest.approx(100 * (1.0 + 9.8 / 10.2) / 2)
