"""Detection mAP: real goldens, agreement with the literal official loop, tie orders, properties, decisions,
bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers.eval_reference import interpolated_prec_rec, reference_map
from helpers.paths import REPO, SHARED_DATA

from talbench.errors import ConfigError, DataError
from talbench.eval.detection import TIE_BREAKS, evaluate_detection, interpolated_ap, tie_sensitivity
from talbench.eval.io import load_cbr_detections, load_ground_truth, load_predictions
from talbench.eval.tiou import paired_tiou, pairwise_tiou

DATA = SHARED_DATA
AUTOLOC = DATA / "golden" / "autoloc_thumos14"
CBR = DATA / "golden" / "cbr_thumos14"
THUMOS_JSON = DATA / "thumos14" / "annotations" / "thumos14.json"

# canonical tie order: the same on every CPU (AutoLoc's 16 tied predictions change nothing in any order)
AUTOLOC_MAP = [46.6737, 41.7076, 35.7702, 29.0167, 21.2054, 13.3954, 5.7969, 1.5566, 0.2086]
CBR_MAP = [59.4983, 56.1850, 49.9555, 41.8059, 31.3171, 18.4356, 8.8958]


def _thresholds(lo, hi, n):
    return np.linspace(lo, hi, n)


def test_autoloc_golden():
    gt = load_ground_truth(AUTOLOC / "autoloc_gt.json", "test")
    pred = load_predictions(AUTOLOC / "autoloc_pred.json")
    assert (len(gt), len(pred)) == (3234, 20763)
    result = evaluate_detection(gt, pred, _thresholds(0.1, 0.9, 9))
    np.testing.assert_allclose(result.map, AUTOLOC_MAP, atol=1e-4 + 5e-5)
    assert abs(result.average_map - 21.7035) < 1e-4 + 5e-5
    assert result.per_class_ap.shape == (20, 9)
    np.testing.assert_allclose(result.per_class_ap.mean(axis=0).to_numpy(), result.map, rtol=1e-12)


def _cbr():
    gt = load_ground_truth(THUMOS_JSON, "Test")
    return gt, load_cbr_detections(CBR / "CBR_THUMOS-14_IoU0.5.txt")


def test_cbr_golden_with_inverted_rows():
    gt, pred = _cbr()
    assert (len(gt), len(pred), int((pred["end"] < pred["start"]).sum())) == (3358, 12653, 1771)
    result = evaluate_detection(gt, pred, _thresholds(0.1, 0.7, 7))
    assert result.tie_break == "canonical"
    np.testing.assert_allclose(result.map, CBR_MAP, atol=1e-4 + 5e-5)


@pytest.mark.slow
@pytest.mark.parametrize("golden", ["autoloc", "cbr"])
def test_official_order_equals_the_official_loop_on_this_machine(golden):
    """The official order depends on numpy's sort path (the CPU): it is checked against the official loop run
    here, not against fixed numbers (13-25 s each for the loop)."""
    if golden == "autoloc":
        gt, pred = load_ground_truth(AUTOLOC / "autoloc_gt.json", "test"), load_predictions(AUTOLOC / "autoloc_pred.json")
        thresholds = _thresholds(0.1, 0.9, 9)
    else:
        (gt, pred), thresholds = _cbr(), _thresholds(0.1, 0.7, 7)
    ref_class, ref_map = reference_map(gt, pred, thresholds, tie_break="official")
    result = evaluate_detection(gt, pred, thresholds, tie_break="official")
    np.testing.assert_allclose(result.map, ref_map, atol=1e-10)
    np.testing.assert_allclose(result.per_class_ap.to_numpy(), ref_class, atol=1e-10)


def test_canonical_order_does_not_depend_on_the_cpu():
    """With numpy's SIMD sorts switched off (NPY_DISABLE_CPU_FEATURES: another sort path, as on a CPU without
    AVX-512 or AVX2) the canonical mAP of the CBR golden is bit for bit the same."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    found = [feature for feature in __cpu_dispatch__ if __cpu_features__.get(feature)]
    if not found:
        pytest.skip("numpy dispatches no SIMD extension on this CPU: there is only one sort path to compare")
    code = ("import json, numpy as np; from talbench.eval.io import load_ground_truth, load_cbr_detections; "
            "from talbench.eval.detection import evaluate_detection; "
            f"r = evaluate_detection(load_ground_truth({str(THUMOS_JSON)!r}, 'Test'), "
            f"load_cbr_detections({str(CBR / 'CBR_THUMOS-14_IoU0.5.txt')!r}), np.linspace(0.1, 0.7, 7)); "
            "print(json.dumps(r.map.tolist()))")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(found), "PYTHONPATH": str(REPO)}
    other_path = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                           check=True).stdout)
    gt, pred = _cbr()
    assert other_path == evaluate_detection(gt, pred, _thresholds(0.1, 0.7, 7)).map.tolist()


def test_tie_sensitivity_of_cbr_golden():
    gt, pred = _cbr()
    sens = tie_sensitivity(gt, pred, _thresholds(0.1, 0.7, 7))
    np.testing.assert_allclose(sens.canonical.map, CBR_MAP, atol=1.5e-4)
    assert [r.tie_break for r in sens.results] == ["canonical", "official", "reverse"]
    assert sens.n_tied_predictions == 497
    assert 0.005 < sens.max_spread < 0.5  # ties move this real output's mAP by ~0.03 points
    maps = np.stack([r.map for r in sens.results])
    np.testing.assert_allclose(sens.spread, maps.max(axis=0) - maps.min(axis=0))
    assert sens.spread_average_map <= sens.max_spread


def _random_case(seed: int, n_videos=6, n_labels=4, n_gt=40, n_pred=300):
    rng = np.random.default_rng(seed)
    videos = [f"v{i}" for i in range(n_videos)]
    labels = [f"c{i}" for i in range(n_labels)]
    gs = rng.uniform(0, 90, n_gt)
    gt = pd.DataFrame({
        "video_id": rng.choice(videos, n_gt), "label": rng.choice(labels, n_gt),
        "start": gs, "end": gs + rng.uniform(1, 15, n_gt),
    })
    base = gt.iloc[rng.integers(0, n_gt, n_pred)].reset_index(drop=True)
    jitter = rng.normal(0, 2.0, (n_pred, 2))
    pred = pd.DataFrame({
        "video_id": base["video_id"].to_numpy(), "label": base["label"].to_numpy(),
        "start": base["start"].to_numpy() + jitter[:, 0], "end": base["end"].to_numpy() + jitter[:, 1],
        "score": np.round(rng.uniform(0, 1, n_pred), 1),  # many ties
    })
    # some predictions with another label, on an unannotated video, inverted
    swap = rng.random(n_pred) < 0.2
    pred.loc[swap, "label"] = rng.choice(labels, int(swap.sum()))
    pred.loc[rng.random(n_pred) < 0.05, "video_id"] = "unannotated"
    inv = rng.random(n_pred) < 0.05
    pred.loc[inv, ["start", "end"]] = pred.loc[inv, ["end", "start"]].to_numpy()
    return gt, pred


def _dense_case(seed: int, n_gt: int = 60, n_pred: int = 400):
    """One video, two labels, integer segments: many exact tIoU ties between GTs, and score ties."""
    rng = np.random.default_rng(seed)
    gs = rng.integers(0, 40, n_gt).astype(float)
    gt = pd.DataFrame({"video_id": "v", "label": rng.choice(["a", "b"], n_gt), "start": gs,
                       "end": gs + rng.integers(2, 8, n_gt)})
    ps = rng.integers(0, 40, n_pred).astype(float)
    pred = pd.DataFrame({"video_id": "v", "label": rng.choice(["a", "b"], n_pred), "start": ps,
                         "end": ps + rng.integers(2, 8, n_pred), "score": np.round(rng.uniform(0, 1, n_pred), 1)})
    return gt, pred


@pytest.mark.parametrize("case", [("random", 0), ("random", 1), ("random", 2), ("dense", 0), ("dense", 1)])
@pytest.mark.parametrize("tie_break", TIE_BREAKS)
def test_agrees_with_literal_official_loop(case, tie_break):
    """Every tie order equals the official loop sorting the same way (official: on this machine)."""
    kind, seed = case
    gt, pred = _random_case(seed) if kind == "random" else _dense_case(seed)
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    ref_class, ref_map = reference_map(gt, pred, thresholds, tie_break=tie_break)
    result = evaluate_detection(gt, pred, thresholds, tie_break=tie_break)
    np.testing.assert_allclose(result.per_class_ap.to_numpy(), ref_class, atol=1e-10)
    np.testing.assert_allclose(result.map, ref_map, atol=1e-10)


def test_tied_ground_truths_follow_the_documented_rule():
    """Two GTs at exactly the same tIoU from the first prediction: canonical gives it the later GT, reverse the
    earlier; the second prediction then finds only the other one within reach."""
    gt = pd.DataFrame({"video_id": "v", "label": "x", "start": [0.0, 4.0], "end": [6.0, 10.0]})
    pred = pd.DataFrame({"video_id": "v", "label": "x", "start": [2.0, 0.0], "end": [8.0, 5.0],
                         "score": [0.9, 0.8]})
    # pred 0 has tIoU 0.5 with both; pred 1 has tIoU 5/6 with GT 0 and 1/10 with GT 1
    canonical = evaluate_detection(gt, pred, [0.5], tie_break="canonical")
    reverse = evaluate_detection(gt, pred, [0.5], tie_break="reverse")
    assert canonical.map[0] == pytest.approx(100.0)  # pred 0 -> GT 1, pred 1 -> GT 0
    assert reverse.map[0] == pytest.approx(50.0)  # pred 0 -> GT 0, pred 1 finds nothing


def test_crowded_ground_truth_agrees_with_loop():
    """Many overlapping GT and predictions in one video: long proposal chains in the deferred acceptance."""
    rng = np.random.default_rng(7)
    gs = np.sort(rng.uniform(0, 30, 30))
    gt = pd.DataFrame({"video_id": "v", "label": "a", "start": gs, "end": gs + rng.uniform(2, 6, 30)})
    ps = rng.uniform(0, 30, 400)
    pred = pd.DataFrame({"video_id": "v", "label": "a", "start": ps, "end": ps + rng.uniform(1, 7, 400),
                         "score": rng.uniform(0, 1, 400)})
    thresholds = [0.1, 0.2, 0.3, 0.5]
    _, ref_map = reference_map(gt, pred, thresholds)
    np.testing.assert_allclose(evaluate_detection(gt, pred, thresholds).map, ref_map, atol=1e-10)


def test_perfect_predictions_give_100():
    gt, _ = _random_case(3)
    pred = gt.assign(score=np.linspace(1.0, 0.1, len(gt)))
    result = evaluate_detection(gt, pred, [0.5, 0.95, 1.0])
    np.testing.assert_allclose(result.map, 100.0)
    assert result.average_map == pytest.approx(100.0)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tie_break", TIE_BREAKS)
def test_lowest_scored_false_positive_never_raises_ap(seed, tie_break):
    """Holds for distinct scores; with tied scores only for the stable orders (canonical, reverse): numpy's
    unstable ``argsort`` may reorder ties once a row is added (see docs/evaluation.md)."""
    gt, pred = _random_case(seed)
    if tie_break == "official":
        pred = pred.assign(score=pred["score"] + np.arange(len(pred)) * 1e-6)  # distinct scores
    thresholds = [0.3, 0.5, 0.7]
    before = evaluate_detection(gt, pred, thresholds, tie_break=tie_break)
    row = gt.iloc[[seed]]
    extra = pd.DataFrame({"video_id": row["video_id"].to_numpy(), "label": row["label"].to_numpy(),
                          "start": [500.0], "end": [510.0], "score": [pred["score"].min() - 1.0]})
    after = evaluate_detection(gt, pd.concat([pred, extra], ignore_index=True), thresholds, tie_break=tie_break)
    assert after.n_pred == before.n_pred + 1
    assert np.all(after.per_class_ap.to_numpy() <= before.per_class_ap.to_numpy() + 1e-12)
    assert np.all(after.map <= before.map + 1e-12)


def test_prediction_on_video_without_gt_is_false_positive():
    gt = pd.DataFrame({"video_id": ["a"], "label": ["x"], "start": [0.0], "end": [10.0]})
    pred = pd.DataFrame({"video_id": ["b", "a"], "label": ["x", "x"], "start": [0.0, 0.0], "end": [10.0, 10.0],
                         "score": [0.9, 0.5]})
    # ranks: FP then TP -> precision 1/2 at recall 1 -> AP 0.5
    assert evaluate_detection(gt, pred, [0.5]).map[0] == pytest.approx(50.0)


def test_each_gt_matched_once_and_highest_tiou_first():
    gt = pd.DataFrame({"video_id": "v", "label": "x", "start": [0.0, 8.0], "end": [10.0, 18.0]})
    pred = pd.DataFrame({"video_id": "v", "label": "x", "start": [1.0, 0.0, 0.0], "end": [10.0, 10.0, 10.0],
                         "score": [0.9, 0.8, 0.7]})
    # first takes GT0 (tIoU 0.9), second finds GT0 locked and GT1 below 0.5 -> FP, third FP
    result = evaluate_detection(gt, pred, [0.5])
    assert result.map[0] == pytest.approx(50.0)


def test_zero_length_segments_never_match():
    gt = pd.DataFrame({"video_id": "v", "label": "x", "start": [5.0, 1.0], "end": [5.0, 3.0]})
    pred = pd.DataFrame({"video_id": "v", "label": "x", "start": [5.0, 1.0], "end": [5.0, 3.0],
                         "score": [0.9, 0.8]})
    # official: 0/0 = NaN counts as TP; here tIoU 0 -> first is FP, second TP: AP = 1/2 * 1/2
    assert evaluate_detection(gt, pred, [0.5]).map[0] == pytest.approx(25.0)
    assert pairwise_tiou(np.array([[5.0, 5.0]]), np.array([[5.0, 5.0], [4.0, 6.0]])).tolist() == [[0.0, 0.0]]


def test_unknown_labels_are_ignored_with_counted_warning():
    gt = pd.DataFrame({"video_id": ["a"], "label": ["x"], "start": [0.0], "end": [10.0]})
    pred = pd.DataFrame({"video_id": ["a", "a", "a"], "label": ["y", "x", "y"], "start": [0.0] * 3,
                         "end": [10.0] * 3, "score": [0.9, 0.5, 0.4]})
    with pytest.warns(UserWarning, match=r"2 prediction\(s\) with label\(s\) absent"):
        result = evaluate_detection(gt, pred, [0.5])
    assert result.ignored_predictions == {"y": 2}
    assert result.map[0] == pytest.approx(100.0)
    assert list(result.per_class_ap.index) == ["x"]


def test_class_without_predictions_counts_zero():
    gt = pd.DataFrame({"video_id": ["a", "a"], "label": ["x", "y"], "start": [0.0, 20.0], "end": [10.0, 30.0]})
    pred = pd.DataFrame({"video_id": ["a"], "label": ["x"], "start": [0.0], "end": [10.0], "score": [1.0]})
    result = evaluate_detection(gt, pred, [0.5, 0.7])
    np.testing.assert_allclose(result.map, [50.0, 50.0])
    assert result.per_class_ap.loc["y"].tolist() == [0.0, 0.0]


def test_to_json_layout():
    gt, pred = _random_case(4)
    out = evaluate_detection(gt, pred, [0.3, 0.5], tie_break="official").to_json()
    assert list(out) == ["tiou", "map", "average_map", "per_class_ap", "tie_break"]
    assert out["tie_break"] == "official"
    assert out["tiou"] == [0.3, 0.5]
    assert all(len(v) == 2 for v in out["per_class_ap"].values())
    assert out["average_map"] == pytest.approx(np.mean(out["map"]))


def test_interpolated_ap_matches_official_loop():
    rng = np.random.default_rng(0)
    tp = rng.random((3, 50)) < 0.4
    tpc, fpc = np.cumsum(tp, axis=1), np.cumsum(~tp, axis=1)
    prec, rec = tpc / (tpc + fpc), tpc / 30.0
    ours = interpolated_ap(prec, rec)
    np.testing.assert_allclose(ours, [interpolated_prec_rec(prec[i], rec[i]) for i in range(3)], atol=1e-12)


def test_tiou_values():
    assert paired_tiou(np.array([[0.0, 10.0], [2.0, 4.0]]), np.array([[5.0, 15.0], [6.0, 8.0]])).tolist() == [
        pytest.approx(5 / 15), 0.0]
    assert pairwise_tiou(np.array([[4.0, 2.0]]), np.array([[2.0, 4.0]])).tolist() == [[0.0]]  # inverted
    with pytest.raises(ValueError, match="shape"):
        pairwise_tiou(np.zeros(3), np.zeros((2, 2)))


def test_bad_input_errors_name_video_and_field():
    gt = pd.DataFrame({"video_id": ["a"], "label": ["x"], "start": [0.0], "end": [10.0]})
    pred = pd.DataFrame({"video_id": ["vid7"], "label": ["x"], "start": [0.0], "end": [np.nan], "score": [1.0]})
    with pytest.raises(DataError, match=r"predictions: video 'vid7' field 'end' is not a finite number"):
        evaluate_detection(gt, pred, [0.5])
    with pytest.raises(DataError, match=r"ground truth: missing column\(s\) \['end'\]"):
        evaluate_detection(gt.drop(columns="end"), pred, [0.5])
    with pytest.raises(ConfigError, match=r"tIoU thresholds must lie in \(0, 1\]"):
        evaluate_detection(gt, pred.fillna(1.0), [0.0, 0.5])
    with pytest.raises(ConfigError, match="tie_break must be one of canonical, official, reverse"):
        evaluate_detection(gt, pred.fillna(1.0), [0.5], tie_break="random")


def test_video_weights_equal_copying_the_videos():
    """AP with a video counted k times is the AP of the list with k copies of that video (what one bootstrap
    resample of the test videos is), for every threshold and class."""
    from talbench.eval.detection import average_precision, match_detections

    rng = np.random.default_rng(7)
    videos = [f"v{i}" for i in range(6)]
    gt = pd.DataFrame([(v, c, s, s + rng.uniform(1, 4)) for v in videos for c in ("x", "y")
                       for s in rng.uniform(0, 20, rng.integers(1, 4))], columns=["video_id", "label", "start", "end"])
    pred = pd.DataFrame([(v, c, s, s + rng.uniform(1, 4), rng.uniform()) for v in videos for c in ("x", "y")
                         for s in rng.uniform(0, 20, 8)], columns=["video_id", "label", "start", "end", "score"])
    thresholds = [0.3, 0.5, 0.7]
    counts = np.array([2.0, 0.0, 1.0, 3.0, 1.0, 0.0])
    matching = match_detections(gt, pred, thresholds, videos=videos, tie_break="canonical")
    weighted = average_precision(matching, counts[None, :])[0]
    copies = []
    for k, (video, n) in enumerate(zip(videos, counts, strict=True)):
        for copy in range(int(n)):
            copies.append((video, f"{video}#{copy}", k))
    gt_copies = pd.concat([gt[gt.video_id == v].assign(video_id=name) for v, name, _ in copies], ignore_index=True)
    pred_copies = pd.concat([pred[pred.video_id == v].assign(video_id=name) for v, name, _ in copies],
                            ignore_index=True)
    expected = evaluate_detection(gt_copies, pred_copies, thresholds, tie_break="canonical")
    np.testing.assert_allclose(weighted * 100, expected.per_class_ap.loc[list(matching.classes)].to_numpy(), atol=1e-9)
    plain = average_precision(matching)[0]
    np.testing.assert_array_equal(plain.mean(axis=0) * 100, evaluate_detection(gt, pred, thresholds,
                                                                               tie_break="canonical").map)
