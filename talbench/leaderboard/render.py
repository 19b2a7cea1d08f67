"""Markdown of the leaderboards: one page per paper and an index (pure functions of their inputs)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from talbench.benchmark.results import SplitScores, Stat, TableResult, TuneResult
from talbench.benchmark.schema import COMPUTED_COLUMNS, PAPERS, Benchmark, Claim
from talbench.leaderboard.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    Judgement,
    Rule,
    describe,
    judge_published,
    judge_reproduced,
)

VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_APPLICABLE)
SYNTHETIC_NOTE = (
    "> **Synthetic data.** The reproduced numbers come from talbench's embedded synthetic benchmark, not from "
    "the paper's data: their absolute values are not comparable with the published ones. What is tested are the "
    "paper's claims (which row beats which, orderings and gains), judged on 95% intervals of the reproduced "
    "differences over seeds and test videos; claims whose threshold is a number of the real benchmark are n/a."
)


@dataclass
class TableView:
    """One benchmark with its recorded result (None: not run or pending) and its judged claims."""

    bench: Benchmark
    result: TableResult | None
    stats: dict[str, dict[str, Stat]] = field(default_factory=dict)
    published: list[Judgement] = field(default_factory=list)
    reproduced: list[Judgement | None] = field(default_factory=list)
    rule: Rule = field(default_factory=Rule)

    @classmethod
    def build(cls, bench: Benchmark, result: TableResult | None, rule: Rule, root: Path) -> TableView:
        """Judge ``bench``'s claims on the published numbers and on ``result`` (its prediction files are read
        relative to ``root``, the results folder's parent)."""
        from talbench.leaderboard.samples import TableSamples

        stats = result.stats() if result is not None else {}
        synthetic = result is not None and result.data.source == "synthetic"
        view = cls(bench, result, stats, rule=rule)
        samples = TableSamples(bench, result, root, resamples=rule.resamples, seed=rule.bootstrap_seed) \
            if result is not None else None
        for claim in bench.claims:
            view.published.append(judge_published(bench, claim, rule))
            view.reproduced.append(
                judge_reproduced(bench, claim, samples.samples, rule, synthetic=synthetic) if samples else None
            )
        return view


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _decimals(bench: Benchmark, column: str) -> int:
    """Decimals the paper prints: the most in the column (mAP columns share the table's most)."""

    def places(value: float) -> int:
        text = repr(float(value))
        return len(text.split(".")[1].rstrip("0")) if "." in text else 0

    def column_places(col: str) -> int:
        values = [r.published.get(col) for r in bench.rows]
        return max((places(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)), default=0)

    if column == "params_m":
        return column_places(column)
    return max(column_places(c) for c in bench.numeric_columns if c != "params_m")


def _published_text(bench: Benchmark, column: str, value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else ""
    if isinstance(value, int | float):
        return f"{value:.{_decimals(bench, column)}f}"
    return str(value)


def _verdict_text(judgement: Judgement | None, missing: str) -> str:
    if judgement is None:
        return missing
    return f"**{judgement.verdict}** ({judgement.detail})"


def _join(values: list[str]) -> str:
    unique = sorted({v for v in values if v})
    return ", ".join(unique) if unique else "—"


def render_table(view: TableView) -> list[str]:
    bench, result = view.bench, view.result
    split = bench.split if isinstance(bench.split, str) else ", ".join(f"{k}: {v}" for k, v in bench.split.items())
    dataset = bench.dataset if isinstance(bench.dataset, str) else ", ".join(bench.dataset)
    lines = [f"## {bench.id}: {bench.title}", ""]
    lines.append(
        f"Published on **{dataset}** ({split}); features: {bench.features}; metric: {bench.metric}."
    )
    if bench.status == "pending":
        lines.append(f"Status: **pending**: {bench.pending_reason}. Published numbers only.")
    elif result is None:
        lines.append(f"Status: active, **not run yet** (`talbench run {bench.id}`). Published numbers only.")
    else:
        dirty = " (uncommitted changes)" if result.git_dirty else ""
        lines.append(
            f"Reproduced on {result.data.source} data (profile {result.data.profile or '—'}, "
            f"features {result.data.features or '—'}), seeds {', '.join(map(str, result.seeds))}, "
            f"{result.created}, commit `{result.git_commit}`{dirty}"
            + (f"; computed on {_join(result.devices)}." if result.devices else ".")
        )
    if bench.unpublished:
        lines.append(f"Published numbers: none, {bench.unpublished}; the claims are judged on the reproduction only.")
    if bench.notes:
        lines.append(f"Note: {bench.notes}")
    lines.append("")

    header = ["Row", *bench.columns]
    lines.append("| " + " | ".join(_cell(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in bench.rows:
        cells = [_cell(_row_label(row))]
        reproduced = view.stats.get(row.name, {})
        for column in bench.columns:
            value = row.published.get(column)
            text = _published_text(bench, column, value)
            stat = reproduced.get(column)
            if stat is not None:
                diff = f" ({stat.mean - value:+.2f})" if isinstance(value, int | float) else ""
                if column in COMPUTED_COLUMNS and stat.std == 0:
                    text = f"{text} · **{stat.mean:.2f}** computed{diff}"
                else:
                    text = f"{text} · **{stat.mean:.2f} ± {stat.std:.2f}**{diff}"
            cells.append(_cell(text))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for row in bench.rows:
        if row.diagnostic:
            lines.append(f"Diagnostic row *{_cell(row.name)}* (talbench's, not in the paper): {row.diagnostic}")
            lines.append("")
        if row.control:
            lines.append(f"Control row *{_cell(row.name)}* (talbench's, not in the paper; claims may name it): "
                         f"{row.control}")
            lines.append("")
    if result is not None:
        computed = [c for c in bench.columns if c in COMPUTED_COLUMNS and c in bench.metrics]
        lines.append("Cells: published · **reproduced mean ± std over seeds** (reproduced − published)"
                     + (f"; {', '.join(computed)}: **computed** from the model's definition at the paper's "
                        "dimensions (no seed statistic)." if computed else "."))
        lines.append("")
        parent = f" (parent run `{result.parent_run_id}`)" if result.parent_run_id else ""
        lines.append(f"MLflow runs{parent}, experiment `{result.experiment or '—'}` at `{result.tracking_uri or '—'}`:")
        for row in result.rows:
            runs = ", ".join(
                f"seed {r.seed} `{r.run_id}`" + (" (reused)" if r.reused else "")
                for r in sorted(row.runs, key=lambda r: r.seed)
            )
            lines.append(f"- {_cell(row.name)}: {runs}")
        lines.append("")
        lines += _reported_table(bench, result)

    if bench.claims:
        missing = "not run (pending)" if bench.status == "pending" else "not run"
        lines.append("| Claim | Check | Published table | Reproduction |")
        lines.append("|---|---|---|---|")
        for claim, pub, rep in zip(bench.claims, view.published, view.reproduced):
            lines.append(
                f"| {_cell(_claim_text(claim))} | {_cell(describe(claim.check, view.rule))} | "
                f"{_cell(_verdict_text(pub, '—'))} | {_cell(_verdict_text(rep, missing))} |"
            )
    else:
        lines.append("No claim of the paper is judged on this table.")
    lines.append("")
    return lines


def _reported_table(bench: Benchmark, result: TableResult) -> list[str]:
    """The benchmark's ``reported`` metrics per row (mean ± std over seeds), recorded but never judged."""
    stats = result.stats("reported")
    names = [n for n in bench.reported if any(n in s for s in stats.values())]
    if not names:
        return []
    lines = ["Also recorded for every run (mean ± std over seeds; not judged): "
             + "; ".join(f"`{n}` = runner metric `{bench.reported[n]}`" for n in names) + ".", ""]
    lines.append("| Row | " + " | ".join(_cell(n) for n in names) + " |")
    lines.append("|" + "---|" * (len(names) + 1))
    for row in bench.rows:
        if row.name not in stats:
            continue
        cells = [f"{stats[row.name][n].mean:.2f} ± {stats[row.name][n].std:.2f}" if n in stats[row.name] else "—"
                 for n in names]
        lines.append(f"| {_cell(_row_label(row))} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _row_label(row) -> str:
    if row.diagnostic:
        return f"*{row.name}* (diagnostic)"
    if row.control:
        return f"*{row.name}* (control)"
    if row.from_table is not None:
        return f"{row.name} (printed in {row.from_table.table})"
    return row.name


def _claim_text(claim: Claim) -> str:
    return f"{claim.text} [{claim.source}]"


def _score(score) -> str:
    return f"{score.mean:.2f} ± {score.std:.2f}"


def _split_rows(scores: SplitScores, kind: str) -> str:
    diff = scores.tuned.mean - scores.published.mean
    runs = ", ".join(f"`{r}`" for r in [*scores.published.run_ids, *scores.tuned.run_ids])
    return (
        f"| {kind} ({_cell(scores.split)}) | {_score(scores.published)} | {_score(scores.tuned)} | "
        f"{diff:+.2f} | {runs} |"
    )


def render_tuning(studies: list[TuneResult], page_dir: Path, repo_root: Path) -> list[str]:
    """The "Tuning" section: Optuna studies of the paper's loss weights (holdout-tuned, test once)."""
    if not studies:
        return []
    lines = ["## Tuning", ""]
    lines.append(
        "Loss weights tuned with Optuna on held-out training videos (never the test split); the test split is "
        "evaluated once, for the paper's defaults and the tuned weights."
    )
    lines.append("")
    for study in studies:
        target = f" for {study.table} / {study.row}" if study.table else ""
        lines.append(f"### Study `{study.study}`{target}")
        lines.append("")
        lines.append(
            f"Objective {study.objective}; {study.n_trials} trials on {study.data.source} data "
            f"(profile {study.data.profile or '—'}), {study.created}, commit `{study.git_commit}`."
        )
        lines.append("")
        lines.append("| Parameter | Paper's default | Tuned | Importance |")
        lines.append("|---|---|---|---|")
        for p in study.params:
            importance = "—" if p.importance is None else f"{p.importance:.2f}"
            lines.append(f"| `{_cell(p.name)}` | {_cell(p.published)} | {_cell(p.tuned)} | {importance} |")
        lines.append("")
        lines.append("| Split | Paper's default | Tuned | Tuned − default | MLflow runs |")
        lines.append("|---|---|---|---|---|")
        lines.append(_split_rows(study.validation, "validation"))
        if study.test is not None:
            lines.append(_split_rows(study.test, "test"))
        lines.append("")
        if study.sensitivity is not None:
            spread = study.sensitivity
            lines.append(
                f"Sensitivity: over the {spread.n_complete} completed trials the validation objective spans "
                f"{spread.min:.2f} to {spread.max:.2f} (range {spread.max_minus_min:.2f}, std {spread.std:.2f})."
            )
        if study.n_pruned is not None:
            saved = "" if study.seconds_saved_by_pruning is None else \
                f", about {study.seconds_saved_by_pruning:.0f} s of training saved"
            lines.append(f"Pruned: {study.n_pruned} of {study.n_trials} trials{saved}.")
        if study.sensitivity is not None or study.n_pruned is not None:
            lines.append("")
        if study.plot:
            rel = os.path.relpath(repo_root / study.plot, page_dir)
            lines.append(f"![{study.study}]({Path(rel).as_posix()})")
            lines.append("")
    return lines


def _header(paper: str, views: list[TableView]) -> list[str]:
    meta = PAPERS[paper]
    results = [v.result for v in views if v.result is not None]
    lines = [f"# {meta['short']}: {meta['title']} ({meta['venue']})", ""]
    lines.append("Generated by `talbench leaderboard` from the recorded runs under `results/`; do not edit by hand.")
    lines.append("")
    if not results:
        lines.append("No table of this paper has recorded runs yet: published numbers and claims only.")
        lines.append("")
        return lines
    commits = [r.git_commit + (" (dirty)" if r.git_dirty else "") for r in results]
    seeds = sorted({s for r in results for s in r.seeds})
    lines += [
        "| | |",
        "|---|---|",
        f"| Data | {_join([r.data.source for r in results])} |",
        f"| Features | {_cell(_join([r.data.features or '' for r in results]))} |",
        f"| Profile | {_join([r.data.profile or '' for r in results])} |",
        f"| Seeds | {', '.join(map(str, seeds))} |",
        f"| Date (latest run) | {max(r.created for r in results)} |",
        f"| Git commit | {_join(commits)} |",
        f"| Data checksum | {_join([r.data.checksum or '' for r in results])} |",
        "",
    ]
    if any(r.data.source == "synthetic" for r in results):
        lines += [SYNTHETIC_NOTE, ""]
    return lines


@dataclass(frozen=True)
class PaperSummary:
    paper: str
    tables: int
    active: int
    run: int
    rows_reproducible: int
    rows_reproduced: int
    claims: int
    published_holds: int
    reproduced: dict[str, int]


def summarize(paper: str, views: list[TableView]) -> PaperSummary:
    reproduced = dict.fromkeys(VERDICTS, 0)
    for view in views:
        for judgement in view.reproduced:
            if judgement is not None:
                reproduced[judgement.verdict] += 1
    return PaperSummary(
        paper=paper,
        tables=len(views),
        active=sum(v.bench.status == "active" for v in views),
        run=sum(v.result is not None for v in views),
        rows_reproducible=sum(row.reproduce is not None for v in views for row in v.bench.paper_rows),
        rows_reproduced=sum(row.name in v.stats for v in views for row in v.bench.paper_rows),
        claims=sum(len(v.bench.claims) for v in views),
        published_holds=sum(j.verdict == HOLDS for v in views for j in v.published),
        reproduced=reproduced,
    )


def render_paper(
    paper: str, views: list[TableView], studies: list[TuneResult], page_dir: Path, repo_root: Path,
    forest: str | None = None,
) -> str:
    summary = summarize(paper, views)
    lines = _header(paper, views)
    rep = summary.reproduced
    lines.append(
        f"{summary.tables} tables ({summary.active} active, {summary.run} with recorded runs); "
        f"{summary.rows_reproduced} of {summary.rows_reproducible} reproducible rows reproduced; "
        f"{summary.claims} claims: the published tables support {summary.published_holds}; "
        f"on the reproduction {rep[HOLDS]} hold, {rep[FAILS]} fail, {rep[INCONCLUSIVE]} inconclusive, "
        f"{rep[NOT_APPLICABLE]} n/a."
    )
    lines.append("")
    lines.append(
        "Claims on a reproduction: each comparison's 95% interval combines the seeds' spread (paired by seed "
        "within a table) and a bootstrap over the test videos from the saved predictions; **holds** when the "
        "interval lies entirely on the claimed side, **fails** when entirely on the other, **inconclusive** "
        "otherwise, with the seeds per row that would decide it; see docs/leaderboards.md."
    )
    lines.append("")
    if forest is not None:
        lines += [f"![{PAPERS[paper]['short']}: every judged comparison with its interval]({forest})", ""]
    for view in views:
        lines += render_table(view)
    lines += render_tuning(studies, page_dir, repo_root)
    return "\n".join(lines).rstrip() + "\n"


def render_index(summaries: list[PaperSummary], rule: Rule, synthetic: bool) -> str:
    lines = ["# talbench leaderboards", ""]
    lines.append(
        "Generated by `talbench leaderboard` from the recorded runs under `results/`: every reproduced number "
        "links to MLflow runs; published numbers are copied from the papers."
    )
    lines.append("")
    if synthetic:
        lines += [SYNTHETIC_NOTE, ""]
    lines.append(
        "| Paper | Tables (active / run / all) | Rows reproduced | Claims | Supported by the published table | "
        "Reproduction: holds / fails / inconclusive / n/a |"
    )
    lines.append("|---|---|---|---|---|---|")
    for s in summaries:
        meta = PAPERS[s.paper]
        rep = s.reproduced
        lines.append(
            f"| [{meta['short']} ({meta['venue']})]({s.paper}.md) | {s.active} / {s.run} / {s.tables} | "
            f"{s.rows_reproduced} / {s.rows_reproducible} | {s.claims} | {s.published_holds} | "
            f"{rep[HOLDS]} / {rep[FAILS]} / {rep[INCONCLUSIVE]} / {rep[NOT_APPLICABLE]} |"
        )
    lines.append("")
    lines.append(
        f"Judging rule: 95% intervals over seeds and {rule.resamples} video resamples, at least {rule.min_seeds} "
        f"seeds per row, margin {rule.margin:g} for 'does not beat' and 'similar' claims (params.yaml "
        "`leaderboard`; docs/leaderboards.md)."
    )
    return "\n".join(lines) + "\n"
