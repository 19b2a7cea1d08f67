"""Optuna studies (talbench.tune): search space from params.yaml, holdout-only objective, pruning counts,
nested MLflow runs, the tuned file and its `--tuned` merge, the results file the leaderboard reads, and one
real tiny D-Net study end to end."""

import json
import math
import os

import optuna
import pytest
import yaml
from helpers import probe_runner
from helpers.mlflow_search import search_runs

from talbench.benchmark.results import load_tune_results
from talbench.benchmark.rows import load_tuned, tuned_study
from talbench.config import REPO_ROOT, deep_merge, load_params, resolve
from talbench.errors import ConfigError
from talbench.tune.space import load_study, suggest
from talbench.tune.study import pruning_stats, run_study
from talbench.tune.workers import split_trials

EPOCHS = 4  # detector.epochs of the tiny profile


@pytest.fixture(scope="module")
def tiny_data(tiny_synthetic):
    """The tiny synthetic benchmark and its stand-in proposals written in BSN's CSV format."""
    from talbench.data.proposals import write_proposals

    root, _, dataset, proposals = tiny_synthetic
    folder = root / "proposals"
    write_proposals(folder, proposals, dataset.video_ids("train") + dataset.video_ids("test"))
    return root, folder


@pytest.fixture
def workdir(tiny_data, tmp_path, monkeypatch):
    """A params.yaml for the tiny profile in ``tmp_path``, fresh MLflow store, Optuna file and models folder."""
    root, proposals = tiny_data
    params = load_params()
    params["data"]["synthetic_root"] = str(root)
    params["bsn"].update({"source": "bsn_csv", "external_path": str(proposals)})
    params["tune"]["profile"] = "tiny"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _edit_study(path, name, **changes):
    params = yaml.safe_load(path.read_text())
    params["tune"]["studies"][name].update(changes)
    path.write_text(yaml.safe_dump(params))


# ------------------------------------------------------------------------------------------ search space
def test_search_space_and_defaults_from_params():
    dnet = load_study("dnet-lambdas")
    assert dnet.param_names == ["dnet.lambda1", "dnet.lambda2"]
    assert dnet.published() == {"dnet.lambda1": 0.5, "dnet.lambda2": 0.5}  # D-Net eq. 15, lambda1 = lambda2 = 0.5
    assert dnet.spec.space["dnet.lambda1"].log and dnet.spec.objective == "fusion/mAP_0.5"
    assert dnet.base_cfg["detector"]["encoder"] == "dnet"  # the "+ D-Net" row's overrides
    assert dnet.epochs == dnet.base_cfg["detector"]["epochs"]

    refactor = load_study("refactornet-alpha-beta")
    assert refactor.published() == {"refactornet.alpha_mode": "similarity", "refactornet.alpha_scale": 1.0,
                                    "refactornet.beta": 0.001}
    assert refactor.spec.space["refactornet.alpha_mode"].choices == ["similarity", "constant"]
    assert refactor.spec.space["refactornet.beta"].log
    assert refactor.base_cfg["model"]["runner"] == "refactornet"

    storage = optuna.storages.InMemoryStorage()
    trial = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = suggest(trial, refactor.spec.space)
    assert values["refactornet.alpha_mode"] in ("similarity", "constant")
    assert 1e-5 <= values["refactornet.beta"] <= 0.1
    assert trial.distributions["refactornet.beta"].log is True
    cfg = refactor.config(values, {"run": {"train_split": "train_fit", "eval_split": "holdout"}})
    assert cfg["refactornet"]["beta"] == values["refactornet.beta"] and cfg["run"]["eval_split"] == "holdout"


@pytest.mark.parametrize(("entry", "message"), [
    ({"dnet.no_such_key": {"low": 0.1, "high": 1.0}}, "space.dnet.no_such_key: not a key"),
    ({"dnet.lambda1": {"low": 1.0, "high": 0.1}}, "must be below high"),
    ({"dnet.lambda1": {"low": 0.0, "high": 1.0, "log": True}}, "needs low > 0"),
    ({"dnet.lambda1": {"type": "categorical"}}, "non-empty 'choices'"),
])
def test_bad_study_definitions_name_the_key(entry, message):
    params = load_params()
    params["tune"]["studies"]["dnet-lambdas"]["space"] = entry
    with pytest.raises(ConfigError, match="tune.studies.dnet-lambdas") as err:
        load_study("dnet-lambdas", params)
    assert message in str(err.value)
    with pytest.raises(ConfigError, match="no study 'nope'"):
        load_study("nope", params)


def test_split_trials_adds_up():
    assert split_trials(7, 3) == [3, 2, 2] and split_trials(2, 4) == [1, 1]
    with pytest.raises(ValueError):
        split_trials(3, 0)


def test_pruning_stats_estimate():
    def trial(number, state, steps, seconds):
        return optuna.trial.FrozenTrial(
            number=number, state=state, value=1.0 if state == optuna.trial.TrialState.COMPLETE else None,
            values=None, datetime_start=None, datetime_complete=None, params={}, distributions={},
            user_attrs={"last_step": steps - 1, "epoch_seconds": seconds}, system_attrs={},
            intermediate_values={}, trial_id=number)

    trials = [trial(0, optuna.trial.TrialState.COMPLETE, 10, [1.0, 3.0]),
              trial(1, optuna.trial.TrialState.PRUNED, 4, [2.0]),
              trial(2, optuna.trial.TrialState.PRUNED, 7, [2.0])]
    stats = pruning_stats(trials, total_steps=10)
    assert stats["n_pruned"] == 2 and stats["pruned_epochs_skipped"] == (10 - 4) + (10 - 7)
    assert stats["mean_epoch_seconds"] == pytest.approx(2.0)
    assert stats["seconds_saved_by_pruning"] == pytest.approx(9 * 2.0)


# ------------------------------------------------------------------------------------------ with a probe runner
CALLS = probe_runner.CALLS


@pytest.fixture
def probe(workdir):
    CALLS.clear()
    _edit_study(workdir / "params.yaml", "dnet-lambdas", overrides={"model": {"runner": probe_runner.RUNNER}},
                final_seeds=[0, 1], pruner={"type": "median", "n_startup_trials": 2, "n_warmup_steps": 1})
    return workdir


def test_probe_study_holdout_pruning_mlflow_and_outputs(probe):
    import mlflow

    from talbench.data import open_dataset

    result = run_study("dnet-lambdas", trials=8, storage="optuna.db", params_path="params.yaml",
                       benchmarks_dir=REPO_ROOT / "benchmarks")
    cfg = resolve(load_params("params.yaml"), "tiny")
    dataset = open_dataset(cfg)
    holdout, test = tuple(dataset.video_ids("holdout")), tuple(dataset.video_ids("test"))
    assert not set(holdout) & set(test) and not set(holdout) & set(dataset.video_ids("train_fit"))

    # the search only ever trains on train_fit and scores the holdout; the test split comes once per config/seed
    search, final = CALLS[:-8], CALLS[-8:]
    assert search and all(c["train"] == "train_fit" and c["eval"] == "holdout" and c["report"] for c in search)
    assert all(c["videos"] == holdout for c in search)
    assert [(c["train"], c["eval"]) for c in final] == [("train_fit", "holdout")] * 4 + [("train", "test")] * 4
    assert [c["videos"] == test for c in final] == [False] * 4 + [True] * 4

    # pruning counts agree with the storage; every trial recorded once
    ostudy = optuna.load_study(study_name="dnet-lambdas", storage=f"sqlite:///{probe / 'optuna.db'}")
    states = [t.state for t in ostudy.trials]
    assert len(states) == 8 == result["n_trials"] and len(search) == 8
    n_pruned = states.count(optuna.trial.TrialState.PRUNED)
    assert n_pruned == result["n_pruned"] >= 1
    assert result["n_complete"] == states.count(optuna.trial.TrialState.COMPLETE)
    assert result["seconds_saved_by_pruning"] >= 0.0 and result["pruned_epochs_skipped"] >= n_pruned

    # best params, published defaults and the validation / test scores (probe: value = quality + seed)
    best = ostudy.best_trial
    tuned = {p["name"]: p["tuned"] for p in result["params"]}
    assert tuned == best.params and {p["published"] for p in result["params"]} == {0.5}
    quality = 60.0 - 20.0 * math.log(0.5) ** 2 - 5.0 * math.log(0.5) ** 2
    assert result["validation"]["published"]["mean"] == pytest.approx(quality + 0.5)  # seeds 0, 1
    assert result["validation"]["tuned"]["mean"] == pytest.approx(best.value + 0.5)
    assert result["test"]["tuned"]["values"] == pytest.approx([best.value, best.value + 1])
    values = [t.value for t in ostudy.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert result["sensitivity"]["max_minus_min"] == pytest.approx(max(values) - min(values))

    # nested MLflow runs: one per trial (params, step metric, state) and one per final evaluation
    parent = result["mlflow"]["parent_run_id"]
    runs = search_runs(experiment_names=["talbench-tune"],
                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    trials = runs[runs["tags.kind"] == "trial"].set_index("tags.trial_number")
    assert len(trials) == 8 and len(runs[runs["tags.kind"] == "final"]) == 8
    client = mlflow.tracking.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    for t in ostudy.trials:
        row = trials.loc[str(t.number)]
        assert row["tags.optuna_state"] == t.state.name
        assert float(row["params.dnet.lambda1"]) == pytest.approx(t.params["dnet.lambda1"])
        assert row["params.run.eval_split"] == "holdout"
        history = client.get_metric_history(row["run_id"], "holdout/mAP_0.5_per_epoch")
        assert sorted(m.step for m in history) == sorted(t.intermediate_values)
        assert row["status"] == ("KILLED" if t.state == optuna.trial.TrialState.PRUNED else "FINISHED")
    artifacts = [a.path for a in client.list_artifacts(parent)]
    assert "dnet-lambdas.png" in artifacts

    # files: tuned weights (flat, merged by `talbench run --tuned`), results read by the leaderboard, plot
    tuned_file = probe / "tuned" / "dnet-lambdas.json"
    assert json.loads(tuned_file.read_text()) == best.params
    assert not list(tuned_file.parent.glob(".*.tmp"))  # atomic: no temporary left behind
    params = load_params("params.yaml")
    study_name = tuned_study(params, "dnet", "dnet.table1")
    overrides = load_tuned(study_name, probe / "tuned")
    merged = deep_merge(resolve(params, "tiny"), overrides)
    assert study_name == "dnet-lambdas" and merged["dnet"]["lambda1"] == best.params["dnet.lambda1"]
    [loaded] = load_tune_results(probe / "results")
    assert loaded.study == "dnet-lambdas" and loaded.test.tuned.run_ids == result["test"]["tuned"]["run_ids"]
    assert (probe / loaded.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = (probe / "results" / "tune" / "dnet-lambdas.json").read_text()
    assert str(probe.resolve()) not in written and "/tmp/" not in written  # a committed output: no machine path
    assert json.loads(written)["storage"] == "local store (outside the repository)"

    # a second call adds no trial (the target is reached) and a changed definition is refused
    CALLS.clear()
    again = run_study("dnet-lambdas", trials=8, storage="optuna.db", params_path="params.yaml",
                      benchmarks_dir=REPO_ROOT / "benchmarks")
    assert again["n_trials"] == 8 and len(CALLS) == 8  # only the final protocol ran
    _edit_study(probe / "params.yaml", "dnet-lambdas", search_seeds=[0, 1])
    with pytest.raises(ConfigError, match="another definition"):
        run_study("dnet-lambdas", trials=8, storage="optuna.db", params_path="params.yaml",
                  benchmarks_dir=REPO_ROOT / "benchmarks")


# ------------------------------------------------------------------------------------------ the real D-Net runner
def test_tiny_dnet_study_end_to_end(workdir):
    """Two trials of the real D-Net detector on the tiny synthetic profile, then the final protocol."""
    _edit_study(workdir / "params.yaml", "dnet-lambdas", final_seeds=[0])
    result = run_study("dnet-lambdas", trials=2, storage="optuna.db", params_path="params.yaml",
                       benchmarks_dir=REPO_ROOT / "benchmarks")
    assert result["n_trials"] == 2 and result["n_complete"] + result["n_pruned"] == 2
    for split in ("validation", "test"):
        for label in ("published", "tuned"):
            assert 0.0 <= result[split][label]["mean"] <= 100.0
    # the best trial's checkpoint (seed 0, same config) is reused: its validation score is the trial's value
    assert result["validation"]["tuned"]["mean"] == pytest.approx(result["best_trial"]["value"])
    assert len(list((workdir / "models" / "dnet").iterdir())) == 2 + 1 + 2  # trials, paper@holdout, @train x2
    assert (workdir / "results" / "tune" / "dnet-lambdas.png").is_file()
