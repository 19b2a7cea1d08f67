"""``talbench leaderboard``: generate ``leaderboards/`` from ``benchmarks/*.yaml`` and ``results/*.json``.

Writes ``README.md`` (index: per paper the tables, rows and claims reproduced) and ``<paper>.md`` per paper.
Only recorded runs produce numbers; pending tables show their published numbers and the reason. The folder is
replaced atomically, and the output depends only on the inputs (no clock, sorted iteration). A missing
results folder, or results of different data (source and profile) side by side, is an error: a leaderboard
compares its tables' rows on one dataset.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from talbench.benchmark.results import load_table_result, load_tune_results
from talbench.benchmark.schema import BENCHMARKS_DIR, PAPERS, load_all
from talbench.config import PARAMS_FILE, REPO_ROOT, load_params
from talbench.errors import ConfigError
from talbench.io import atomic_dir
from talbench.leaderboard.claims import Rule
from talbench.leaderboard.forest import plot_forest
from talbench.leaderboard.render import TableView, render_index, render_paper, summarize

RULE_KEYS = {"margin": float, "min_seeds": int, "resamples": int, "bootstrap_seed": int, "max_seeds": int}


def load_rule(params_path: Path = PARAMS_FILE) -> Rule:
    """The claim-judging rule from params.yaml's ``leaderboard`` section."""
    section = load_params(params_path).get("leaderboard")
    if not isinstance(section, dict):
        raise ConfigError(f"{params_path}: leaderboard: missing section ({', '.join(RULE_KEYS)})")
    try:
        rule = Rule(**{key: kind(section[key]) for key, kind in RULE_KEYS.items()})
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{params_path}: leaderboard: needs numbers {', '.join(RULE_KEYS)} ({err})") from err
    if rule.margin < 0 or rule.min_seeds < 2 or rule.resamples < 100 or rule.max_seeds < rule.min_seeds:
        raise ConfigError(f"{params_path}: leaderboard: margin must be >= 0, min_seeds >= 2, resamples >= 100 "
                          "and max_seeds >= min_seeds")
    return rule


def _is_leaderboards(folder: Path) -> bool:
    """Whether ``folder`` is an earlier output of this command: it holds the index and a paper's page (not
    every paper's: a paper added since has no page yet)."""
    return (folder / "README.md").is_file() and any((folder / f"{paper}.md").is_file() for paper in PAPERS)


def write_leaderboards(
    results_dir: Path,
    out_dir: Path,
    console: Console | None = None,
    *,
    benchmarks_dir: Path = BENCHMARKS_DIR,
    rule: Rule | None = None,
    repo_root: Path = REPO_ROOT,
) -> None:
    """Generate ``out_dir/README.md`` and ``out_dir/<paper>.md`` (atomically: all pages or none)."""
    console = console or Console()
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if not results_dir.is_dir():
        raise ConfigError(f"{results_dir}: results folder not found (run `dvc repro` or `talbench run <table>` "
                          "first, or give --results-dir)")
    rule = rule or load_rule()
    benches = load_all(benchmarks_dir)
    views: dict[str, list[TableView]] = {paper: [] for paper in PAPERS}
    data_of: dict[tuple[str, str | None], Path] = {}
    for table_id, bench in benches.items():
        path = results_dir / f"{table_id}.json"
        result = None
        if path.exists():
            if bench.status == "pending":
                console.print(Text(f"{path}: ignored, {table_id} is pending ({bench.pending_reason})",
                                   style="yellow"))
            else:
                result = load_table_result(path, bench)
                data_of.setdefault((result.data.source, result.data.profile), path)
        views[bench.paper].append(TableView.build(bench, result, rule, results_dir.parent))
    if len(data_of) > 1:
        (first, first_path), (second, second_path) = list(data_of.items())[:2]
        raise ConfigError(f"{second_path}: data {second[0]}/{second[1]}, but {first_path} has {first[0]}/{first[1]}: "
                          "one leaderboard cannot mix data profiles (rerun the table with the pipeline's profile, "
                          "or keep ad-hoc results out of this folder)")
    studies = load_tune_results(results_dir)
    for study in studies:
        if study.paper not in PAPERS:
            raise ConfigError(f"{results_dir / 'tune'}: study '{study.study}': unknown paper '{study.paper}'")

    summaries = [summarize(paper, paper_views) for paper, paper_views in views.items()]
    synthetic = any(v.result is not None and v.result.data.source == "synthetic" for vs in views.values() for v in vs)
    with atomic_dir(out_dir, previous_output=_is_leaderboards, what="leaderboards") as tmp:
        (tmp / "README.md").write_text(render_index(summaries, rule, synthetic), encoding="utf-8")
        for paper, paper_views in views.items():
            paper_studies = [s for s in studies if s.paper == paper]
            forest = f"{paper}_verdicts.png"
            drawn = plot_forest(PAPERS[paper]["short"], paper_views, tmp / forest)
            page = render_paper(paper, paper_views, paper_studies, out_dir.resolve(), repo_root,
                                forest=forest if drawn else None)
            (tmp / f"{paper}.md").write_text(page, encoding="utf-8")
    for s in summaries:
        rep = s.reproduced
        console.print(
            f"{PAPERS[s.paper]['short']}: {s.run}/{s.tables} tables run, rows {s.rows_reproduced}/"
            f"{s.rows_reproducible}, claims hold {rep['holds']} fail {rep['fails']} "
            f"inconclusive {rep['inconclusive']} (published supports {s.published_holds}/{s.claims})"
        )
    console.print(f"leaderboards written to {out_dir}")
