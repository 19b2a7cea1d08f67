"""``talbench eval`` end to end: JSON round trip, error exit, and no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from helpers.paths import SHARED_DATA
from typer.testing import CliRunner

from talbench.cli import app

DATA = SHARED_DATA
AUTOLOC = DATA / "golden" / "autoloc_thumos14"


def test_cli_json_round_trip(tmp_path):
    out = tmp_path / "res" / "autoloc.json"
    result = CliRunner().invoke(app, [
        "eval", "--gt", str(AUTOLOC / "autoloc_gt.json"), "--pred", str(AUTOLOC / "autoloc_pred.json"),
        "--subset", "TEST", "--tiou", "0.1,0.5,0.9", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "Detection mAP" in result.output
    data = json.loads(out.read_text())
    assert data["tiou"] == [0.1, 0.5, 0.9]
    np.testing.assert_allclose(data["map"], [46.6737, 21.2054, 0.2086], atol=1.5e-4)
    assert data["tie_break"] == "canonical"
    assert data["average_map"] == np.mean(data["map"])
    assert len(data["per_class_ap"]) == 20
    np.testing.assert_allclose(np.mean(list(data["per_class_ap"].values()), axis=0), data["map"], atol=1e-9)
    assert not list(out.parent.glob(".*.tmp"))


def test_cli_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {"v1": [{"label": "x", "segment": [0, 1]}]}}')
    result = CliRunner().invoke(app, ["eval", "--gt", str(AUTOLOC / "autoloc_gt.json"), "--pred", str(bad)])
    assert result.exit_code == 2
    assert "video 'v1' field 'results[0].score' is missing" in " ".join(result.output.split())


def _eval(*args):
    return CliRunner().invoke(app, ["eval", "--gt", str(AUTOLOC / "autoloc_gt.json"), *args])


def test_cli_errors_keep_their_words_and_come_first(tmp_path):
    """Text in brackets used to vanish (printed as rich markup); --tiou 1.5 and a --json folder were tracebacks
    (the folder only after the whole evaluation)."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {"v1": [{"label": "x", "segment": [0, 1, 2], "score": 1}]}}')
    result = _eval("--pred", str(bad))
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "field 'results[0].segment' must be [start, end], got [0, 1, 2]" in result.output
    result = _eval("--pred", str(AUTOLOC / "autoloc_pred.json"), "--tiou", "0.5,1.5")
    assert result.exit_code == 2 and "tIoU thresholds must lie in (0, 1], got [0.5, 1.5]" in result.output
    result = _eval("--pred", str(tmp_path / "absent.json"), "--json", str(tmp_path))  # checked before reading
    assert result.exit_code == 2 and f"{tmp_path}: is a folder; --json needs a file name" in result.output
    result = _eval("--pred", str(AUTOLOC / "autoloc_pred.json"), "--tie-break", "random")
    assert result.exit_code == 2 and "tie_break must be one of canonical, official, reverse" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["bad.json"]  # nothing written


def test_cli_warns_about_predictions_that_cannot_score(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text('{"results": {}}')
    result = _eval("--pred", str(empty))
    assert result.exit_code == 0, result.output
    assert f"warning: {empty}: the file holds no prediction; every class has AP 0" in result.output
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"results": {"video_validation_0000051": [
        {"label": "Diving", "segment": [1.0, 2.0], "score": 0.9}]}}))
    result = _eval("--pred", str(elsewhere), "--subset", "test")
    assert result.exit_code == 0, result.output
    assert "none of its 1 predictions is on a video with ground truth in subset 'test'" in result.output
    assert "Traceback" not in result.output and ".py:" not in result.output  # tidy, no source path


def test_cli_official_tie_order(tmp_path):
    out = tmp_path / "official.json"
    result = _eval("--pred", str(AUTOLOC / "autoloc_pred.json"), "--tiou", "0.5", "--tie-break", "official",
                   "--json", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["tie_break"] == "official" and "tie order official" in result.output


def test_report_imports_no_heavy_modules():
    code = ("import sys, talbench.eval.report, talbench.ops.nms, talbench.eval.proposals, "
            "talbench.eval.classification; print(sorted(m for m in ('mlflow', 'torch', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_eval_command_never_imports_pandas():
    """The command reads its files into numpy columns: importing pandas would cost about a third of its time."""
    code = ("import sys\nfrom talbench.cli import app\n"
            f"sys.argv = ['talbench', 'eval', '--gt', {str(AUTOLOC / 'autoloc_gt.json')!r}, "
            f"'--pred', {str(AUTOLOC / 'autoloc_pred.json')!r}]\n"
            "try:\n    app()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
            "print('pandas imported:', 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Detection mAP" in out.stdout
    assert out.stdout.strip().endswith("pandas imported: False")
