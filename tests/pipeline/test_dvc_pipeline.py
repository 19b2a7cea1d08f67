"""The DVC pipeline end to end in a temporary copy of the project: `dvc repro`, selective reruns
(`dvc status`), `dvc exp run -S` and a queued sweep with `dvc queue start -j 2`.

The copy holds the real dvc.yaml without the paper families' stages and the BSN `proposals` stage, and two
test tables served by the linear runner of tests/helpers as two "model families" (`baseline` and `baseline_b`
sections), whose stages are built as the real families' are (:func:`talbench.benchmark.pipeline.family_stage`),
on the tiny `unit` synthetic data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import linear_runner, linear_runner_b
from helpers.paths import REPO
from helpers.project import TABLE, benchmark_yaml, write_project

from talbench.benchmark.pipeline import family_stage
from talbench.benchmark.schema import list_tables
from talbench.code_scope import relative_paths
from talbench.runners.families import FAMILIES, family_of

TABLE_B = "dnet.table98"
FAMILY_A = family_of({"model": {"runner": linear_runner.RUNNER}})
FAMILY_B = family_of({"model": {"runner": linear_runner_b.RUNNER}})


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["dvc", *args], cwd=repo, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory):
    """The project copy after `dvc repro` (one seed per row to keep the module under two minutes)."""
    tmp_path = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield make_pipeline_repo(tmp_path, monkeypatch)


def make_pipeline_repo(tmp_path: Path, monkeypatch) -> Path:
    tables = {family.stage: {table: f"benchmarks/{table}.yaml"}
              for family, table in ((FAMILY_A, TABLE), (FAMILY_B, TABLE_B))}
    repo = write_project(tmp_path / "repo", tables=tables)
    set_param(repo, "profiles", "unit", {**yaml.safe_load((repo / "params.yaml").read_text())["profiles"]["unit"],
                                         "pipeline": {"seeds": 1}})  # fmt: skip
    # family B reads a variant of the unit data (params.yaml synthetic_variants), family A the profile's own
    set_param(repo, "synthetic_variants", "around", {"synth": {"context": {"within_instances": False}},
                                                     "families": [FAMILY_B.stage]})
    (repo / "benchmarks" / f"{TABLE_B}.yaml").write_text(
        yaml.safe_dump(benchmark_yaml(table=TABLE_B, runner_path=linear_runner_b.RUNNER))
    )
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for stage in ("proposals", *FAMILIES):
        del pipeline["stages"][stage]
    leaderboard = pipeline["stages"].pop("leaderboard")  # its inputs are the results of this copy's tables
    leaderboard["deps"] = [f"{kind}/{t}{suffix}" for kind, suffix in (("results", ".json"), ("predictions", ""),
                                                                    ("benchmarks", ".yaml"))
                           for t in (TABLE, TABLE_B)] + [
        d for d in leaderboard["deps"] if not d.startswith(("results/", "predictions/", "benchmarks/"))
    ]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for family in (FAMILY_A, FAMILY_B):
        pipeline["stages"][family.stage] = family_stage(family, REPO, params)
    pipeline["stages"]["leaderboard"] = leaderboard
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    shutil.copytree(REPO / "talbench", repo / "talbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "tests" / "helpers", repo / "tests" / "helpers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(repo / "data")  # made again by the `synth` stage
    (repo / ".gitignore").write_text("/models/\nmlflow.db\n/mlartifacts/\n__pycache__/\n")
    for name, value in {
        "GIT_AUTHOR_NAME": "talbench test", "GIT_AUTHOR_EMAIL": "test@talbench.invalid",
        "GIT_COMMITTER_NAME": "talbench test", "GIT_COMMITTER_EMAIL": "test@talbench.invalid",
        "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}", "TALBENCH_MODELS_DIR": str(repo / "models"),
        "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "tests"), os.environ.get("PYTHONPATH", "")]),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "project"], cwd=repo, check=True)
    dvc(repo, "repro")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "pipeline outputs"], cwd=repo, check=True)
    return repo


def changed_stages(repo: Path) -> set[str]:
    return set(json.loads(dvc(repo, "status", "--json").stdout))


def set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


STAGE_A, STAGE_B = f"{FAMILY_A.stage}@{TABLE}", f"{FAMILY_B.stage}@{TABLE_B}"


@pytest.mark.slow
def test_repro_then_selective_reruns(pipeline_repo):
    repo = pipeline_repo
    for table in (TABLE, TABLE_B):
        results = json.loads((repo / "results" / f"{table}.json").read_text())
        assert results["data"]["profile"] == "unit" and results["seeds"] == [0]
        assert [len(row["runs"]) for row in results["rows"]] == [1, 1, 1]
    data_a, data_b = (json.loads((repo / "results" / f"{t}.json").read_text())["data"] for t in (TABLE, TABLE_B))
    assert "synthetic_variant" not in data_a and data_b["synthetic_variant"] == "around"
    assert data_a["checksum"] != data_b["checksum"]  # B's rows read data/synthetic/unit-around
    assert "dnet" in (repo / "leaderboards" / "README.md").read_text().lower()
    assert changed_stages(repo) == set()  # everything up to date after the run
    set_param(repo, "baseline", "lr", 0.02)  # model family A's parameter: only its table reruns
    assert changed_stages(repo) == {STAGE_A}
    set_param(repo, "baseline", "lr", 0.05)
    set_param(repo, "baseline_b", "epochs", 30)
    assert changed_stages(repo) == {STAGE_B}
    set_param(repo, "baseline_b", "epochs", 60)
    set_param(repo, "eval", "tiou_thresholds", [0.5])  # shared evaluation settings: every table
    assert changed_stages(repo) == {STAGE_A, STAGE_B}
    subprocess.run(["git", "checkout", "params.yaml"], cwd=repo, check=True)
    assert changed_stages(repo) == set()
    set_param(repo, "synthetic_variants", "around", {"synth": {"context": {"within_instances": True}},
                                                     "families": [FAMILY_B.stage]})
    assert changed_stages(repo) == {"synth_variant@around", STAGE_B}  # the variant's data and its family
    subprocess.run(["git", "checkout", "params.yaml"], cwd=repo, check=True)
    set_param(repo, "leaderboard", "margin", 2.0)  # judging the claims: the leaderboard only
    assert changed_stages(repo) == {"leaderboard"}
    set_param(repo, "refactornet", "beta", 0.5)  # another family's, and the tuning's, keys: nothing of these
    set_param(repo, "tune", "experiment", "other")
    assert changed_stages(repo) == {"leaderboard"}
    subprocess.run(["git", "checkout", "params.yaml"], cwd=repo, check=True)
    # a new model family's files (model, runner, shared block): nothing of the existing families reruns
    for new in ("talbench/models/newfamily.py", "talbench/runners/newfamily/runner.py",
                "talbench/models/blocks/new_block.py"):
        (repo / new).parent.mkdir(parents=True, exist_ok=True)
        (repo / new).write_text("from talbench.eval.detection import evaluate_detection\n")
    assert changed_stages(repo) == set()
    (repo / "talbench/eval/tiou.py").write_text((repo / "talbench/eval/tiou.py").read_text() + "\n# edited\n")
    assert {STAGE_A, STAGE_B} <= changed_stages(repo)  # shared code both families import: both rerun
    subprocess.run(["git", "checkout", "talbench"], cwd=repo, check=True)
    subprocess.run(["git", "clean", "-fdq", "talbench"], cwd=repo, check=True)


@pytest.mark.slow
def test_experiments_and_queued_sweep(pipeline_repo):
    repo = pipeline_repo
    dvc(repo, "exp", "run", "--queue", "-S", "baseline_b.epochs=10,20")
    dvc(repo, "queue", "start", "-j", "2")
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline:
        status = dvc(repo, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert "Failed" not in status, status
    assert status.count("Success") == 2, status
    # the queued experiments ran in .dvc/tmp/exps/tmpXXX but logged into the one absolute store
    from helpers.mlflow_search import search_runs

    runs = search_runs(experiment_names=["talbench"], filter_string="tags.kind = 'row'")
    epochs = set(runs.loc[runs["tags.table"] == TABLE_B, "params.baseline_b.epochs"])
    assert {"10", "20"} <= epochs
    assert runs["tags.dvc_exp_name"].notna().sum() == 2 * 3  # 2 experiments x 3 rows x 1 seed
    # `dvc exp show` lists both experiments with their parameter and their table's metrics file
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    swept = [found["data"]["baseline_b"]["epochs"] for found in find_key(shown, "params.yaml")]
    assert {10, 20} <= set(swept)
    assert any(f"results/{TABLE_B}.json" in json.dumps(found) for found in find_key(shown, "metrics"))


def find_key(node, key: str) -> list:
    """Every value stored under ``key`` anywhere in a JSON document."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key] + [x for v in node.values() for x in find_key(v, key)]
    if isinstance(node, list):
        return [x for item in node for x in find_key(item, key)]
    return []


def test_leaderboard_depends_on_exactly_the_active_tables_results():
    """dvc.yaml lists the leaderboard's inputs one by one (so the Optuna stages writing results/tune/ stay out of
    the default pipeline); the list must follow params.yaml `pipeline.tables`."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    tables = yaml.safe_load((REPO / "params.yaml").read_text())["pipeline"]["tables"]
    deps = pipeline["stages"]["leaderboard"]["deps"]
    active = [t for family in tables.values() for t in family]
    assert [d for d in deps if d.startswith("results")] == [f"results/{t}.json" for t in active]
    assert [d for d in deps if d.startswith("predictions")] == [f"predictions/{t}" for t in active]
    # every benchmark file, not the benchmarks/ folder (its calibration and perf scripts rerun nothing)
    assert [d for d in deps if d.startswith("benchmarks")] == [f"benchmarks/{t}.yaml" for t in list_tables()]


def test_family_stages_are_the_codes_view():
    """Each family's stage in dvc.yaml depends on exactly the code files of its code hash and the params
    sections of its scoped configuration (regenerate with talbench.benchmark.pipeline.family_stage)."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(params["pipeline"]["tables"]) == set(FAMILIES)
    for name, family in FAMILIES.items():
        assert pipeline["stages"][name] == family_stage(family), name
        deps = pipeline["stages"][name]["do"]["deps"]
        assert not [d for d in deps if d.startswith(("talbench/leaderboard", "talbench/tune", "talbench/benchmark"))]
        for other in set(FAMILIES) - {name}:
            assert not [d for d in deps if f"runners/{other}/" in d], (name, other)
    for stage, module in (("synth", "talbench.data.synthetic.generate"), ("premises", "talbench.premises"),
                          ("proposals", "talbench.runners.bsn.stage"), ("leaderboard", "talbench.leaderboard.generate")):
        code = [d for d in pipeline["stages"][stage]["deps"] if d.startswith("talbench/")]
        assert code == relative_paths(REPO, module), stage
    from talbench.runners.common.checkpoints import EXECUTION_MODULE

    tuning = yaml.safe_load((REPO / "tuning" / "dvc.yaml").read_text())["stages"]
    proposals = tuning.pop("proposals-train_fit")  # the studies' holdout proposals: BSN trained on train_fit
    assert [d for d in proposals["deps"] if d.startswith("talbench/")] == relative_paths(REPO, "talbench.runners.bsn.stage")
    assert proposals["cmd"] == "talbench proposals --train-split train_fit"
    for name, stage in tuning.items():
        assert "proposals/synthetic-smoke-train_fit" in stage["deps"], name
        family = FAMILIES[params["tune"]["studies"][name]["paper"]]
        code = [d for d in stage["deps"] if d.startswith("talbench/")]
        assert code == relative_paths(REPO, "talbench.tune.study", EXECUTION_MODULE, family.module), name
        assert stage["params"] == ["tune", *family.scope, *(f"profiles.smoke.{s}" for s in family.scope)], name
    for profile, sections in params["profiles"].items():  # DVC needs every profile entry a stage reads
        read = {s for f in FAMILIES.values() for s in (*f.scope, "pipeline")} | {"synth"}
        assert read <= set(sections), (profile, sorted(read - set(sections)))



def test_committed_pipeline_outputs_do_not_count_as_dirty():
    """Every committed output (`cache: false`) of dvc.yaml and tuning/dvc.yaml lies under provenance's
    PIPELINE_OUTPUTS, so a run that rewrites it is not marked git_dirty; a new one must be added there."""
    from talbench.tracking.provenance import PIPELINE_OUTPUTS

    committed = []
    for pipeline_file in ("dvc.yaml", "tuning/dvc.yaml"):
        for stage in yaml.safe_load((REPO / pipeline_file).read_text())["stages"].values():
            body = stage.get("do", stage)
            for entry in [*body.get("outs", []), *body.get("metrics", []), *body.get("plots", [])]:
                if isinstance(entry, dict):
                    (path, options), = entry.items()
                    if options and options.get("cache") is False:
                        committed.append(path)
    assert len(committed) == 14  # premises, 2 proposals metrics, 4 families' table metrics, leaderboards,
    # 2 studies x 3 files
    for path in committed:
        assert any(path == out or path.startswith(f"{out}/") for out in PIPELINE_OUTPUTS), path
