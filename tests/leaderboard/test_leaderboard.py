"""Claim verdicts (every kind, every verdict) and leaderboard generation from fabricated results.

All run ids, metrics and dates below are TEST DATA made up for these tests, not measurements.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from talbench.benchmark.schema import BENCHMARKS_DIR, Benchmark
from talbench.errors import ConfigError
from talbench.leaderboard.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    Rule,
    judge_check,
    judge_published,
    judge_reproduced,
    published_lookup,
)
from talbench.leaderboard.generate import load_rule, write_leaderboards
from talbench.leaderboard.intervals import Samples

RULE = Rule()
ROWS = ["base", "a", "b", "c"]


def _bench(claims: list[dict] | None = None) -> Benchmark:
    return Benchmark.model_validate(
        {
            "id": "dnet.table1", "paper": "dnet", "title": "test table", "dataset": "thumos14", "split": "test",
            "features": "test", "metric": "mAP", "columns": ["m", "n"], "status": "pending",
            "pending_reason": "test",
            "rows": [{"name": r, "published": {"m": 50.0 + i, "n": 10.0}} for i, r in enumerate(ROWS)],
            "claims": claims or [],
        }
    )


def S(mean: float, sd: float = 0.5, n: int = 5, shift: int = 0) -> Samples:
    """TEST DATA: ``n`` seeds with exactly this mean and sample sd; ``shift`` rolls the per-seed pattern, so two
    rows with different shifts are not perfectly correlated over seeds."""
    pattern = [(-2.0, -1.0, 0.0, 1.0, 2.0), (1.0, -2.0, 2.0, 0.0, -1.0), (0.0, 2.0, -1.0, -2.0, 1.0)][shift % 3][:n]
    z = [v - sum(pattern) / n for v in pattern]
    norm = (sum(v * v for v in z) / (n - 1)) ** 0.5 if n > 1 else 1.0
    import numpy as np

    return Samples(tuple(range(n)), np.array([mean + sd * v / norm for v in z]))


def _judge(check: dict, samples: dict[str, Samples], rule: Rule = RULE) -> str:
    bench = _bench([{"text": "t", "source": "test", "check": check}])
    return judge_check(bench, bench.claims[0].check, rule, samples=lambda row, metric: samples.get(row)).verdict


GREATER = {"kind": "greater", "a": "a", "b": "base", "metrics": ["m"]}


@pytest.mark.parametrize(
    ("samples", "verdict"),
    [
        ({"a": S(53.0, shift=1), "base": S(50.0)}, HOLDS),
        ({"a": S(47.0, shift=1), "base": S(50.0)}, FAILS),
        ({"a": S(50.3, shift=1), "base": S(50.0)}, INCONCLUSIVE),
        ({"a": S(49.7, shift=1), "base": S(50.0)}, INCONCLUSIVE),
        ({"a": S(52.0, n=1), "base": S(50.0, n=1)}, INCONCLUSIVE),  # one seed cannot judge
        ({"a": S(52.0)}, NOT_APPLICABLE),  # base not reproduced
    ],
)
def test_greater(samples, verdict):
    assert _judge(GREATER, samples) == verdict


def test_paired_seeds_and_deterministic_columns():
    # the same training noise in both rows (one pattern): the paired difference is exact
    assert _judge(GREATER, {"a": S(50.4, sd=2.0), "base": S(50.0, sd=2.0)}) == HOLDS
    # other noise per row: the same means are inconclusive
    assert _judge(GREATER, {"a": S(50.4, sd=2.0, shift=1), "base": S(50.0, sd=2.0)}) == INCONCLUSIVE
    # deterministic columns (parameter counts) do not vary over seeds: judged exactly
    assert _judge(GREATER, {"a": S(11.7, 0.0), "base": S(10.1, 0.0)}) == HOLDS
    assert _judge(GREATER, {"a": S(10.1, 0.0), "base": S(10.1, 0.0)}) == FAILS


@pytest.mark.parametrize(
    ("check", "samples", "verdict"),
    [
        ({"kind": "delta", "min": 2.0}, {"a": S(54.0, shift=1), "base": S(50.0)}, HOLDS),
        ({"kind": "delta", "min": 2.0}, {"a": S(50.0, shift=1), "base": S(50.0)}, FAILS),
        ({"kind": "delta", "min": 2.0}, {"a": S(52.0, shift=1), "base": S(50.0)}, INCONCLUSIVE),
        ({"kind": "delta", "min": -0.1, "max": 0.1}, {"a": S(50.05, 0.01, shift=1), "base": S(50.0, 0.01)}, HOLDS),
        ({"kind": "delta", "min": -0.1, "max": 0.1}, {"a": S(51.0, 0.01, shift=1), "base": S(50.0, 0.01)}, FAILS),
        # non-superiority with the rule's margin 1.0: a - b <= 1
        ({"kind": "not_greater"}, {"a": S(48.0, shift=1), "base": S(50.0)}, HOLDS),
        ({"kind": "not_greater"}, {"a": S(50.2, 0.1, shift=1), "base": S(50.0, 0.1)}, HOLDS),  # a tie
        ({"kind": "not_greater"}, {"a": S(53.0, shift=1), "base": S(50.0)}, FAILS),
        ({"kind": "not_greater"}, {"a": S(51.0, shift=1), "base": S(50.0)}, INCONCLUSIVE),
        ({"kind": "similar"}, {"a": S(50.2, 0.1, shift=1), "base": S(50.0, 0.1)}, HOLDS),
        ({"kind": "similar"}, {"a": S(47.0, shift=1), "base": S(50.0)}, FAILS),
        ({"kind": "similar"}, {"a": S(49.0, shift=1), "base": S(50.0)}, INCONCLUSIVE),
    ],
)
def test_delta_not_greater_and_similar(check, samples, verdict):
    assert _judge({**check, "a": "a", "b": "base", "metrics": ["m"]}, samples) == verdict


def test_margin_comes_from_the_rule():
    samples = {"a": S(51.5, 0.1, shift=1), "base": S(50.0, 0.1)}
    not_greater = {"kind": "not_greater", "a": "a", "b": "base", "metrics": ["m"]}
    assert _judge(not_greater, samples) == FAILS
    assert _judge(not_greater, samples, Rule(margin=2.0)) == HOLDS


@pytest.mark.parametrize(
    ("samples", "verdict"),
    [
        ({"a": S(26.1, 0.0), "base": S(9.5, 0.0)}, HOLDS),
        ({"a": S(20.0, 0.0), "base": S(9.5, 0.0)}, FAILS),
        ({"a": S(27.0, 1.0, shift=1), "base": S(10.0, 0.5)}, INCONCLUSIVE),
    ],
)
def test_ratio(samples, verdict):
    assert _judge({"kind": "ratio", "a": "a", "b": "base", "metrics": ["m"], "min": 2.7}, samples) == verdict


def test_best_ignores_diagnostic_rows():
    raw = _bench().model_dump()
    raw["rows"].append({"name": "diag", "diagnostic": "what if?", "reproduce": {"overrides": {}}})
    raw["claims"] = [{"text": "t", "source": "test", "check": {"kind": "best", "a": "c", "metrics": ["m"]}}]
    bench = Benchmark.model_validate(raw)
    samples = {"base": S(50.0), "a": S(52.0, shift=1), "b": S(54.0, shift=2), "c": S(57.0), "diag": S(70.0)}
    judgement = judge_check(bench, bench.claims[0].check, RULE, samples=lambda row, metric: samples.get(row))
    assert judgement.verdict == HOLDS and {c.b for c in judgement.comparisons} == {"base", "a", "b"}
    assert [r.name for r in bench.paper_rows] == ROWS


def test_best_order_gain_larger_and_all():
    everyone = {"base": S(50.0), "a": S(52.0, shift=1), "b": S(54.0, shift=2), "c": S(57.0)}
    assert _judge({"kind": "best", "a": "c", "metrics": ["m"]}, everyone) == HOLDS
    assert _judge({"kind": "best", "a": "b", "metrics": ["m"]}, everyone) == FAILS
    assert _judge({"kind": "best", "a": "b", "metrics": ["m"], "others": ["a", "base"]}, everyone) == HOLDS
    assert _judge({"kind": "best", "a": "c", "metrics": ["m"]}, {**everyone, "b": S(56.8, shift=2)}) == INCONCLUSIVE
    assert _judge({"kind": "order", "rows": ["base", "a", "b", "c"], "metrics": ["m"]}, everyone) == HOLDS
    assert _judge({"kind": "order", "rows": ["base", "b", "a"], "metrics": ["m"]}, everyone) == FAILS
    gain = {"kind": "gain_larger", "a": "c", "b": "a", "base": "base", "metrics": ["m"]}
    assert _judge(gain, everyone) == HOLDS
    assert _judge({**gain, "a": "a", "b": "c"}, everyone) == FAILS
    holds, fails = dict(GREATER), {**GREATER, "a": "base", "b": "c"}
    inconclusive = {**GREATER, "a": "a", "b": "base"}
    close = {**everyone, "a": S(50.3, shift=1)}
    assert _judge({"kind": "all", "checks": [holds, holds]}, everyone) == HOLDS
    assert _judge({"kind": "all", "checks": [holds, inconclusive]}, close) == INCONCLUSIVE
    assert _judge({"kind": "all", "checks": [inconclusive, fails]}, close) == FAILS


def test_inconclusive_comparisons_say_how_many_seeds_would_decide():
    bench = _bench([{"text": "t", "source": "test", "check": GREATER}])
    samples = {"a": S(50.6, shift=1), "base": S(50.0)}
    judgement = judge_check(bench, bench.claims[0].check, RULE, samples=lambda row, metric: samples.get(row))
    assert judgement.verdict == INCONCLUSIVE
    (comparison,) = judgement.comparisons
    assert isinstance(comparison.needed, int) and comparison.needed > 5
    assert f"seeds to decide: {comparison.needed}" in judgement.detail and "paired by seed, 5 seeds" in judgement.detail
    tie = {"a": S(50.0, shift=1), "base": S(50.0)}
    judgement = judge_check(bench, bench.claims[0].check, RULE, samples=lambda row, metric: tie.get(row))
    assert "no realistic number" in judgement.detail


def test_published_numbers_are_judged_exactly():
    bench = _bench([{"text": "t", "source": "s", "check": {"kind": "greater", "a": "a", "b": "base",
                                                            "metrics": ["n"]}}])  # 10.0 vs 10.0
    assert judge_published(bench, bench.claims[0]).verdict == FAILS
    # 54.8 - 52.6 is 2.1999999999999957 in floating point: it still meets a published '>= 2.2'
    raw = _bench().model_dump()
    raw["rows"][1]["published"]["m"], raw["rows"][0]["published"]["m"] = 54.8, 52.6
    raw["claims"] = [{"text": "t", "source": "s", "check": {"kind": "delta", "a": "a", "b": "base",
                                                             "metrics": ["m"], "min": 2.2}}]
    bench = Benchmark.model_validate(raw)
    assert published_lookup(bench)("a", "m") - published_lookup(bench)("base", "m") < 2.2
    assert judge_published(bench, bench.claims[0]).verdict == HOLDS


def test_real_data_only_claims_are_not_judged_on_synthetic_data():
    check = {"kind": "delta", "a": "a", "b": "base", "metrics": ["m"], "min": 2.0}
    bench = _bench([{"text": "t", "source": "s", "check": check, "real_data_only": True}])
    samples = {"a": S(55.0, shift=1), "base": S(50.0)}
    lookup = lambda row, metric: samples.get(row)
    assert judge_reproduced(bench, bench.claims[0], lookup, RULE, synthetic=True).verdict == NOT_APPLICABLE
    assert judge_reproduced(bench, bench.claims[0], lookup, RULE, synthetic=False).verdict == HOLDS
    assert judge_published(bench, bench.claims[0]).verdict == FAILS  # published 51 - 50 < 2


# ------------------------------------------------------------------ generation from fabricated results
FAKE_RUNS = {  # TEST DATA: made-up fusion mAPs per seed
    "Baseline (A-Net)": [40.0, 41.0, 42.0],
    "+ MLP1 (shared MLP)": [40.2, 41.6, 41.9],
    "+ MLP2 (two MLPs)": [41.5, 42.0, 43.5],
    "+ D-Net": [45.0, 46.0, 47.0],
}


def _activate(tmp_bench: Path) -> None:
    raw = yaml.safe_load((BENCHMARKS_DIR / "dnet.table1.yaml").read_text(encoding="utf-8"))
    raw["status"], raw["pending_reason"] = "active", None
    for row in raw["rows"]:
        if row["name"] in FAKE_RUNS:
            row["reproduce"] = {"overrides": {}}
    (tmp_bench / "dnet.table1.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    for table_id in ("dnet.table2", "refactornet.table2"):  # kept pending: their stale results must not show
        raw = yaml.safe_load((BENCHMARKS_DIR / f"{table_id}.yaml").read_text(encoding="utf-8"))
        raw["status"], raw["pending_reason"] = "pending", "model lands with issue #5"
        raw["rows"] = [row for row in raw["rows"] if "diagnostic" not in row and "control" not in row]
        names = {row["name"] for row in raw["rows"]}  # a pending table runs nothing: no talbench rows
        raw["claims"] = [c for c in raw["claims"] if {c["check"].get("a"), c["check"].get("b")} - {None} <= names]
        for row in raw["rows"]:
            row.pop("reproduce", None)
        (tmp_bench / f"{table_id}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def _fake_result(rows: dict[str, list[float]] = FAKE_RUNS) -> dict:
    out_rows = []
    for r, (name, values) in enumerate(rows.items()):
        runs = [
            {"seed": s, "run_id": f"testrun{r}{s}", "reused": s == 2,
             "metrics": {"fusion": v, "rgb": v - 5, "flow": v + 3, "params_m": 11.7},
             "reported": {"row_seconds": 10.0 + s}}
            for s, v in enumerate(values)
        ]
        out_rows.append({"name": name, "config_hash": "c", "train_hash": "t", "runs": runs})
    return {
        "table": "dnet.table1", "paper": "dnet", "created": "2026-11-22T12:00:00Z", "git_commit": "abc123",
        "git_dirty": False,
        "data": {"source": "synthetic", "profile": "smoke", "features": "synthetic I3D-layout", "checksum": "ff"},
        "tracking_uri": "sqlite:////tmp/test-mlflow.db", "experiment": "talbench", "parent_run_id": "testparent",
        "seeds": [0, 1, 2], "devices": ["cpu (Test CPU 9000, torch 2.x, 1 threads)"], "rows": out_rows,
    }


FAKE_TUNE = {  # TEST DATA
    "study": "dnet-lambdas", "paper": "dnet", "table": "dnet.table1", "row": "+ D-Net",
    "objective": "fusion/mAP_0.5 on holdout", "n_trials": 12, "created": "2026-11-22T13:00:00Z",
    "git_commit": "abc123", "data": {"source": "synthetic", "profile": "smoke"},
    "params": [{"name": "dnet.lambda_rec", "published": 1.0, "tuned": 0.25, "importance": 0.8}],
    "validation": {"split": "holdout", "published": {"mean": 30.0, "std": 1.0, "run_ids": ["tunerun1"]},
                   "tuned": {"mean": 33.0, "std": 0.5, "run_ids": ["tunerun2"]}},
    "test": {"split": "test", "published": {"mean": 40.0, "std": 1.0, "run_ids": ["tunerun3"]},
             "tuned": {"mean": 41.0, "std": 1.0, "run_ids": ["tunerun4"]}},
    "plot": "plots/tune/dnet-lambdas.png",
    "sensitivity": {"n_complete": 9, "min": 20.0, "max": 35.5, "max_minus_min": 15.5, "std": 4.25},
    "n_pruned": 3, "seconds_saved_by_pruning": 120.4,
}


@pytest.fixture
def workspace(tmp_path):
    bench_dir, results = tmp_path / "benchmarks", tmp_path / "results"
    bench_dir.mkdir()
    (results / "tune").mkdir(parents=True)
    _activate(bench_dir)
    (results / "dnet.table1.json").write_text(json.dumps(_fake_result()), encoding="utf-8")
    stale = _fake_result() | {"table": "dnet.table2"}
    (results / "dnet.table2.json").write_text(json.dumps(stale), encoding="utf-8")  # pending: ignored
    (results / "proposals.json").write_text("{}", encoding="utf-8")  # another stage's file: not a table
    (results / "tune" / "dnet-lambdas.json").write_text(json.dumps(FAKE_TUNE), encoding="utf-8")
    return tmp_path


def _write(ws: Path, out: str = "lb") -> Path:
    write_leaderboards(ws / "results", ws / out, Console(quiet=True), benchmarks_dir=ws / "benchmarks",
                       rule=RULE, repo_root=ws)
    return ws / out


def test_leaderboard_pages(workspace):
    out = _write(workspace)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "cltdr_gmg.md", "dnet.md", "dnet_verdicts.png",
                                                      "refactornet.md", "talnet.md"]
    assert "![D-Net: every judged comparison with its interval](dnet_verdicts.png)" in \
        (out / "dnet.md").read_text(encoding="utf-8")
    page = (out / "dnet.md").read_text(encoding="utf-8")
    assert "| Data | synthetic |" in page and "| Git commit | abc123 |" in page and "| Seeds | 0, 1, 2 |" in page
    assert "absolute values are not comparable" in page
    assert "commit `abc123`; computed on cpu (Test CPU 9000, torch 2.x, 1 threads)." in page  # timings need it
    # + D-Net fusion: published 57.02, reproduced mean 46 ± 1 (sample std), difference -11.02
    assert "57.02 · **46.00 ± 1.00** (-11.02)" in page
    assert "seed 0 `testrun30`, seed 1 `testrun31`, seed 2 `testrun32` (reused)" in page
    assert "parent run `testparent`" in page

    def reproduction(claim_start: str) -> str:
        line = next(line for line in page.splitlines() if line.startswith(f"| {claim_start}"))
        return line.split(" | ")[3]

    # D-Net 46 ± 1 beats MLP2 42.33 ± 1.04 in every seed by 3.5-4 on every stream: the paired interval is above 0
    assert reproduction("+ D-Net beats every other row").startswith("**holds**")
    # MLP1 - Baseline per seed 0.2, 0.6, -0.1: the interval straddles 0; with it the seeds that would decide
    assert reproduction("+ MLP1 and + MLP2").startswith("**inconclusive**")
    assert "seeds to decide:" in reproduction("+ MLP1 and + MLP2")
    assert reproduction("D-Net gain over Baseline").startswith("**holds**")
    assert reproduction("the disentanglement network improves").startswith("**n/a** (threshold is a number")
    assert "dnet.table2" in page and "Status: **pending**: model lands with issue #5" in page
    assert "## Tuning" in page and "| `dnet.lambda_rec` | 1.0 | 0.25 | 0.80 |" in page
    assert "| validation (holdout) | 30.00 ± 1.00 | 33.00 ± 0.50 | +3.00 |" in page
    assert "![dnet-lambdas](../plots/tune/dnet-lambdas.png)" in page
    assert "objective spans 20.00 to 35.50 (range 15.50, std 4.25)" in page
    assert "Pruned: 3 of 12 trials, about 120 s of training saved." in page
    index = (out / "README.md").read_text(encoding="utf-8")
    assert "| [D-Net (AAAI 2022)](dnet.md) | 1 / 1 / 2 | 4 / 4 | 6 | 6 | 2 / 0 / 1 / 1 |" in index


def test_diagnostic_row_is_shown_but_never_judged(workspace):
    path = workspace / "benchmarks" / "dnet.table1.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["rows"].append({"name": "D-Net, no A-Net", "diagnostic": "does A-Net matter?", "reproduce": {"overrides": {}}})
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    runs = {**FAKE_RUNS, "D-Net, no A-Net": [60.0, 61.0, 62.0]}  # TEST DATA: beats + D-Net by far
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(_fake_result(runs)), encoding="utf-8")
    out = _write(workspace)
    page = (out / "dnet.md").read_text(encoding="utf-8")
    assert "| *D-Net, no A-Net* (diagnostic) | — · **56.00 ± 1.00** |" in page
    assert "Diagnostic row *D-Net, no A-Net* (talbench's, not in the paper): does A-Net matter?" in page
    claim = next(line for line in page.splitlines() if line.startswith("| + D-Net beats every other row"))
    assert claim.split(" | ")[3].startswith("**holds**")  # the diagnostic row is no competitor
    index = (out / "README.md").read_text(encoding="utf-8")
    assert "| [D-Net (AAAI 2022)](dnet.md) | 1 / 1 / 2 | 4 / 4 |" in index  # counts the paper's rows only


def test_control_row_is_shown_and_judged_by_its_claim(workspace):
    path = workspace / "benchmarks" / "dnet.table1.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["rows"].append({"name": "same size, no D-Net losses", "control": "layers or disentanglement?",
                        "reproduce": {"overrides": {}}})
    raw["claims"].append({"text": "D-Net beats the control", "source": "test", "check": {
        "kind": "greater", "a": "+ D-Net", "b": "same size, no D-Net losses", "metrics": ["fusion"]}})
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    runs = {**FAKE_RUNS, "same size, no D-Net losses": [40.0, 41.0, 42.0]}  # TEST DATA: well below + D-Net
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(_fake_result(runs)), encoding="utf-8")
    page = (_write(workspace) / "dnet.md").read_text(encoding="utf-8")
    assert "| *same size, no D-Net losses* (control) | — · **36.00 ± 1.00** | — · **44.00 ± 1.00** | " \
           "— · **41.00 ± 1.00** | — · **11.70** computed |" in page
    assert "Control row *same size, no D-Net losses* (talbench's, not in the paper; claims may name it): " \
           "layers or disentanglement?" in page
    claim = next(line for line in page.splitlines() if line.startswith("| D-Net beats the control"))
    assert claim.split(" | ")[2] == "**n/a** ('same size, no D-Net losses' fusion: no published value)"
    assert claim.split(" | ")[3].startswith("**holds**")
    best = next(line for line in page.splitlines() if line.startswith("| + D-Net beats every other row"))
    assert best.split(" | ")[3].startswith("**holds**")  # a control row is no competitor of "best"


def test_parameter_counts_are_shown_as_computed(workspace):
    page = (_write(workspace) / "dnet.md").read_text(encoding="utf-8")
    assert "| 10.1 · **11.70** computed (+1.60) |" in page and "11.70 ± 0.00" not in page
    assert "params_m: **computed** from the model's definition at the paper's dimensions" in page


def test_reported_metrics_are_shown_per_row_not_judged(workspace):
    page = (_write(workspace) / "dnet.md").read_text(encoding="utf-8")
    table1 = page.split("## dnet.table1")[1].split("## dnet.table2")[0]
    assert "Also recorded for every run (mean ± std over seeds; not judged): `row_seconds` = runner metric " \
           "`time/row_s`." in table1
    assert "| Row | row_seconds |" in table1 and "| + D-Net | 11.00 ± 1.00 |" in table1


def test_no_number_without_a_run(workspace):
    partial = {k: v for k, v in FAKE_RUNS.items() if k != "+ MLP2 (two MLPs)"}
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(_fake_result(partial)), encoding="utf-8")
    page = (_write(workspace) / "dnet.md").read_text(encoding="utf-8")
    table1 = page.split("## dnet.table1")[1].split("## dnet.table2")[0]
    reproduced_lines = [line for line in table1.splitlines() if "±" in line and line.startswith("| ")]
    names = {line.split(" | ")[0].removeprefix("| ") for line in reproduced_lines if "testrun" not in line}
    assert names == set(partial)  # every reproduced cell belongs to a row with listed runs
    assert "+ MLP2 (two MLPs) | 46.31 | 52.70 | 55.09 | 11.7 |" in table1  # not run: published only
    stale = page.split("## dnet.table2")[1]
    assert "±" not in stale.split("## ")[0]  # the pending table's stale results never show
    data = _fake_result()
    data["rows"][0]["runs"] = []
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dnet\.table1\.json: rows\.0\.runs"):
        _write(workspace, "lb2")
    data["rows"][0]["runs"] = [{"seed": 0, "run_id": "", "metrics": {"fusion": 1.0}}]
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rows\.0\.runs\.0\.run_id"):
        _write(workspace, "lb2")
    assert not (workspace / "lb2").exists()  # nothing half-written


def test_results_naming_unknown_rows_or_columns_are_errors(workspace):
    data = _fake_result({"F_cls / F_loc": [1.0, 2.0]})
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rows\[0\]\.name: 'F_cls / F_loc' is not a row of dnet\.table1"):
        _write(workspace)
    data = _fake_result()
    data["rows"][0]["runs"][0]["metrics"]["fusion_mAP"] = 3.0
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rows\[0\]\.runs\[0\]\.metrics: unknown column\(s\) \['fusion_mAP'\]"):
        _write(workspace)


def test_output_is_deterministic_and_replaced_atomically(workspace):
    first = {p.name: p.read_bytes() for p in _write(workspace).iterdir()}
    (workspace / "lb" / "notes.md").write_text("mine", encoding="utf-8")  # a user's file: kept
    second = {p.name: p.read_bytes() for p in _write(workspace).iterdir()}
    assert second == {**first, "notes.md": b"mine"}


def test_a_folder_that_is_not_a_leaderboard_is_never_replaced(workspace):
    (workspace / "docs").mkdir()
    (workspace / "docs" / "README.md").write_text("my project", encoding="utf-8")
    with pytest.raises(ConfigError, match="docs: not empty and not a previous output of this command"):
        _write(workspace, "docs")
    assert [p.name for p in (workspace / "docs").iterdir()] == ["README.md"]
    (_write(workspace) / "talnet.md").unlink()  # an earlier leaderboard from before a paper was added
    assert (_write(workspace) / "talnet.md").is_file()


def test_missing_results_folder_is_an_error(workspace):
    """It used to write five pages of published numbers only."""
    with pytest.raises(ConfigError, match="no_results: results folder not found"):
        write_leaderboards(workspace / "no_results", workspace / "lb", Console(quiet=True),
                           benchmarks_dir=workspace / "benchmarks", rule=RULE, repo_root=workspace)
    assert not (workspace / "lb").exists()


def test_results_of_different_profiles_are_not_mixed(workspace):
    """A table run by hand on `tiny` next to the pipeline's `smoke` tables: refused, naming both files."""
    path = workspace / "benchmarks" / "refactornet.table2.yaml"
    raw = yaml.safe_load((BENCHMARKS_DIR / "refactornet.table2.yaml").read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")  # active again
    row = next(r["name"] for r in raw["rows"] if "reproduce" in r)
    other = _fake_result({row: [50.0, 51.0]}) | {"table": "refactornet.table2", "paper": "refactornet"}
    other["data"] = {**other["data"], "profile": "tiny"}
    for run in other["rows"][0]["runs"]:
        run["metrics"] = {}
    (workspace / "results" / "refactornet.table2.json").write_text(json.dumps(other), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data synthetic/tiny, but .*dnet\.table1\.json has synthetic/smoke"):
        _write(workspace)
    assert not (workspace / "lb").exists()


def test_single_seed_results_are_inconclusive(workspace):
    data = _fake_result({name: values[:1] for name, values in FAKE_RUNS.items()})
    data["seeds"] = [0]
    (workspace / "results" / "dnet.table1.json").write_text(json.dumps(data), encoding="utf-8")
    page = (_write(workspace) / "dnet.md").read_text(encoding="utf-8")
    assert "**45.00 ± 0.00**" in page
    gain = next(line for line in page.splitlines() if line.startswith("| D-Net gain over Baseline"))
    assert re.search(r"\*\*(inconclusive|n/a)\*\*", gain.split(" | ")[3])
    assert "1 seed(s), needs 2" in page


def test_rule_comes_from_params_yaml(tmp_path):
    assert load_rule() == Rule(margin=1.0, min_seeds=2, resamples=1000, bootstrap_seed=0, max_seeds=100)
    bad = tmp_path / "params.yaml"
    bad.write_text("leaderboard: {margin: 1.0, min_seeds: 1, resamples: 1000, bootstrap_seed: 0, max_seeds: 100}\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError, match="min_seeds >= 2"):
        load_rule(bad)
    bad.write_text("data: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="leaderboard: missing section"):
        load_rule(bad)
