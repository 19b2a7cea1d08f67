"""TAL-Net's benchmark tables through ``talbench run`` on the tiny synthetic data: one model is one run in every
table (reused across tables), the prediction files and the per-video AR parts give back every logged column,
and the claims of tables whose numbers are not legible are judged on the reproduction only."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from talbench.benchmark.results import TableResult
from talbench.benchmark.run import run_table
from talbench.benchmark.schema import BENCHMARKS_DIR, load_benchmark
from talbench.config import load_params
from talbench.leaderboard.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    Rule,
    judge_published,
    judge_reproduced,
)
from talbench.leaderboard.samples import TableSamples

pytestmark = pytest.mark.filterwarnings("ignore:.*absent from the ground truth")
TABLES = ("talnet.table2", "talnet.table4")


@pytest.fixture(scope="module")
def talnet_project(tiny_synthetic, empty_store, tmp_path_factory):
    """A project on the tiny data (params.yaml with data.profile tiny): table 2, then two rows of table 4 (the
    Flow network of table 2 and the full model), for two seeds."""
    synthetic_root, _, _, _ = tiny_synthetic
    root = tmp_path_factory.mktemp("talnet_project")
    params = load_params()
    params["data"]["profile"], params["data"]["synthetic_root"] = "tiny", str(synthetic_root)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (root / "benchmarks").mkdir()
    for table in TABLES:
        shutil.copy(BENCHMARKS_DIR / f"{table}.yaml", root / "benchmarks")
    shutil.copy(empty_store, root / "mlflow.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        monkeypatch.setenv("TALBENCH_MODELS_DIR", str(root / "models"))
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        results = {"talnet.table2": run_table("talnet.table2", seeds=2, workers=1,
                                                    results_dir=root / "results"),
                   "talnet.table4": run_table("talnet.table4", rows="Flow,Late fusion", seeds=2, workers=1,
                                                    results_dir=root / "results")}
        yield root, results


def test_the_full_model_is_one_run_in_every_table(talnet_project):
    root, results = talnet_project
    with_context = next(r for r in results["talnet.table2"]["rows"] if r["name"] == "with context")
    late = next(r for r in results["talnet.table4"]["rows"] if r["name"] == "Late fusion")
    assert not any(run["reused"] for run in with_context["runs"])
    for run, original in zip(late["runs"], with_context["runs"], strict=True):
        assert run["reused"] and run["reused_from"] == original["run_id"]
    # the Flow row loads the table-2 network (another configuration, no training)
    assert len(list((root / "models" / "talnet").glob("*/seed0/checkpoint.json"))) == 2 + 2
    flow = next(r for r in results["talnet.table4"]["rows"] if r["name"] == "Flow")
    assert not any(run["reused"] for run in flow["runs"])
    assert results["talnet.table4"]["eval"]["tiou_thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


@pytest.mark.parametrize("table", TABLES)
def test_columns_are_recomputed_from_the_files_and_claims_judged(talnet_project, table):
    root, results = talnet_project
    bench = load_benchmark(table, root / "benchmarks")
    samples = TableSamples(bench, TableResult.model_validate(results[table]), root, resamples=50, seed=0)
    for row in bench.reproduced_rows:
        if row.name not in [r["name"] for r in results[table]["rows"]]:
            continue
        for column in bench.metrics:
            values = samples.samples(row.name, column)  # a recomputed value differing from the record raises
            assert values.seeds == (0, 1) and values.resampled.shape == (2, 50), (row.name, column)
            assert np.all((values.resampled >= 0) & (values.resampled <= 100))
    for claim in bench.claims:  # the numbers are not legible: n/a on the paper, a verdict on the reproduction
        assert judge_published(bench, claim).verdict == NOT_APPLICABLE
        verdict = judge_reproduced(bench, claim, samples.samples, Rule(resamples=50), synthetic=True).verdict
        # table 4 ran two of its rows: claims naming the others have no numbers
        assert verdict in ((HOLDS, FAILS, INCONCLUSIVE) if table == "talnet.table2" else (NOT_APPLICABLE,)), claim.text
