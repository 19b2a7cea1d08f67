"""The recorded results the leaderboard reads: ``results/<table id>.json`` and ``results/tune/<study>.json``.

``results/<table id>.json`` is written by ``talbench run`` (format fixed in the task contract, see
docs/leaderboards.md); row metrics are keyed by table column. The leaderboard recomputes every mean and
standard deviation from the individual runs (sample std, ddof=1; 0 with one seed), so a number shown always
comes from runs with an MLflow run id.

``results/tune/<study>.json`` is written by ``talbench tune`` (format :class:`TuneResult`): the tuned loss
weights against the paper's defaults, on the tuning holdout (validation) and, once, on the test split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from talbench.benchmark.schema import Benchmark
from talbench.errors import ConfigError
from talbench.stats import mean_std


@dataclass(frozen=True)
class Stat:
    """A number of one row and column: a published value (std 0, n 0) or a mean over ``n`` seeds."""

    mean: float
    std: float = 0.0
    n: int = 0


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RunRecord(_Record):
    seed: int
    run_id: str = Field(min_length=1)
    reused: bool = False
    predictions: str | None = None  # the run's prediction file, relative to the results folder's parent
    metrics: dict[str, float | None]
    reported: dict[str, float | None] = Field(default_factory=dict)  # the benchmark's `reported:` metrics


class RowResult(_Record):
    name: str
    config_hash: str | None = None
    train_hash: str | None = None
    runs: list[RunRecord] = Field(min_length=1)


class DataInfo(_Record):
    source: str
    profile: str | None = None
    features: str | None = None
    checksum: str | None = None


class EvalInfo(_Record):
    split: str
    tiou_thresholds: list[float]
    predictions: str  # the table's prediction folder, relative to the results folder's parent


class TableResult(_Record):
    table: str
    paper: str
    created: str
    git_commit: str
    git_dirty: bool = False
    data: DataInfo
    eval: EvalInfo | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    parent_run_id: str | None = None
    seeds: list[int]
    devices: list[str] = Field(default_factory=list)  # the rows' described devices (the runs' `device` tags)
    rows: list[RowResult]

    def stats(self, field: str = "metrics") -> dict[str, dict[str, Stat]]:
        """``{row: {column: Stat(mean, std, n)}}`` over the runs that report the column (``field="reported"``:
        the same for the benchmark's reported metrics)."""
        out: dict[str, dict[str, Stat]] = {}
        for row in self.rows:
            records = [getattr(run, field) for run in row.runs]
            columns = sorted({c for values in records for c, v in values.items() if v is not None})
            out[row.name] = {}
            for column in columns:
                values = [r[column] for r in records if r.get(column) is not None]
                out[row.name][column] = Stat(*mean_std(values), len(values))
        return out


class Score(_Record):
    """An mAP of one configuration: mean ± std over the runs listed."""

    mean: float
    std: float = 0.0
    run_ids: list[str] = Field(min_length=1)


class SplitScores(_Record):
    split: str
    published: Score  # the paper's default loss weights
    tuned: Score


class TunedParam(_Record):
    name: str  # params.yaml key, e.g. dnet.loss.lambda_cls
    published: float | int | str | bool | None
    tuned: float | int | str | bool | None
    importance: float | None = None  # sensitivity: Optuna's parameter importance in [0, 1]


class Sensitivity(_Record):
    """Spread of the validation objective over the completed trials (how much the weights matter)."""

    n_complete: int = Field(ge=0)
    min: float
    max: float
    max_minus_min: float
    std: float


class TuneResult(_Record):
    """``results/tune/<study>.json``, written by the tuning stage."""

    study: str
    paper: str
    table: str | None = None
    row: str | None = None
    objective: str  # e.g. "fusion/mAP_0.5 on holdout"
    n_trials: int = Field(ge=1)
    created: str
    git_commit: str
    storage: str | None = None
    data: DataInfo
    params: list[TunedParam] = Field(min_length=1)
    validation: SplitScores
    test: SplitScores | None = None
    plot: str | None = None  # path of the study's plot, relative to the repository root
    sensitivity: Sensitivity | None = None
    n_pruned: int | None = None
    seconds_saved_by_pruning: float | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}") from err


def _validation_message(path: Path, err: ValidationError) -> str:
    return "\n".join(
        f"{path}: {'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in err.errors()
    )


def load_table_result(path: Path, bench: Benchmark) -> TableResult:
    """Read and check one ``results/<table>.json`` against its benchmark (rows and columns must exist)."""
    try:
        result = TableResult.model_validate(_read_json(path))
    except ValidationError as err:
        raise ConfigError(_validation_message(path, err)) from None
    if result.table != bench.id:
        raise ConfigError(f"{path}: table: '{result.table}' but the file is for '{bench.id}'")
    reproducible = {row.name for row in bench.reproduced_rows}
    for i, row in enumerate(result.rows):
        if row.name not in bench.row_names:
            raise ConfigError(f"{path}: rows[{i}].name: '{row.name}' is not a row of {bench.id}")
        if row.name not in reproducible:
            raise ConfigError(f"{path}: rows[{i}].name: '{row.name}' has no 'reproduce' in {bench.id}")
        for j, run in enumerate(row.runs):
            unknown = sorted(set(run.metrics) - set(bench.columns))
            if unknown:
                raise ConfigError(f"{path}: rows[{i}].runs[{j}].metrics: unknown column(s) {unknown}")
            unknown = sorted(set(run.reported) - set(bench.reported))
            if unknown:
                raise ConfigError(f"{path}: rows[{i}].runs[{j}].reported: not in the benchmark's reported {unknown}")
    return result


def load_tune_results(results_dir: Path) -> list[TuneResult]:
    """Every ``<results_dir>/tune/*.json``, sorted by study name."""
    out = []
    for path in sorted((Path(results_dir) / "tune").glob("*.json")):
        try:
            out.append(TuneResult.model_validate(_read_json(path)))
        except ValidationError as err:
            raise ConfigError(_validation_message(path, err)) from None
    return sorted(out, key=lambda t: t.study)
