"""Benchmark files: the published numbers equal the shared transcription, the schema rejects bad files."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml
from helpers.paths import SHARED

from talbench.benchmark.schema import (
    BENCHMARKS_DIR,
    list_tables,
    load_all,
    load_benchmark,
    load_benchmark_file,
)
from talbench.config import deep_merge, load_params, resolve
from talbench.errors import ConfigError
from talbench.leaderboard.claims import HOLDS, NOT_APPLICABLE, judge_published

PUBLISHED = SHARED / "published" / "tables.yaml"


@pytest.fixture(scope="module")
def published() -> dict:
    return {t["id"]: t for t in yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))["tables"]}


@pytest.fixture(scope="module")
def benches():
    return load_all()


def test_one_file_per_published_table(published, benches):
    assert len(published) == 33
    assert set(benches) == set(published)
    assert list_tables() == list(benches)
    assert list_tables()[:2] == ["dnet.table1", "dnet.table2"]
    assert list_tables()[-2:] == ["cltdr_gmg.table14", "cltdr_gmg.table15"]
    cltdr = [t for t in list_tables() if t.startswith("cltdr_gmg.")]
    assert cltdr[9:12] == ["cltdr_gmg.table10", "cltdr_gmg.table11", "cltdr_gmg.table12"]  # numeric, not lexical


def test_published_numbers_equal_the_shared_transcription(published, benches):
    for table_id, table in published.items():
        bench = benches[table_id]
        for key in ("paper", "title", "dataset", "split", "features", "metric", "columns"):
            assert getattr(bench, key) == table[key], f"{table_id}.{key}"
        assert len(bench.paper_rows) == len(table["rows"]), table_id
        for row, source in zip(bench.paper_rows, table["rows"]):
            group = source.get("features", source.get("task"))
            assert row.name in (source["name"], f"{source['name']} [{group}]"), (table_id, row.name)
            for column in table["columns"]:
                mine, theirs = row.published[column], source[column]
                assert type(mine) is type(theirs) and mine == theirs, (table_id, row.name, column, mine, theirs)


def test_claims_of_the_transcription_are_all_encoded(published, benches):
    for table_id, table in published.items():
        encoded = [c.text for c in benches[table_id].claims if c.source == "tables.yaml"]
        assert encoded == table.get("claims", []), table_id


def _names_a_control_row(bench, check) -> bool:
    if hasattr(check, "checks"):
        return any(_names_a_control_row(bench, sub) for sub in check.checks)
    names = [getattr(check, f, None) for f in ("a", "b", "base")] + list(getattr(check, "rows", None) or [])
    return any(name is not None and bench.row(name).control is not None for name in names)


def test_published_tables_support_their_claims(benches):
    """Every claim holds on the printed numbers, except on the tables whose numbers we do not have and the claims
    that name one of talbench's control rows (no printed numbers): n/a."""
    controls = 0
    for bench in benches.values():
        for claim in bench.claims:
            control = _names_a_control_row(bench, claim.check)
            controls += control
            expected = NOT_APPLICABLE if bench.unpublished or control else HOLDS
            assert judge_published(bench, claim).verdict == expected, (bench.id, claim.text)
    assert controls == 1  # refactornet.table2: RefactorNet vs its encoders trained with L_D only
    assert {t for t, b in benches.items() if b.unpublished} == {f"talnet.table{i}" for i in range(1, 5)}


def test_borrowed_rows_read_their_numbers_from_the_source_table(benches):
    """A from_table row is the source row's printed numbers (shared columns), not a second transcription."""
    af = benches["cltdr_gmg.table12"].row("ActionFormer")
    assert af.from_table.table == "cltdr_gmg.table1"
    assert af.published == {"0.3": 82.3, "0.5": 75.1, "0.7": 50.3, "avg": 71.9, "avg_gain": None}
    assert "ActionFormer" not in [r.name for r in benches["cltdr_gmg.table12"].paper_rows]


def test_borrowed_row_errors_name_the_file_and_key(tmp_path):
    raw = _raw("cltdr_gmg.table12")
    shutil.copy(BENCHMARKS_DIR / "cltdr_gmg.table1.yaml", tmp_path)
    raw["rows"][3]["from_table"]["row"] = "ActionFormer [I3D-typo]"
    (tmp_path / "cltdr_gmg.table12.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cltdr_gmg.table12.yaml: rows\[3\].from_table.row: 'ActionFormer \[I3D-typo\]'"):
        load_benchmark_file(tmp_path / "cltdr_gmg.table12.yaml")
    raw["rows"][3]["from_table"]["row"] = "ActionFormer [InternVideo2-6B]"
    raw["rows"][3]["published"] = {"avg": 1.0}
    (tmp_path / "cltdr_gmg.table12.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rows\[3\].published: a from_table row reads its numbers"):
        load_benchmark_file(tmp_path / "cltdr_gmg.table12.yaml")


def test_unpublished_table_prints_no_number(tmp_path):
    raw = _raw("talnet.table2")
    raw["rows"][1]["published"]["rgb"] = 55.0
    (tmp_path / "talnet.table2.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match="unpublished: the table's numbers are missing, but row 'with context'"):
        load_benchmark_file(tmp_path / "talnet.table2.yaml")


def test_active_tables_are_the_implemented_models_and_their_rows_resolve(benches):
    """Pending tables say why and reproduce nothing; every reproduced row's overrides exist in params.yaml."""
    active = {t for t, b in benches.items() if b.status == "active"}
    assert active == ({f"dnet.table{i}" for i in range(1, 6)} | {f"refactornet.table{i}" for i in range(1, 6)}
                      | {f"talnet.table{i}" for i in (1, 2, 3, 4, 5, 8)}
                      | {f"cltdr_gmg.table{i}" for i in (1, *range(6, 16))})
    params = load_params()
    for table_id, bench in benches.items():
        if bench.status == "pending":
            assert bench.pending_reason and not bench.reproduced_rows, table_id
            continue
        for row in bench.reproduced_rows:
            cfg = resolve(params, "tiny", row.reproduce.overrides)  # ConfigError on a key params.yaml lacks
            deep_merge(cfg, {"test_time": row.reproduce.test_overrides or {}})
    assert "per-table profile is not wired" in benches["talnet.table6"].pending_reason
    assert benches["dnet.table1"].metrics["fusion"] == "fusion/mAP_0.5"


def _raw(table_id: str = "dnet.table1") -> dict:
    return yaml.safe_load((BENCHMARKS_DIR / f"{table_id}.yaml").read_text(encoding="utf-8"))


def _break_unknown_column(raw):
    raw["rows"][1]["published"]["rbg"] = 1.0


def _break_missing_row(raw):
    raw["claims"][1]["check"]["checks"][0]["a"] = "+ MLP3"


def _break_no_reason(raw):
    raw["status"], raw["pending_reason"] = "pending", None


def _break_duplicate_row(raw):
    raw["rows"][2]["name"] = raw["rows"][0]["name"]


def _break_kind(raw):
    raw["claims"][0]["check"]["kind"] = "better"


def _break_delta_bounds(raw):
    raw["claims"][0]["check"] = {"kind": "delta", "a": "+ D-Net", "b": "Baseline (A-Net)", "metrics": ["rgb"]}


def _break_active_without_reproduce(raw):
    raw["status"] = "active"
    for row in raw["rows"]:
        row.pop("reproduce", None)


def _break_claim_metric(raw):
    raw["claims"][0]["check"]["metrics"] = ["rgb", "map"]


def _break_extra_key(raw):
    raw["colums"] = ["rgb"]


def _break_metrics_mapping(raw):
    raw["metrics"]["mAP"] = "fusion/mAP_0.5"


def _break_missing_column(raw):
    del raw["rows"][3]["published"]["flow"]


def _break_reproduce_key(raw):
    raw["rows"][0]["reproduce"] = {"overide": {}}


def _break_diagnostic_with_numbers(raw):
    raw["rows"][0]["diagnostic"] = "a question"


def _break_claim_on_diagnostic(raw):
    raw["rows"].append({"name": "probe", "diagnostic": "a question", "reproduce": {"overrides": {}}})
    raw["claims"][0]["check"]["a"] = "probe"


def _break_control_with_numbers(raw):
    raw["rows"][0]["control"] = "what it controls for"


def _break_control_and_diagnostic(raw):
    raw["rows"].append({"name": "probe", "control": "x", "diagnostic": "y", "reproduce": {"overrides": {}}})


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        (_break_unknown_column, r"rows\[1\]\.published: unknown column\(s\) \['rbg'\]"),
        (_break_missing_row, r"claims\[1\]\.check\.checks\[0\]\.a: row '\+ MLP3' does not exist"),
        (_break_no_reason, r"pending_reason: a pending table must say why"),
        (_break_duplicate_row, r"rows\[2\]\.name: row name 'Baseline \(A-Net\)' appears more than once"),
        (_break_kind, r"claims\.0\.check: .*tag 'better'"),
        (_break_delta_bounds, r"claims\.0\.check\.delta: .*needs 'min', 'max' or both"),
        (_break_active_without_reproduce, r"status: an active table needs at least one row"),
        (_break_claim_metric, r"claims\[0\]\.check\.metrics: 'map' is not a numeric column"),
        (_break_extra_key, r"colums: Extra inputs are not permitted"),
        (_break_metrics_mapping, r"metrics\.mAP: not a numeric column"),
        (_break_missing_column, r"rows\[3\]\.published: missing column\(s\) \['flow'\]"),
        (_break_reproduce_key, r"rows\.0\.reproduce\.overide: Extra inputs"),
        (_break_diagnostic_with_numbers, r"rows\[0\]: a diagnostic row has 'reproduce' and no 'published'"),
        (_break_claim_on_diagnostic, r"claims\[0\]\.check\.a: row 'probe' is a diagnostic row"),
        (_break_control_with_numbers, r"rows\[0\]: a control row has 'reproduce' and no 'published'"),
        (_break_control_and_diagnostic, r"rows\[4\]: a row is either diagnostic or a control, not both"),
    ],
)
def test_invalid_files_name_file_and_key(tmp_path, breaker, message):
    raw = copy.deepcopy(_raw())
    breaker(raw)
    path = tmp_path / "dnet.table1.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        load_benchmark_file(path)
    assert str(path) in str(err.value)


def test_file_name_must_match_id_and_yaml_must_parse(tmp_path):
    path = tmp_path / "dnet.table9.yaml"
    path.write_text(yaml.safe_dump(_raw()), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dnet\.table9\.yaml: id: 'dnet\.table1' does not match"):
        load_benchmark_file(path)
    path.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_benchmark_file(path)
    with pytest.raises(ConfigError, match=r"no benchmark 'dnet\.table7' \(known: dnet\.table9\)"):
        load_benchmark("dnet.table7", tmp_path)


def test_activating_a_table_is_a_small_edit(tmp_path):
    """What the model engineers do: add `reproduce` to rows and flip the status."""
    raw = _raw("talnet.table5")
    raw["status"], raw["pending_reason"] = "pending", "not implemented yet"  # as the table was before its family
    del raw["row_defaults"], raw["rows"][0]["reproduce"]
    pending = tmp_path / "pending" / "talnet.table5.yaml"
    pending.parent.mkdir()
    pending.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    assert load_benchmark_file(pending).status == "pending"
    raw["status"], raw["pending_reason"] = "active", None
    raw["rows"][0]["reproduce"] = {"overrides": {"model": {"runner": "talnet"}}, "test_overrides": {}}
    path = tmp_path / "talnet.table5.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    bench = load_benchmark_file(path)
    assert [r.name for r in bench.reproduced_rows] == ["TAL-Net"]
    assert bench.row("TAL-Net").reproduce.overrides == {"model": {"runner": "talnet"}}
    assert list_tables(tmp_path, status="active") == ["talnet.table5"]
