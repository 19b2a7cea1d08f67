"""Benchmarks as data: one YAML file per published table (``benchmarks/<table id>.yaml``).

A benchmark file holds a table exactly as the paper prints it (dataset, split, features, metric, columns and
published numbers), how the table's columns map onto the metrics a runner reports, the configuration overrides
that realise each reproduced row, and the paper's claims in a structured form that
:mod:`talbench.leaderboard.claims` judges. The file format is validated by the pydantic models below; any
problem raises :class:`talbench.config.ConfigError` naming the file and the key.

Claim checks (``check:`` of a claim; ``metrics`` are table columns, every comparison holds per metric):

* ``greater``      ``a > b``
* ``delta``        ``min <= a - b <= max`` (either bound may be left out)
* ``ratio``        ``a / b >= min``
* ``best``         ``a > r`` for every row ``r`` in ``others`` (default: every other row of the table)
* ``order``        ``rows[0] < rows[1] < ...`` (strictly increasing)
* ``gain_larger``  ``a - base > b - base``
* ``not_greater``  ``a - b <= margin``: a does not beat b (non-superiority; ``leaderboard.margin`` in params.yaml)
* ``similar``      ``|a - b| <= margin`` (the same margin)
* ``all``          every check in ``checks`` holds
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from talbench.config import REPO_ROOT, read_yaml_mapping
from talbench.errors import ConfigError

BENCHMARKS_DIR = REPO_ROOT / "benchmarks"

#: Columns a runner computes from the model's definition rather than measures (parameter counts at the paper's
#: dimensions): the same for every seed, so the leaderboard shows the count, not a mean and std over seeds.
COMPUTED_COLUMNS = frozenset({"params_m"})

#: The papers talbench reproduces, in the order the leaderboards list them (titles as published).
PAPERS: dict[str, dict[str, str]] = {
    "dnet": {
        "short": "D-Net",
        "title": "Learning Disentangled Classification and Localization Representations for Temporal "
        "Action Localization",
        "venue": "AAAI 2022",
    },
    "refactornet": {
        "short": "RefactorNet",
        "title": "Learning to Refactor Action and Co-occurrence Features for Temporal Action Localization",
        "venue": "CVPR 2022",
    },
    "talnet": {
        "short": "TAL-Net",
        "title": "Rethinking the Faster R-CNN Architecture for Temporal Action Localization",
        "venue": "CVPR 2018",
    },
    "cltdr_gmg": {
        "short": "CLTDR-GMG",
        "title": "Temporal Action Localization with Cross Layer Task Decoupling and Refinement",
        "venue": "AAAI 2025",
    },
}

PublishedValue = StrictBool | StrictInt | StrictFloat | StrictStr | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Greater(_Strict):
    """Row ``a`` is higher than row ``b`` on every metric."""

    kind: Literal["greater"]
    a: str
    b: str
    metrics: list[str] = Field(min_length=1)


class Delta(_Strict):
    """``min <= a - b <= max`` on every metric (a missing bound is unbounded)."""

    kind: Literal["delta"]
    a: str
    b: str
    metrics: list[str] = Field(min_length=1)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Delta:
        if self.min is None and self.max is None:
            raise ValueError("a delta check needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"delta check has min {self.min} > max {self.max}")
        return self


class Ratio(_Strict):
    """``a / b >= min`` on every metric (e.g. parameter counts)."""

    kind: Literal["ratio"]
    a: str
    b: str
    metrics: list[str] = Field(min_length=1)
    min: float = Field(gt=0)


class Best(_Strict):
    """Row ``a`` is higher than every row of ``others`` (default: all other rows) on every metric."""

    kind: Literal["best"]
    a: str
    metrics: list[str] = Field(min_length=1)
    others: list[str] | None = None


class Order(_Strict):
    """The rows are strictly increasing on every metric, in the order listed."""

    kind: Literal["order"]
    rows: list[str] = Field(min_length=2)
    metrics: list[str] = Field(min_length=1)


class GainLarger(_Strict):
    """``a - base > b - base`` on every metric: the change from ``base`` to ``a`` exceeds that to ``b``."""

    kind: Literal["gain_larger"]
    a: str
    b: str
    base: str
    metrics: list[str] = Field(min_length=1)


class NotGreater(_Strict):
    """Row ``a`` does not beat row ``b`` by more than the margin (``leaderboard.margin``): ``a - b <= margin``."""

    kind: Literal["not_greater"]
    a: str
    b: str
    metrics: list[str] = Field(min_length=1)


class Similar(_Strict):
    """Rows ``a`` and ``b`` are within the margin of each other (``leaderboard.margin``): ``|a - b| <= margin``."""

    kind: Literal["similar"]
    a: str
    b: str
    metrics: list[str] = Field(min_length=1)


class AllOf(_Strict):
    """Every listed check holds."""

    kind: Literal["all"]
    checks: list[Check] = Field(min_length=1)


Check = Annotated[Greater | Delta | Ratio | Best | Order | GainLarger | NotGreater | Similar | AllOf,
                  Field(discriminator="kind")]
AllOf.model_rebuild()


class Claim(_Strict):
    """A claim the paper draws from the table, and its machine-judgeable form."""

    text: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the claim is stated (tables.yaml, a paper section)")
    check: Check
    real_data_only: bool = Field(
        default=False,
        description="the check's threshold is a number of the real benchmark (e.g. '+3.52 mAP'): "
        "not judged on reproductions with synthetic data",
    )


class Reproduce(_Strict):
    """How a talbench model realises the row."""

    overrides: dict[str, Any] = Field(default_factory=dict)
    test_overrides: dict[str, Any] = Field(default_factory=dict)


class FromTable(_Strict):
    """Where a borrowed row's published numbers are printed: another table of the same paper."""

    table: str = Field(pattern=r"^[a-z_]+\.table\d+$")
    row: str = Field(min_length=1)


class Row(_Strict):
    name: str = Field(min_length=1)
    published: dict[str, PublishedValue] = Field(default_factory=dict)
    reproduce: Reproduce | None = None
    diagnostic: str | None = Field(
        default=None,
        description="a row talbench adds to test an explanation of the table (not in the paper): the question "
        "it answers; it has no published numbers and claims cannot name it",
    )
    from_table: FromTable | None = Field(
        default=None,
        description="a row the table does not print but its claims compare with (e.g. the original model of "
        "a plug-in ablation): its published numbers are read from that table's row for the shared columns",
    )
    control: str | None = Field(
        default=None,
        description="a control row talbench adds because a claim the paper states cannot be tested with the "
        "paper's own rows (what it controls for): no published numbers; unlike a diagnostic row, claims may name it",
    )


class Benchmark(_Strict):
    """One published table (see the module docstring for the claim checks)."""

    id: str = Field(pattern=r"^[a-z_]+\.table\d+$")
    paper: str
    title: str
    dataset: str | list[str]
    split: str | dict[str, str]
    features: str
    metric: str
    columns: list[str] = Field(min_length=1)
    status: Literal["active", "pending"]
    pending_reason: str | None = None
    unpublished: str | None = Field(
        default=None,
        description="why the table's numbers are missing from the transcription (e.g. not legible in our copy): "
        "every printed cell is null and claims are judged on the reproduction only",
    )
    metrics: dict[str, str] = Field(default_factory=dict)
    reported: dict[str, str] = Field(
        default_factory=dict,
        description="runner metrics recorded for every run in results/<table>.json besides the columns (e.g. the "
        "proposals' AR@AN, a probe's accuracy, the row's seconds): name -> runner metric; shown, never judged",
    )
    row_defaults: Reproduce | None = Field(
        default=None,
        description="overrides shared by every reproduced row of the table (e.g. its model family), applied "
        "before each row's own",
    )
    rows: list[Row] = Field(min_length=1)
    claims: list[Claim] = Field(default_factory=list)
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Benchmark:
        if self.paper not in PAPERS:
            raise ValueError(f"paper: unknown paper '{self.paper}' (known: {sorted(PAPERS)})")
        if self.id.split(".")[0] != self.paper:
            raise ValueError(f"id: '{self.id}' does not start with its paper '{self.paper}.'")
        if self.status == "pending" and not (self.pending_reason or "").strip():
            raise ValueError("pending_reason: a pending table must say why it is pending")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"columns: repeated column in {self.columns}")
        for column in self.metrics:
            if column not in self.numeric_columns:
                raise ValueError(f"metrics.{column}: not a numeric column of the table {self.columns}")
        for name in self.reported:
            if name in self.columns:
                raise ValueError(f"reported.{name}: a column of the table (reported metrics are not columns)")
        names = [row.name for row in self.rows]
        for i, row in enumerate(self.rows):
            if row.name in names[:i]:
                raise ValueError(f"rows[{i}].name: row name '{row.name}' appears more than once")
            if row.diagnostic is not None or row.control is not None:
                kind = "diagnostic" if row.diagnostic is not None else "control"
                if row.diagnostic is not None and row.control is not None:
                    raise ValueError(f"rows[{i}]: a row is either diagnostic or a control, not both")
                if row.published or row.reproduce is None or row.from_table is not None:
                    raise ValueError(f"rows[{i}]: a {kind} row has 'reproduce' and no 'published' numbers")
                continue
            if row.from_table is not None and row.from_table.table.split(".")[0] != self.paper:
                raise ValueError(f"rows[{i}].from_table: '{row.from_table.table}' is not a table of '{self.paper}'")
            unknown = sorted(set(row.published) - set(self.columns))
            if unknown:
                raise ValueError(f"rows[{i}].published: unknown column(s) {unknown} (columns: {self.columns})")
            missing = [c for c in self.columns if c not in row.published]
            if missing:
                raise ValueError(f"rows[{i}].published: missing column(s) {missing} (use null for a dash)")
            if row.reproduce is not None and not any(c in self.metrics for c in self.numeric_columns):
                raise ValueError(f"rows[{i}].reproduce: no numeric column of the table is mapped under 'metrics'")
        if self.unpublished is not None:
            printed = [(r.name, c) for r in self.paper_rows for c, v in r.published.items() if v is not None]
            if printed:
                raise ValueError(f"unpublished: the table's numbers are missing, but row '{printed[0][0]}' "
                                 f"prints column '{printed[0][1]}'")
        if self.status == "active" and not self.reproduced_rows:
            raise ValueError("status: an active table needs at least one row with 'reproduce'")
        for i, claim in enumerate(self.claims):
            self._check_refs(claim.check, f"claims[{i}].check")
        return self

    def _check_refs(self, check: Check, where: str) -> None:
        if isinstance(check, AllOf):
            for j, sub in enumerate(check.checks):
                self._check_refs(sub, f"{where}.checks[{j}]")
            return
        for metric in check.metrics:
            if metric not in self.numeric_columns:
                raise ValueError(f"{where}.metrics: '{metric}' is not a numeric column of {self.columns}")
        refs: dict[str, str] = {}
        for field in ("a", "b", "base"):
            if hasattr(check, field):
                refs[field] = getattr(check, field)
        for j, name in enumerate(getattr(check, "rows", None) or []):
            refs[f"rows[{j}]"] = name
        for j, name in enumerate(getattr(check, "others", None) or []):
            refs[f"others[{j}]"] = name
        for field, name in refs.items():
            if name not in self.row_names:
                raise ValueError(f"{where}.{field}: row '{name}' does not exist in the table")
            if self.row(name).diagnostic is not None:
                raise ValueError(f"{where}.{field}: row '{name}' is a diagnostic row, not one of the paper's")

    # ------------------------------------------------------------------ accessors
    @property
    def row_names(self) -> list[str]:
        return [row.name for row in self.rows]

    @property
    def paper_rows(self) -> list[Row]:
        """The rows the table prints (without talbench's diagnostic and control rows and rows borrowed from other
        tables)."""
        return [row for row in self.rows if row.diagnostic is None and row.control is None and row.from_table is None]

    @property
    def numeric_columns(self) -> list[str]:
        """Columns holding numbers in at least one row (descriptive columns hold text or booleans), and the
        columns a runner metric fills (a table whose numbers are missing still has numeric columns)."""
        return [
            c
            for c in self.columns
            if c in self.metrics
            or any(isinstance(r.published.get(c), int | float) and not isinstance(r.published.get(c), bool)
                   for r in self.rows)
        ]

    @property
    def reproduced_rows(self) -> list[Row]:
        """Rows that a talbench model realises (those with ``reproduce``)."""
        return [row for row in self.rows if row.reproduce is not None]

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"{self.id}: no row named '{name}' (rows: {self.row_names})")

    @property
    def paper_title(self) -> str:
        return PAPERS[self.paper]["title"]


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {loc + ': ' if loc else ''}{message}")
    return "\n".join(lines)


def _borrow_published(raw: dict[str, Any], path: Path) -> None:
    """Fill the ``published`` numbers of every ``from_table`` row of ``raw`` from the row it names (the
    columns both tables share; the others are null), so that a number is transcribed once."""
    columns = raw.get("columns") if isinstance(raw.get("columns"), list) else []
    for i, row in enumerate(raw.get("rows") or []):
        source = row.get("from_table") if isinstance(row, dict) else None
        if not isinstance(source, dict):
            continue
        where = f"{path}: rows[{i}].from_table"
        if "published" in row:
            raise ConfigError(f"{path}: rows[{i}].published: a from_table row reads its numbers from the source table")
        source_path = path.parent / f"{source.get('table')}.yaml"
        if not source_path.is_file():
            raise ConfigError(f"{where}.table: no benchmark file {source_path}")
        other = read_yaml_mapping(source_path, "benchmark file")
        match = [r for r in other.get("rows") or [] if isinstance(r, dict) and r.get("name") == source.get("row")]
        if not match or "published" not in match[0]:
            raise ConfigError(f"{where}.row: '{source.get('row')}' is not a printed row of {source.get('table')}")
        row["published"] = {c: match[0]["published"].get(c) for c in columns}


def load_benchmark_file(path: str | Path) -> Benchmark:
    """Load and validate one benchmark file; its ``id`` must equal the file name."""
    path = Path(path)
    raw = read_yaml_mapping(path, "benchmark file")
    _borrow_published(raw, path)
    try:
        bench = Benchmark.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(path, err)) from None
    if bench.id != path.stem:
        raise ConfigError(f"{path}: id: '{bench.id}' does not match the file name '{path.stem}'")
    return bench


def _sort_key(table_id: str) -> tuple[int, str, int]:
    paper, _, table = table_id.partition(".")
    order = list(PAPERS).index(paper) if paper in PAPERS else len(PAPERS)
    number = re.search(r"\d+$", table)
    return order, paper, int(number.group()) if number else 0


def list_tables(root: str | Path = BENCHMARKS_DIR, status: str | None = None) -> list[str]:
    """Table ids of ``root``'s benchmark files, in paper order and table number (``status`` filters)."""
    ids = sorted((p.stem for p in Path(root).glob("*.yaml")), key=_sort_key)
    if status is None:
        return ids
    return [table_id for table_id in ids if load_benchmark(table_id, root).status == status]


def load_benchmark(table_id: str, root: str | Path = BENCHMARKS_DIR) -> Benchmark:
    """Load ``<root>/<table_id>.yaml``."""
    path = Path(root) / f"{table_id}.yaml"
    if not path.exists():
        known = ", ".join(list_tables(root)) or "none"
        raise ConfigError(f"{path}: no benchmark '{table_id}' (known: {known})")
    return load_benchmark_file(path)


def load_all(root: str | Path = BENCHMARKS_DIR) -> dict[str, Benchmark]:
    """Every benchmark of ``root``, keyed by table id, in paper order and table number."""
    return {table_id: load_benchmark(table_id, root) for table_id in list_tables(root)}
