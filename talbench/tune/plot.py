"""The study's figure (PNG, matplotlib Agg): optimisation history and parameter importances.

Left: the objective of every completed trial (dots), the last intermediate value of pruned trials (crosses)
and the best value so far (line). Right: fANOVA importance of each searched parameter (absent when it cannot
be computed: fewer than two completed trials or a constant objective).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talbench.io import atomic_path


def plot_study(ostudy, importances: dict[str, float] | None, path: str | Path, *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    trials = ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    fig, (history, bars) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    if complete:
        numbers = np.array([t.number for t in complete])
        values = np.array([t.value for t in complete], dtype=float)
        history.scatter(numbers, values, label="completed", color="tab:blue", zorder=3)
        best = np.maximum.accumulate(values) if ostudy.direction.name == "MAXIMIZE" else np.minimum.accumulate(values)
        history.step(numbers, best, where="post", color="tab:red", label="best so far")
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        history.scatter([t.number for t in pruned], last, marker="x", color="tab:gray",
                        label="pruned (last intermediate)", zorder=2)
    history.set_xlabel("trial")
    history.set_ylabel("validation objective")
    history.set_title("optimisation history")
    history.grid(alpha=0.3)
    history.legend(loc="best", fontsize=8)
    if importances:
        names = list(importances)[::-1]
        bars.barh(names, [importances[n] for n in names], color="tab:green")
        bars.set_xlim(0, 1)
        bars.set_xlabel("fANOVA importance")
    else:
        bars.text(0.5, 0.5, "importance unavailable\n(< 2 completed trials\nor constant objective)",
                  ha="center", va="center", transform=bars.transAxes)
        bars.set_xticks([])
        bars.set_yticks([])
    bars.set_title("parameter importances")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
