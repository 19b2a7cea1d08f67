"""Study definitions (``params.yaml`` -> ``tune.studies.<name>``) and their search spaces.

A study tunes some loss weights of one benchmark row: its configuration is resolved in the order
:mod:`talbench.config` documents: ``params.yaml`` <- ``profiles[<profile>]`` <- the row's layers
(:func:`talbench.benchmark.rows.row_layers`) <- the study's ``overrides`` <- the trial's parameters <- the
tuning splits (``run.train_split = train_fit``, ``run.eval_split = holdout``), so the objective is a validation
mAP on held-out training videos and never sees the test split. The configuration is scoped to the row's model
family, as a table row's is.
Search-space entries are dotted ``params.yaml`` keys: ``{type: float|int, low, high, log}`` or
``{type: categorical, choices: [...]}`` (Optuna's ``suggest_*``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from talbench.config import REPO_ROOT, Layer, deep_merge, load_params, nest, resolve
from talbench.errors import ConfigError

TUNING_SPLITS = {"run": {"train_split": "train_fit", "eval_split": "holdout"}}
FINAL_SPLITS = {"run": {"train_split": "train", "eval_split": "test"}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpace(_Strict):
    """One searched parameter (Optuna distribution)."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | float | int | bool] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("a categorical parameter takes 'choices' only (no low/high/log)")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low/high, not 'choices'")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got {self.low}")
        return self


class SamplerSpec(_Strict):
    """TPE (Optuna's default) with the constant liar, so parallel workers do not sample the same point."""

    seed: int = 0
    n_startup_trials: int = Field(default=5, ge=0)
    multivariate: bool = True
    constant_liar: bool = True


class PrunerSpec(_Strict):
    """``median``: MedianPruner; ``successive_halving``: SuccessiveHalvingPruner; ``none``: no pruning."""

    type: Literal["median", "successive_halving", "none"] = "median"
    n_startup_trials: int = Field(default=3, ge=0)  # median
    n_warmup_steps: int = Field(default=1, ge=0)  # median
    interval_steps: int = Field(default=1, ge=1)  # median
    min_resource: int | Literal["auto"] = "auto"  # successive halving
    reduction_factor: int = Field(default=3, ge=2)  # successive halving
    min_early_stopping_rate: int = Field(default=0, ge=0)  # successive halving


class StudySpec(_Strict):
    """``tune.studies.<name>`` in params.yaml."""

    paper: str = Field(min_length=1)
    table: str | None = None
    row: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    objective: str = Field(min_length=1)  # a runner metric, e.g. fusion/mAP_0.5, evaluated on the holdout
    direction: Literal["maximize", "minimize"] = "maximize"
    epochs_key: str = Field(min_length=1)  # dotted key: epochs of the stage that reports each epoch
    n_trials: int = Field(ge=1)
    search_seeds: list[int] = Field(min_length=1)
    final_seeds: list[int] = Field(min_length=1)
    space: dict[str, ParamSpace] = Field(min_length=1)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)

    @model_validator(mode="after")
    def _row_needs_table(self) -> StudySpec:
        if self.row is not None and self.table is None:
            raise ValueError("'row' needs 'table'")
        return self


class Study:
    """A resolved study: its spec, the base configuration (no trial parameters) and the tune settings."""

    def __init__(self, name: str, spec: StudySpec, base_cfg: dict[str, Any], settings: dict[str, Any]):
        self.name = name
        self.spec = spec
        self.base_cfg = base_cfg
        self.settings = settings

    @property
    def param_names(self) -> list[str]:
        return list(self.spec.space)

    def published(self) -> dict[str, Any]:
        """The paper's default of each searched parameter (the base configuration's value)."""
        return {name: get_dotted(self.base_cfg, name) for name in self.spec.space}

    def config(self, values: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
        """The run configuration with ``values`` (dotted keys) set and the ``splits`` applied."""
        try:
            cfg = deep_merge(self.base_cfg, nest(values), where="")
        except ConfigError as err:
            raise ConfigError(f"params.yaml: tune.studies.{self.name}.space: {err}") from err
        return deep_merge(cfg, splits)


    @property
    def epochs(self) -> int:
        return int(get_dotted(self.base_cfg, self.spec.epochs_key))



def get_dotted(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"params.yaml: key '{dotted}' does not exist")
        node = node[part]
    return node


def suggest(trial, space: dict[str, ParamSpace]) -> dict[str, Any]:
    """One value per searched parameter from ``trial`` (an ``optuna.Trial``), keyed by dotted name."""
    values: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            values[name] = trial.suggest_categorical(name, p.choices)
        elif p.type == "int":
            values[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        else:
            values[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return values


def _row_layers(spec: StudySpec, benchmarks_dir: Path, where: str) -> list[Layer | None]:
    """The layers of the study's benchmark row (none without a table or row, or for a row not realised in its
    benchmark file: the study's own overrides then realise it)."""
    if spec.table is None:
        return []
    from talbench.benchmark.rows import row_layers
    from talbench.benchmark.schema import load_benchmark

    bench = load_benchmark(spec.table, benchmarks_dir)
    if bench.paper != spec.paper:
        raise ConfigError(f"{where}.paper: '{spec.paper}' but table {spec.table} is of paper '{bench.paper}'")
    if spec.row is None:
        return []
    try:
        row = bench.row(spec.row)
    except KeyError as err:
        raise ConfigError(f"{where}.row: {err.args[0]}") from None
    if row.reproduce is None:
        return []
    return row_layers(bench, row, f"{Path(benchmarks_dir) / spec.table}.yaml")


def load_study(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    params_path: str | Path | None = None,
    benchmarks_dir: str | Path = REPO_ROOT / "benchmarks",
) -> Study:
    """Read and check study ``name``; errors name params.yaml and the key."""
    params = params if params is not None else load_params(params_path or REPO_ROOT / "params.yaml")
    tune = params.get("tune")
    if not isinstance(tune, dict) or not isinstance(tune.get("studies"), dict):
        raise ConfigError("params.yaml: tune.studies is missing")
    where = f"params.yaml: tune.studies.{name}"
    if name not in tune["studies"]:
        raise ConfigError(f"params.yaml: tune.studies has no study '{name}' (known: {sorted(tune['studies'])})")
    try:
        spec = StudySpec.model_validate(tune["studies"][name])
    except ValidationError as err:
        raise ConfigError(
            "\n".join(f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        ) from None
    for seeds_key in ("search_seeds", "final_seeds"):
        seeds = getattr(spec, seeds_key)
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"{where}.{seeds_key}: seeds repeat ({seeds})")
    from talbench.runners.families import family_of

    layers = _row_layers(spec, Path(benchmarks_dir), where)
    base = resolve(params, tune.get("profile"), *layers, Layer(spec.overrides, f"{where}.overrides"))
    base = family_of(base).scoped(base)
    for key in spec.space:
        try:
            get_dotted(base, key)
        except ConfigError:
            raise ConfigError(f"{where}.space.{key}: not a key of params.yaml") from None
    try:
        epochs = int(get_dotted(base, spec.epochs_key))
    except ConfigError:
        raise ConfigError(f"{where}.epochs_key: '{spec.epochs_key}' is not a key of params.yaml") from None
    if epochs < 1:
        raise ConfigError(f"{where}.epochs_key: '{spec.epochs_key}' = {epochs}, need >= 1")
    return Study(name, spec, base, {k: v for k, v in tune.items() if k != "studies"})
