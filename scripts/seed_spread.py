"""Per-row seed spread of each table's main metric, from results folders (the verdicts issue's precision check).

    python scripts/seed_spread.py results [OTHER_RESULTS ...] [--markdown]

A table's main column: ``fusion`` (D-Net's two-stream output), else mAP at tIoU 0.5 (``0.5``), else the
average mAP (``avg``), else its first column that is not a parameter count or a time (none: the table is
skipped). Prints one line per
reproduced row (the table, the row, and per results folder the seeds, mean and std) and a summary per folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main_column(table: str) -> str | None:
    """The main column of ``benchmarks/<table>.yaml`` (None for a table of parameter counts and times)."""
    columns = yaml.safe_load((ROOT / "benchmarks" / f"{table}.yaml").read_text(encoding="utf-8"))["metrics"]
    for column in ("fusion", "0.5", "th_0.5", "avg"):
        if column in columns:
            return column
    return next((c for c in columns if "param" not in c and "time" not in c and "ms" not in c), None)


def spreads(folder: Path) -> dict[tuple[str, str], tuple[int, float, float]]:
    out = {}
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        if "rows" not in result or "table" not in result:
            continue
        metric = main_column(result["table"])
        if metric is None:
            continue
        for row in result["rows"]:
            if metric in row.get("mean", {}):
                out[(result["table"], row["name"])] = (len(row["runs"]), row["mean"][metric], row["std"][metric])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    tables = [spreads(f) for f in args.folders]
    keys = sorted(set().union(*tables))
    print("| table | row | " + " | ".join(f"{f}: mean ± std (seeds)" for f in args.folders) + " |")
    print("|---|---|" + "---|" * len(args.folders))
    for key in keys:
        cells = [f"{t[key][1]:.2f} ± {t[key][2]:.2f} ({t[key][0]})" if key in t else "" for t in tables]
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    for folder, table in zip(args.folders, tables):
        stds = [v[2] for v in table.values()]
        if stds:
            print(f"\n{folder}: {len(stds)} rows, std <= 2.0 in {sum(s <= 2.0 for s in stds)}, "
                  f"median std {statistics.median(stds):.2f}, max {max(stds):.2f}")


if __name__ == "__main__":
    main()
