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


def test_report_imports_no_heavy_modules():
    code = ("import sys, talbench.eval.report, talbench.ops.nms, talbench.eval.proposals, "
            "talbench.eval.classification; print(sorted(m for m in ('mlflow', 'torch', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
