"""A picture of a paper's verdicts: every reproduced comparison with its interval (a forest plot, PNG).

One line per comparison a claim makes (row ``a`` minus row ``b`` on one column): the reproduced difference
(dot) and its 95% interval (bar), coloured by verdict (holds green, fails red, inconclusive grey), the claim's
bound(s) as short dashed ticks (0 for "beats", the margin for "does not beat" and "similar"), and the published
difference as a hollow diamond where the paper prints both numbers. The reader sees at a glance what holds,
what fails, and what needs more seeds (the grey bars that straddle their tick).
"""

from __future__ import annotations

from pathlib import Path

from talbench.leaderboard.claims import FAILS, HOLDS, Comparison, published_lookup

COLOURS = {HOLDS: "#2e7d32", FAILS: "#c62828"}
INCONCLUSIVE_COLOUR = "#8d8d8d"


def forest_rows(views) -> list[tuple[str, Comparison, float | None]]:
    """``(label, comparison, published difference)`` of every reproduced difference, table by table."""
    rows = []
    for view in views:
        lookup = published_lookup(view.bench)
        for number, judgement in enumerate(view.reproduced, start=1):
            if judgement is None:
                continue
            for c in judgement.comparisons:
                if c.kind != "difference" or c.interval is None:
                    continue
                pa, pb = lookup(c.a, c.metric), lookup(c.b, c.metric)
                published = pa - pb if pa is not None and pb is not None else None
                label = f"{view.bench.id.split('.', 1)[1]} claim {number}: {c.a} − {c.b} ({c.metric})"
                rows.append((label if len(label) <= 70 else label[:67] + "...", c, published))
    return rows


def plot_forest(title: str, views, path: Path) -> bool:
    """Write the forest plot of ``views`` to ``path``; False (nothing written) when nothing was reproduced."""
    rows = forest_rows(views)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.6))
    for y, (_, c, published) in enumerate(rows):
        colour = COLOURS.get(c.verdict, INCONCLUSIVE_COLOUR)
        ax.plot([c.interval.low, c.interval.high], [y, y], color=colour, linewidth=2.2, solid_capstyle="butt")
        ax.plot([c.interval.estimate], [y], "o", color=colour, markersize=4.5)
        for bound in (c.lower, c.upper):
            if bound is not None:
                ax.plot([bound, bound], [y - 0.38, y + 0.38], color="black", linestyle="--", linewidth=0.9)
        if published is not None:
            ax.plot([published], [y], marker="D", markerfacecolor="none", markeredgecolor="#1565c0", markersize=5)
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.5, alpha=0.4)
    ax.set_xlabel("reproduced difference a − b with its 95% interval (dashed: the claim's bound; "
                  "diamond: published difference)", fontsize=8)
    ax.set_title(f"{title}: green holds, red fails, grey inconclusive", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: the same inputs, the same bytes
    plt.close(fig)
    return True
