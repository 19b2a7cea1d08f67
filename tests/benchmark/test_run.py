"""``talbench run`` against a temporary MLflow store: nesting, tags, params, artifacts, reuse, results JSON,
determinism, scoped configurations, ad-hoc results, stale data, interruptions."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.linear_runner import RUNNER, TRAINED
from helpers.mlflow_search import search_runs
from helpers.paths import REPO
from helpers.project import TABLE, benchmark_yaml, enter_workdir
from rich.console import Console

from talbench.benchmark.run import run_table
from talbench.config import load_params, resolve
from talbench.errors import ConfigError, DataError
from talbench.runners.families import run_row


def search(experiment: str = "talbench", filter_string: str = ""):
    return search_runs(experiment_names=[experiment], filter_string=filter_string)


@pytest.fixture(scope="module")
def first_execution(tracking_project, empty_store, tmp_path_factory):
    """One execution of the test table (3 rows x 2 seeds), shared by the tests that read it back."""
    folder = tmp_path_factory.mktemp("first")
    with pytest.MonkeyPatch.context() as monkeypatch:
        enter_workdir(monkeypatch, tracking_project, empty_store, folder)
        before = len(TRAINED)
        results = run_table(TABLE, results_dir=folder / "results")
        yield results, folder, TRAINED[before:]


def test_results_file_format(first_execution):
    results, tmp_path, _ = first_execution
    on_disk = json.loads((tmp_path / "results" / f"{TABLE}.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["table"] == TABLE and on_disk["paper"] == "dnet"
    assert on_disk["seeds"] == [0, 1] and on_disk["data"]["source"] == "synthetic"
    assert on_disk["data"]["profile"] == "unit" and len(on_disk["data"]["checksum"]) == 12
    assert on_disk["data"]["segment_policy"]["segment_policy"] == "clip"
    assert on_disk["tracking_uri"] == "local store (outside the repository)" and on_disk["created"].endswith("Z")
    assert on_disk["git_commit"] == "unknown" and on_disk["git_dirty"] is True  # the project is not in git
    from talbench.benchmark.results import TableResult

    TableResult.model_validate(on_disk)  # the leaderboard's reader accepts the file
    # the reference line is not run; the three reproduced rows are, in file order
    assert [row["name"] for row in on_disk["rows"]] == ["Linear", "Linear (flow x2)", "Linear (5 epochs)"]
    for row in on_disk["rows"]:
        assert [run["seed"] for run in row["runs"]] == [0, 1]
        for column in ("rgb", "flow", "fusion", "params_m"):
            values = [run["metrics"][column] for run in row["runs"]]
            assert row["mean"][column] == pytest.approx(statistics.fmean(values))
            assert row["std"][column] == pytest.approx(statistics.stdev(values))
        for run in row["runs"]:  # the benchmark's `reported` metrics, recorded per run
            assert set(run["reported"]) == {"train_s", "row_s"} and run["reported"]["row_s"] > 0
    assert on_disk["rows"][0]["mean"]["fusion"] > 5.0  # a real, learning model


def test_nested_runs_tags_params_artifacts(first_execution):
    results, _, _ = first_execution
    parent_id = results["parent_run_id"]
    children = search(filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 3 * 2
    assert set(children["status"]) == {"FINISHED"}
    for tag in (
        "paper",
        "table",
        "row",
        "dataset",
        "features",
        "profile",
        "seed",
        "git_commit",
        "git_dirty",
        "data_checksum",
        "device",
        "device_key",
        "mixed_precision",
        "config_hash",
        "train_hash",
        "code_hash",
    ):
        assert children[f"tags.{tag}"].notna().all(), tag
    # where each row ran, as its worker resolved run.device (auto: the CPU on a machine without CUDA)
    from talbench.runners.common.device import describe, device_key, resolve_device

    assert set(children["tags.device"]) == {describe(resolve_device("auto"))}
    assert results["devices"] == sorted(set(children["tags.device"]))  # the results file names them too
    assert set(children["tags.device_key"]) == {device_key(resolve_device("auto"))}
    assert set(children["tags.mixed_precision"]) == {"none"}
    assert set(children["tags.table"]) == {TABLE} and set(children["tags.seed"]) == {"0", "1"}
    assert set(children["tags.profile"]) == {"unit"} and set(children["tags.dataset"]) == {"synthetic"}
    few = children[children["tags.row"] == "Linear (5 epochs)"]
    assert set(few["params.baseline.epochs"]) == {"5"}  # params come back as strings
    assert set(few["params.row"]) == {"Linear (5 epochs)"}  # the x axis of the documented compare plot
    assert "params.model.runner" not in children.columns  # shared sections: in config.json, not params
    assert set(few["tags.mlflow.runName"]) == {"s0 Linear (5 epochs)", "s1 Linear (5 epochs)"}
    # metrics: every tIoU per stream, no '@'
    assert {
        "metrics.fusion/mAP_0.5",
        "metrics.rgb/average_mAP",
        "metrics.params_m",
        "metrics.time/train_s",
    } <= set(children.columns)
    # the results file holds exactly the logged numbers
    first_row_run = results["rows"][0]["runs"][0]
    logged = children.set_index("run_id").loc[first_row_run["run_id"]]
    assert logged["metrics.fusion/mAP_0.5"] == first_row_run["metrics"]["fusion"]
    # artifacts: resolved config and predictions in the ActivityNet result format
    from mlflow.tracking import MlflowClient

    from talbench.eval.io import load_predictions

    client = MlflowClient()
    names = {a.path for a in client.list_artifacts(first_row_run["run_id"])}
    assert {"config.json", "param_counts.json", "timings.json", "predictions"} <= names
    folder = client.download_artifacts(first_row_run["run_id"], "predictions")
    fusion = load_predictions(f"{folder}/fusion.json")
    assert len(fusion) > 0 and set(fusion.columns) >= {"video_id", "label", "start", "end", "score"}
    with open(client.download_artifacts(first_row_run["run_id"], "config.json")) as f:
        config = json.load(f)
    assert config["model"]["runner"] == RUNNER and config["data"]["profile"] == "unit"
    parent = search(filter_string="tags.kind = 'table'")
    assert list(parent["run_id"]) == [parent_id]
    # the parent's line in the UI shows each row's mean per column instead of "-"
    assert parent["metrics.fusion/Linear 5 epochs"].iloc[0] == pytest.approx(results["rows"][2]["mean"]["fusion"])
    assert parent["metrics.rgb/Linear"].iloc[0] == pytest.approx(results["rows"][0]["mean"]["rgb"])
    assert parent["metrics.data/segments_clipped"].iloc[0] == 0


def test_test_time_variant_reuses_trained_model(first_execution):
    import pandas as pd

    results, folder, trained = first_execution
    base, variant, few = results["rows"]
    assert base["train_hash"] == variant["train_hash"] != few["train_hash"]
    assert base["config_hash"] != variant["config_hash"]
    # trained: base row and the 5-epoch row, once per seed; the variant loaded the base row's checkpoint
    assert len(trained) == len(set(trained)) == 4
    assert str(base["runs"][0]["run_id"]) != str(variant["runs"][0]["run_id"])
    assert variant["runs"][0]["metrics"]["rgb"] == base["runs"][0]["metrics"]["rgb"]
    fused = [pd.read_parquet(folder / row["runs"][0]["predictions"]).query("stream == 'fusion'")
             for row in (base, variant)]
    assert not fused[0]["score"].reset_index(drop=True).equals(fused[1]["score"].reset_index(drop=True))


def test_second_execution_reuses_runs(first_execution, monkeypatch, capfd):
    first, tmp_path, _ = first_execution

    def must_not_run(*args, **kwargs):
        raise AssertionError("a run with the same config, seed, data and code was trained again")

    monkeypatch.setattr("talbench.runners.families.run_row", must_not_run)
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    second = run_table(TABLE, rows="Linear,3", results_dir=tmp_path / "again" / "results")
    assert "Downloading artifacts" not in capfd.readouterr().err  # no MLflow progress bar per reused run
    assert [row["name"] for row in second["rows"]] == ["Linear", "Linear (5 epochs)"]
    earlier = {(r["name"], run["seed"]): run for r in first["rows"] for run in r["runs"]}
    for row in second["rows"]:
        for run in row["runs"]:
            assert run["reused"] is True
            assert run["reused_from"] == earlier[(row["name"], run["seed"])]["run_id"]
            assert run["metrics"] == earlier[(row["name"], run["seed"])]["metrics"]
            assert run["reported"] == earlier[(row["name"], run["seed"])]["reported"]  # from the reused run
    reused = search(filter_string=f"tags.mlflow.parentRunId = '{second['parent_run_id']}'")
    assert set(reused["tags.reused"]) == {"true"} and len(reused) == 4
    originals = search(filter_string=f"tags.mlflow.parentRunId = '{first['parent_run_id']}'")
    assert set(reused["tags.device"]) == set(originals["tags.device"])  # where the reused numbers were computed
    import pandas as pd  # a reused run's prediction file comes from its original run's artifacts: the same table

    for row in second["rows"]:
        for run in row["runs"]:
            original = earlier[(row["name"], run["seed"])]
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "again" / run["predictions"]),
                                          pd.read_parquet(tmp_path / original["predictions"]))


def test_other_sections_never_rerun_a_row(first_execution, monkeypatch):
    """Rows carry only the shared sections and their family's: changing another family's parameter, the
    leaderboard's or the tuning's reuses every run (the reuse lookup keys on the scoped configuration)."""
    import yaml

    first, tmp_path, _ = first_execution

    def must_not_run(*args, **kwargs):
        raise AssertionError("a change outside the row's family retrained it")

    params = load_params("params.yaml")
    params["baseline_b"]["epochs"] = 7
    params["leaderboard"]["margin"] = 3.0
    params["tune"]["experiment"] = "elsewhere"
    params["refactornet"]["beta"] = 0.5
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr("talbench.runners.families.run_row", must_not_run)
    again = run_table(TABLE, params_path=tmp_path / "other.yaml", results_dir=tmp_path / "other" / "results")
    assert all(run["reused"] for row in again["rows"] for run in row["runs"])
    assert [r["config_hash"] for r in again["rows"]] == [r["config_hash"] for r in first["rows"]]
    logged = search(filter_string=f"tags.mlflow.parentRunId = '{again['parent_run_id']}'")
    sections = {c.split(".")[1] for c in logged.columns if c.startswith("params.")}
    assert sections == {"row", "baseline", "test_time"}  # the row and its family's own sections only


def test_real_rows_are_scoped_to_their_family():
    """The D-Net, RefactorNet and TAL-Net rows of the pipeline: their configuration holds their family's sections
    only, and a key of another family, the leaderboard, the tuning or the pipeline leaves their hashes as they are;
    rows that are the same model in several tables have one configuration (their runs are reused)."""
    from talbench.benchmark.rows import row_config
    from talbench.benchmark.schema import load_benchmark
    from talbench.config import config_hash, train_hash

    def hashes(params, table, row):
        bench = load_benchmark(table)
        cfg = row_config(params, None, bench, bench.row(row), table)
        return set(cfg), config_hash(cfg), train_hash(cfg)

    params = load_params()
    dnet = hashes(params, "dnet.table1", "+ D-Net")
    refactor = hashes(params, "refactornet.table2", "Baseline + RefactorNet")
    shared = {"model", "data", "eval", "run", "test_time", "bsn", "detector", "anet"}
    assert dnet[0] == shared | {"dnet"} and refactor[0] == shared | {"refactornet"}
    for section, key, value in (("refactornet", "beta", 0.5), ("leaderboard", "margin", 3.0),
                                ("tune", "storage", "x.db"), ("pipeline", "seeds", 9)):
        changed = {**params, section: {**params[section], key: value}}
        assert hashes(changed, "dnet.table1", "+ D-Net") == dnet, section
    changed = {**params, "dnet": {**params["dnet"], "lambda1": 0.25}}
    assert hashes(changed, "dnet.table1", "+ D-Net")[1:] != dnet[1:]
    assert hashes(changed, "refactornet.table2", "Baseline + RefactorNet") == refactor
    test_time = {**params, "test_time": {**params["test_time"], "nms_threshold": 0.5}}
    assert hashes(test_time, "dnet.table1", "+ D-Net")[2] == dnet[2]  # inference only: same trained model
    # TAL-Net reads no BSN proposals and no detector: its rows carry its own section only
    talnet = hashes(params, "talnet.table1", "Single")
    assert talnet[0] == {"model", "data", "eval", "run", "test_time", "talnet"}
    assert hashes(changed, "talnet.table1", "Single") == talnet
    assert hashes({**params, "bsn": {**params["bsn"], "tem_epochs": 1}}, "talnet.table1", "Single") == talnet
    # the same configuration in two tables (table 2's "without context" is table 1's Multi+Dilated): one run
    assert hashes(params, "talnet.table2", "without context") == hashes(params, "talnet.table1", "Multi+Dilated")
    full = hashes(params, "talnet.table5", "TAL-Net")
    assert full == hashes(params, "talnet.table2", "with context") == hashes(params, "talnet.table4", "Late fusion")
    assert full == hashes(params, "talnet.table3", "with context") == hashes(
        params, "talnet.table8", "Proposal + classification (per 3000 frames)")


def test_baseline_beats_chance(tracking_workdir):
    """The test runner really learns: on the tiny synthetic data its fused mAP@0.3 is far above zero."""
    from talbench.data import open_dataset

    cfg = resolve(load_params("params.yaml"), "unit", {"model": {"runner": RUNNER}})
    outcome = run_row(cfg, 0, open_dataset(cfg))
    assert outcome.metrics["fusion/mAP_0.3"] > 5.0
    assert set(outcome.predictions) == {"rgb", "flow", "fusion"}
    assert outcome.param_counts["rgb"] == (32 + 1) * (4 + 1)


def test_parallel_seeds_give_the_same_numbers_and_files(first_execution, tracking_workdir, tmp_path):
    """Seeds on two worker processes: the same metrics and prediction files as one process (the runs are
    deterministic per seed), every run logged once with its worker's times."""
    import pandas as pd

    first, first_dir, _ = first_execution
    parallel = run_table(TABLE, workers=2, results_dir=tmp_path / "results")
    assert [[run["metrics"] for run in row["runs"]] for row in parallel["rows"]] == \
        [[run["metrics"] for run in row["runs"]] for row in first["rows"]]
    assert not any(run["reused"] for row in parallel["rows"] for run in row["runs"])  # a fresh store
    for row, first_row in zip(parallel["rows"], first["rows"], strict=True):
        for run, first_run in zip(row["runs"], first_row["runs"], strict=True):
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / run["predictions"]),
                                          pd.read_parquet(first_dir / first_run["predictions"]))
    children = search(filter_string=f"tags.mlflow.parentRunId = '{parallel['parent_run_id']}'")
    assert len(children) == 3 * 2 and set(children["status"]) == {"FINISHED"}


def test_prediction_files_recompute_the_logged_metrics(first_execution):
    """The prediction files of a table (ground truth + each run's streams) give back every logged mAP."""
    from talbench.benchmark import predictions as files
    from talbench.eval.detection import evaluate_detection

    results, folder, _ = first_execution
    table = folder / results["eval"]["predictions"]
    gt, videos = files.read_ground_truth(table)
    assert len(videos) == 10 and set(gt["video_id"]) <= set(videos)
    for row in results["rows"]:
        for run in row["runs"]:
            name = Path(run["predictions"]).name
            assert files.read_video_stats(table, name) is None
            for column in ("rgb", "flow", "fusion"):
                value = evaluate_detection(gt, files.read_detections(table, name, column), [0.5]).map[0]
                assert value == run["metrics"][column], (row["name"], run["seed"], column)


def test_table_samples_resample_the_test_videos(first_execution, tracking_workdir):
    """The leaderboard's samples of a recorded table: per seed the recorded values, per video resample a value
    recomputed from the prediction files; the samples feed an interval of a comparison."""
    import numpy as np

    from talbench.benchmark.results import TableResult
    from talbench.benchmark.schema import load_benchmark
    from talbench.leaderboard.intervals import difference_interval
    from talbench.leaderboard.samples import TableSamples

    results, folder, _ = first_execution
    bench = load_benchmark(TABLE, tracking_workdir / "benchmarks")
    table = TableSamples(bench, TableResult.model_validate(results), folder, resamples=200, seed=0)
    linear = table.samples("Linear", "fusion")
    assert linear.seeds == (0, 1) and linear.resampled.shape == (2, 200)
    assert list(linear.values) == [run["metrics"]["fusion"] for run in results["rows"][0]["runs"]]
    assert abs(float(np.median(linear.resampled)) - linear.mean) < 10.0
    params = table.samples("Linear", "params_m")
    assert params.resampled is None  # parameter counts do not depend on the test videos
    interval = difference_interval(linear, table.samples("Linear (5 epochs)", "fusion"), paired=True,
                                   rng=np.random.default_rng(0))
    assert interval.low < interval.estimate < interval.high and interval.video_sd > 0


def test_same_seed_same_numbers(tracking_workdir):
    from talbench.data import open_dataset

    cfg = resolve(
        load_params("params.yaml"), "unit", {"model": {"runner": RUNNER}, "baseline": {"epochs": 20}}
    )
    dataset = open_dataset(cfg)
    first = run_row(cfg, 3, dataset)
    import shutil

    shutil.rmtree(first.checkpoint_dir)  # train again from scratch
    second = run_row(cfg, 3, dataset)
    assert first.metrics == second.metrics
    assert first.predictions["fusion"].equals(second.predictions["fusion"])


def test_tuned_weights_are_merged_under_row_overrides(tracking_workdir, tmp_path):
    import yaml

    params = load_params("params.yaml")
    params["tune"]["studies"] = {"unit-study": {"paper": "dnet", "table": TABLE}, "other": {"paper": "dnet"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="talbench tune unit-study"):
        run_table(TABLE, tuned=True, params_path=tmp_path / "params.yaml", tuned_dir=tmp_path / "tuned")
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "unit-study.json").write_text(
        json.dumps({"baseline.epochs": 7, "baseline.lr": 0.02})
    )
    results = run_table(
        TABLE,
        rows="Linear,Linear (5 epochs)",
        seeds=1,
        tuned=True,
        params_path=tmp_path / "params.yaml",
        tuned_dir=tmp_path / "tuned",
        results_dir=tmp_path / "results",
    )
    runs = search(filter_string=f"tags.mlflow.parentRunId = '{results['parent_run_id']}'").set_index(
        "tags.row"
    )
    assert runs.loc["Linear", "params.baseline.epochs"] == "7"
    assert runs.loc["Linear (5 epochs)", "params.baseline.epochs"] == "5"  # the row's own setting wins
    assert set(runs["params.baseline.lr"]) == {"0.02"} and set(runs["tags.tuned"]) == {"unit-study"}


def test_bad_requests_fail_clearly(tracking_workdir, tmp_path):
    with pytest.raises(ConfigError, match="not a row name"):
        run_table(TABLE, rows="No such row", results_dir=tmp_path)
    with pytest.raises(ConfigError, match="reference line"):
        run_table(TABLE, rows="0", results_dir=tmp_path)
    with pytest.raises(ConfigError, match="no benchmark 'dnet.table98'"):
        run_table("dnet.table98", results_dir=tmp_path)
    with pytest.raises(DataError, match="dvc"):
        run_table(TABLE, data_source="thumos14", results_dir=tmp_path)
    assert not list(tmp_path.glob("*.json"))


def test_cli_without_real_features_prints_a_message(tracking_workdir):
    from typer.testing import CliRunner

    from talbench.cli import app

    result = CliRunner().invoke(app, ["run", TABLE, "--data", "thumos14"])
    assert result.exit_code == 2
    assert "dataset is not there" in result.output and "Traceback" not in result.output


@pytest.fixture
def own_project(tracking_project, empty_store, tmp_path, monkeypatch):
    """A copy of the test project (its data may be changed) with an empty store, entered."""
    project = tmp_path / "project"
    shutil.copytree(tracking_project, project)
    enter_workdir(monkeypatch, project, empty_store, tmp_path)
    return project


def _data(project):
    return project / "data" / "synthetic" / "unit"


def test_adhoc_runs_go_to_scratch(own_project):
    """`talbench run dnet.table1 --rows "+ D-Net" --seeds 1 --profile tiny` replaced the pipeline's results; a
    row subset (or another profile, seed count, data source) now writes to scratch/results/."""
    (own_project / "results").mkdir()
    pipeline_numbers = own_project / "results" / f"{TABLE}.json"
    pipeline_numbers.write_text('{"the": "pipeline"}')
    output = Console(record=True, width=200)
    results = run_table(TABLE, rows="Linear", seeds=1, console=output)
    assert pipeline_numbers.read_text() == '{"the": "pipeline"}'
    assert json.loads((own_project / "scratch" / "results" / f"{TABLE}.json").read_text()) == results
    assert "an ad-hoc run: results/ (the pipeline's numbers) is untouched" in output.export_text()


def test_results_folder_is_results_only_for_the_pipelines_run():
    from talbench.benchmark.run import plan_rows, results_folder
    from talbench.benchmark.schema import load_benchmark

    params = load_params()
    bench = load_benchmark("dnet.table1")
    seeds = params["pipeline"]["seeds"]

    def folder(rows=None, profile=None, source=None, n_seeds=seeds, tuned=False, requested=None):
        planned = plan_rows(bench, params, "dnet.table1", rows=rows, profile=profile, data_source=source,
                            tuned=None)
        return str(results_folder(requested, params, bench, planned, n_seeds, seeds, tuned))

    assert folder() == "results"
    assert folder(profile=params["data"]["profile"]) == "results"  # the pipeline's own profile, named
    for adhoc in ({"rows": "+ D-Net"}, {"profile": "tiny"}, {"n_seeds": 1}, {"tuned": True},
                  {"source": "thumos14"}):
        assert folder(**adhoc) == "scratch/results", adhoc
    assert folder(rows="+ D-Net", requested="results") == "results"  # the user asks for it


def test_changed_features_are_not_reused(own_project):
    """Features rewritten in place with the same shapes were reused (stale metrics); now the data checksum
    hashes contents: the run trains again and the checkpoint of the old features is not loaded."""
    first = run_table(TABLE, rows="Linear", seeds=1, results_dir=own_project / "a")
    path = min((_data(own_project) / "i3d_features").glob("video_validation_*.npy"))
    features = np.load(path)
    np.save(path, features[::-1].copy())  # same shape, same size, other contents
    before = len(TRAINED)
    second = run_table(TABLE, rows="Linear", seeds=1, results_dir=own_project / "b")
    assert second["data"]["checksum"] != first["data"]["checksum"]
    assert second["rows"][0]["runs"][0]["reused"] is False
    assert TRAINED[before:] == TRAINED[before - 1:before]  # the same checkpoint folder, trained again
    third = run_table(TABLE, rows="Linear", seeds=1, results_dir=own_project / "c")
    assert third["rows"][0]["runs"][0]["reused_from"] == second["rows"][0]["runs"][0]["run_id"]


def test_runs_of_another_device_kind_are_not_reused(own_project, monkeypatch):
    """A CPU's numbers are not a GPU's: the device kind is one of the reuse keys."""
    first = run_table(TABLE, rows="Linear", seeds=1, results_dir=own_project / "a")
    assert run_table(TABLE, rows="Linear", seeds=1, results_dir=own_project / "b")["rows"][0]["runs"][0]["reused"]
    monkeypatch.setattr("talbench.runners.common.device.device_key", lambda device: "cuda/Another GPU")
    other = run_table(TABLE, rows="Linear", seeds=1, results_dir=own_project / "c")
    assert other["rows"][0]["runs"][0]["reused"] is False
    assert other["rows"][0]["runs"][0]["run_id"] != first["rows"][0]["runs"][0]["run_id"]


def test_segment_policy_is_printed_logged_and_recorded(own_project):
    """Out-of-range training annotations used to be clipped silently."""
    annotation_file = _data(own_project) / "annotations" / "thumos14.json"
    database = json.loads(annotation_file.read_text())
    video = next(v for v in sorted(database["database"]) if v.startswith("video_validation"))
    info = database["database"][video]
    info["annotations"].append({**info["annotations"][0], "segment": [info["duration"] - 1.0,
                                                                      info["duration"] + 5.0]})
    annotation_file.write_text(json.dumps(database))
    output = Console(record=True, width=300)
    results = run_table(TABLE, rows="Linear", seeds=1, results_dir=own_project / "r", console=output)
    assert "segment policy 'clip': 1 annotations out of range or empty in 1 videos; training side: 1 clipped" \
        in output.export_text()
    assert results["data"]["segment_policy"]["clipped"] == 1
    assert results["data"]["segment_policy"]["problem_videos"] == [video]
    parent = search(filter_string="tags.kind = 'table'")
    assert parent["metrics.data/segments_clipped"].tolist() == [1.0]
    from mlflow.tracking import MlflowClient

    logged = MlflowClient().download_artifacts(results["parent_run_id"], "data/segment_policy.json")
    assert json.loads(Path(logged).read_text())["clipped"] == 1


def test_empty_training_split_fails_before_any_run(own_project):
    """No training videos used to fail with "need at least one array to stack" after the runs were created."""
    annotation_file = _data(own_project) / "annotations" / "thumos14.json"
    database = json.loads(annotation_file.read_text())
    database["database"] = {k: v for k, v in database["database"].items() if not k.startswith("video_validation")}
    annotation_file.write_text(json.dumps(database))
    with pytest.raises(DataError, match="field 'database': no training video"):
        run_table(TABLE, results_dir=own_project / "r")
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_zero_byte_feature_file_is_one_line_before_any_run(own_project):
    """It used to end `talbench run` with "Aborted." (exit 1), naming no file, after the runs were created."""
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from talbench.cli import app

    path = max((_data(own_project) / "i3d_features").glob("video_test_*.npy"))
    path.write_bytes(b"")
    result = CliRunner().invoke(app, ["run", TABLE])
    assert result.exit_code == 2
    assert result.output == f"error: {path.relative_to(own_project)}: video '{path.stem}', field 'features': " \
        "empty file (0 bytes)\n"
    client = MlflowClient()
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def start_slow_table(project, *args: str) -> tuple[subprocess.Popen, Path]:
    """`python -m talbench.cli run TABLE --rows Linear ARGS` on the slow runner, once its rows have started (the
    file it returns lists the process ids of the rows running). Ctrl-C's KeyboardInterrupt is installed on SIGINT
    even when the suite runs as a background job of a shell, whose children inherit SIGINT ignored."""
    bench = benchmark_yaml(runner_path="helpers.slow_runner:run_row")
    (project / "benchmarks" / f"{TABLE}.yaml").write_text(yaml.safe_dump(bench))
    ready = project / "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
           "TALBENCH_TEST_READY": str(ready)}
    command = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               f"sys.argv = ['talbench', 'run', {TABLE!r}, '--rows', 'Linear', *{list(args)!r}]; "
               "runpy.run_module('talbench.cli', run_name='__main__', alter_sys=True)")
    child = subprocess.Popen([sys.executable, "-c", command],
                             cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    expected = int(args[args.index("--seeds") + 1]) if "--seeds" in args else 1
    deadline = time.monotonic() + 120
    while (len(ready.read_text().split()) if ready.exists() else 0) < expected and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready.exists() and len(ready.read_text().split()) == expected, child.communicate()[0]
    return child, ready


def assert_ended_killed(project, child, signum, output):
    assert child.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum], output
    assert f"interrupted: {signum.name}: stopped" in output and "Traceback" not in output
    runs = search()
    assert len(runs) == 1 and set(runs["status"]) == {"KILLED"} and set(runs["tags.kind"]) == {"table"}
    reason = "interrupted by SIGTERM" if signum == signal.SIGTERM else "interrupted by SIGINT (Ctrl-C)"
    assert set(runs["tags.error"]) == {reason}
    assert not (project / "results").exists() and not (project / "scratch" / "results").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_ends_killed(own_project, signum):
    """SIGTERM left the table's parent run and the row run RUNNING forever (SIGINT marked them FAILED); the
    table's run now ends KILLED with the reason (a row run is created when its seed has finished training, so
    an interrupted training leaves none), the command says so in one line, and no results file is written."""
    child, _ = start_slow_table(own_project)
    child.send_signal(signum)
    assert_ended_killed(own_project, child, signum, child.communicate(timeout=60)[0])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_of_the_main_process_stops_its_workers(own_project, signum):
    """A signal sent to `talbench run` alone (not to its process group, as Ctrl-C is) while two seeds train on
    two workers: the command waited for both trainings to end; it now terminates its workers and ends at once."""
    child, ready = start_slow_table(own_project, "--seeds", "2", "--workers", "2")
    workers = [int(pid) for pid in ready.read_text().split()]
    assert child.pid not in workers
    began = time.monotonic()
    child.send_signal(signum)
    output = child.communicate(timeout=60)[0]
    assert time.monotonic() - began < 30, output  # the rows sleep 120 s
    assert_ended_killed(own_project, child, signum, output)
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_pending_table_exits_non_zero(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from talbench.cli import app

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / f"{TABLE}.yaml").write_text(yaml.safe_dump(benchmark_yaml("pending")))
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", TABLE])
    assert result.exit_code == 2
    assert f"{TABLE} is pending: test of a pending table; nothing run, no results written" in result.output


def test_pending_table_writes_nothing(tmp_path, monkeypatch):
    import yaml
    from helpers.paths import REPO
    from helpers.project import benchmark_yaml

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / f"{TABLE}.yaml").write_text(yaml.safe_dump(benchmark_yaml("pending")))
    monkeypatch.chdir(tmp_path)
    assert run_table(TABLE, params_path=REPO / "params.yaml", results_dir=tmp_path / "results") is None
    assert not (tmp_path / "results").exists()


def test_runner_outcome_is_validated():
    with pytest.raises(ConfigError, match="contains '@'"):
        run_row({"model": {"runner": "helpers.bad_runner:run_row"}, "run": {}}, 0, None)
    with pytest.raises(ConfigError, match="unknown"):
        run_row({"model": {"runner": "no_such_runner"}}, 0, None)
    with pytest.raises(ConfigError, match="does not declare SECTIONS"):
        run_row({"model": {"runner": "helpers.paths:REPO"}}, 0, None)


def test_training_jobs_split_a_seed_only_where_rows_never_share_a_network():
    """A family whose rows may share trained networks runs a seed's rows as one job, in file order; the
    one-stage family (checkpoints keyed by the row's own training hash) one job per seed and training hash,
    with the rows that differ only at test time together."""
    from talbench.benchmark.run import PlannedRow, training_jobs
    from talbench.benchmark.schema import Row
    from talbench.runners.families import FAMILIES

    def plan(index, family, lr, threshold=0.0):
        cfg = {"model": {"runner": family}, "train": {"lr": lr}, "test_time": {"threshold": threshold}}
        return PlannedRow(index, Row(name=f"row {index}"), cfg, FAMILIES[family])

    def layout(jobs):
        return [(seed, [p.index for p in plans]) for seed, plans in jobs]

    one_stage = [plan(0, "one_stage", 1.0), plan(1, "one_stage", 2.0), plan(2, "one_stage", 1.0, threshold=0.5)]
    assert layout(training_jobs({0: one_stage, 1: one_stage[:2]})) == [(0, [0, 2]), (0, [1]), (1, [0]), (1, [1])]
    dnet = [plan(0, "dnet", 1.0), plan(1, "dnet", 2.0)]
    assert layout(training_jobs({0: dnet, 3: dnet})) == [(0, [0, 1]), (3, [0, 1])]
    # jobs whose rows all have a checkpoint already go last, each group in its order
    assert layout(training_jobs({0: one_stage, 1: one_stage[:2]}, lambda p, seed: p.index != 1)) == [
        (0, [1]), (1, [1]), (0, [0, 2]), (1, [0])]


def test_started_workers_are_the_pool_the_jobs_use():
    """Workers started early (importing the runners while the table is set up) are the processes the jobs then
    run on; workers never started spawn at the first job, at most one per job."""
    import os

    from talbench.benchmark.run import Workers

    with Workers(2) as early:
        early.start(("json",))
        pool = early.executor(jobs=1)
        assert early.started and pool._max_workers == 2
        assert pool.submit(os.getpid).result() != os.getpid()
    lazy = Workers(2)
    assert not lazy.started
    with lazy:
        assert lazy.executor(jobs=1)._max_workers == 1 and lazy.executor(jobs=5) is lazy.executor(jobs=1)


def test_has_checkpoint_needs_this_code_and_data(tmp_path, monkeypatch):
    from talbench.benchmark.run import PlannedRow, has_checkpoint
    from talbench.benchmark.schema import Row
    from talbench.runners.common.checkpoints import checkpoint_dir, save_checkpoint
    from talbench.runners.families import FAMILIES

    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    cfg = {"model": {"runner": "one_stage"}, "one_stage": {"dim": 8}}
    plan = PlannedRow(0, Row(name="row"), cfg, FAMILIES["one_stage"])
    keys = {"code_hash": "c0de", "data_checksum": "da7a"}
    assert not has_checkpoint(plan, 0, keys)
    save_checkpoint(checkpoint_dir(cfg, 0), {}, cfg, 0, {"code": "c0de", "data": "da7a", "device": "cpu"})
    assert has_checkpoint(plan, 0, keys)
    assert not has_checkpoint(plan, 1, keys)  # another seed
    assert not has_checkpoint(plan, 0, {**keys, "code_hash": "0ther"})  # trained by other code
