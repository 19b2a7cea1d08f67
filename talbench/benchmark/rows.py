"""The rows of a benchmark table that a command runs, and the configuration of each.

A row's configuration is resolved in the order :mod:`talbench.config` documents, from the layers built here
(:func:`row_layers`): the data source given on the command line, the tuned loss weights (``--tuned``), the
table's ``row_defaults``, the row's ``overrides``, then its ``test_overrides`` under ``test_time``; it is then
scoped to the row's model family (:meth:`talbench.runners.families.Family.scoped`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from talbench.benchmark.schema import Benchmark, Row
from talbench.config import TEST_TIME_KEY, Layer, nest, resolve
from talbench.errors import ConfigError


def select_rows(bench: Benchmark, rows: str | None, where: str) -> list[tuple[int, Row]]:
    """Reproducible rows (index in the file, row), filtered by ``--rows`` (names or 0-based indices)."""
    all_rows = list(enumerate(bench.rows))
    if rows is None:
        return [(i, r) for i, r in all_rows if r.reproduce is not None]
    chosen: list[tuple[int, Row]] = []
    for token in (t.strip() for t in rows.split(",") if t.strip()):
        if token.isdigit():
            index = int(token)
            if index >= len(all_rows):
                raise ConfigError(f"{where}: --rows index {index} out of range (table has {len(all_rows)} rows)")
            found = all_rows[index]
        else:
            matches = [pair for pair in all_rows if pair[1].name == token]
            if not matches:
                raise ConfigError(f"{where}: --rows '{token}' is not a row name (rows: {bench.row_names})")
            found = matches[0]
        if found[1].reproduce is None:
            raise ConfigError(f"{where}: row '{found[1].name}' is a published reference line, not reproduced")
        if found not in chosen:
            chosen.append(found)
    return chosen


def row_layers(bench: Benchmark, row: Row, where: str, *, data_source: str | None = None,
               tuned: dict[str, Any] | None = None) -> list[Layer]:
    """The override layers of ``row`` after params.yaml and the profile (see the module docstring)."""
    reproduce = row.reproduce
    defaults = bench.row_defaults
    return [
        Layer({"data": {"source": data_source}}, "--data") if data_source is not None else None,
        Layer(tuned, "--tuned") if tuned else None,
        Layer(defaults.overrides, f"{where} row_defaults.overrides") if defaults else None,
        Layer(defaults.test_overrides, f"{where} row_defaults.test_overrides", TEST_TIME_KEY) if defaults else None,
        Layer(reproduce.overrides, f"{where} row '{row.name}' overrides") if reproduce else None,
        Layer(reproduce.test_overrides, f"{where} row '{row.name}' test_overrides", TEST_TIME_KEY) if reproduce else None,
    ]


def row_config(params: dict[str, Any], profile: str | None, bench: Benchmark, row: Row, where: str, *,
               data_source: str | None = None, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved configuration of ``row``, scoped to its model family."""
    from talbench.runners.families import family_of

    cfg = resolve(params, profile, *row_layers(bench, row, where, data_source=data_source, tuned=tuned))
    return family_of(cfg).scoped(cfg)


def tuned_study(params: dict[str, Any], paper: str, table: str) -> str:
    """The Optuna study (params.yaml ``tune.studies``) whose weights ``--tuned`` applies to ``table``:
    the study tuned on this table, else the only study of the paper."""
    studies = (params.get("tune") or {}).get("studies") or {}
    own = [name for name, study in studies.items() if study.get("table") == table]
    of_paper = [name for name, study in studies.items() if study.get("paper") == paper]
    chosen = own or of_paper
    if len(chosen) != 1:
        found = "none" if not chosen else ", ".join(chosen)
        raise ConfigError(f"params.yaml: tune.studies: --tuned needs exactly one study for {table} ({found})")
    return chosen[0]


def load_tuned(study: str, tuned_dir: Path) -> dict[str, Any]:
    """``tuned/<study>.json`` (flat ``{"dotted.key": value}``, written by ``talbench tune``) as overrides."""
    path = Path(tuned_dir) / f"{study}.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no tuned weights for study '{study}': run `talbench tune {study}` first")
    try:
        flat = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(flat, dict):
        raise ConfigError(f"{path}: expected a flat mapping of dotted parameter keys to values")
    return nest(flat)


def column_metrics(bench: Benchmark, row: Row, metrics: dict[str, float], where: str) -> dict[str, float | None]:
    """Runner metrics keyed by table column (through the benchmark's ``metrics:`` mapping). A column the
    paper filled must be produced by the runner; an empty published cell may stay empty."""
    values: dict[str, float | None] = {}
    for column, metric in bench.metrics.items():
        if metric in metrics:
            values[column] = float(metrics[metric])
        elif row.published.get(column) is not None:
            raise ConfigError(
                f"{where}: row '{row.name}' column '{column}' needs metric '{metric}', which the runner "
                f"did not report (reported: {sorted(metrics)})"
            )
        else:
            values[column] = None
    return values
