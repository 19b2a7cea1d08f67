"""CLTDR-GMG's benchmark tables: every reproduced row resolves to a configuration that builds its model, and rows
that are one configuration share one training (the run store reuses runs with identical keys across tables)."""

from __future__ import annotations

import pytest
import torch

from talbench.benchmark.rows import row_config
from talbench.benchmark.schema import load_benchmark
from talbench.config import load_params, train_hash
from talbench.runners.one_stage.build import build_detector, row_width

TABLES = [f"cltdr_gmg.table{i}" for i in (1, *range(6, 16))]
# distinct trainings each table adds when the tables run in this order (docs/cltdr_gmg.md)
NEW_TRAININGS = {"cltdr_gmg.table1": 5, "cltdr_gmg.table6": 6, "cltdr_gmg.table7": 2, "cltdr_gmg.table8": 1,
                 "cltdr_gmg.table9": 6, "cltdr_gmg.table10": 4, "cltdr_gmg.table11": 2, "cltdr_gmg.table12": 2,
                 "cltdr_gmg.table13": 3, "cltdr_gmg.table14": 7, "cltdr_gmg.table15": 4}


@pytest.fixture(scope="module")
def configs():
    params = load_params()
    out = {}
    for table in TABLES:
        bench = load_benchmark(table)
        out[table] = {row.name: row_config(params, "smoke", bench, row, table) for row in bench.reproduced_rows}
    return out


def test_every_row_builds_its_model(configs):
    for table, rows in configs.items():
        for name, cfg in rows.items():
            assert cfg["model"]["runner"] == "one_stage", (table, name)
            assert cfg["data"]["synthetic_variant"] == "long_around", (table, name)  # params.yaml synthetic_variants
            with torch.device("meta"):
                build_detector(cfg, row_width(cfg, 128, 8))


def test_identical_rows_share_one_training(configs):
    seen: set[str] = set()
    for table in TABLES:
        hashes = {train_hash(cfg) for cfg in configs[table].values()}
        assert len(hashes - seen) == NEW_TRAININGS[table], table
        seen |= hashes
    assert len(seen) == sum(NEW_TRAININGS.values()) == 42  # 38 trainings + 4 complexity rows
    default = train_hash(configs["cltdr_gmg.table1"]["CLTDR-GMG [I3D]"])
    for table, row in [("cltdr_gmg.table6", "instant + local + global"), ("cltdr_gmg.table7", "with gate"),
                       ("cltdr_gmg.table8", "FFT"), ("cltdr_gmg.table9", "cls P^l+1 + P^l"),
                       ("cltdr_gmg.table9", "reg P^l + P^l-1"), ("cltdr_gmg.table10", "refine classification and regression"),
                       ("cltdr_gmg.table11", "Attention"), ("cltdr_gmg.table12", "GMG + CLTDR (printed GMG+CLTDA)"),
                       ("cltdr_gmg.table13", "GMG + CLTDR"), ("cltdr_gmg.table14", "L=6")]:
        assert train_hash(configs[table][row]) == default, (table, row)
    for original in ("ActionFormer", "TriDet"):
        assert configs["cltdr_gmg.table12"][original] == configs["cltdr_gmg.table1"][f"{original} [I3D]"]
        assert configs["cltdr_gmg.table13"][original] == configs["cltdr_gmg.table1"][f"{original} [I3D]"]


def test_diagnostic_rows_change_one_setting(configs):
    def differences(a, b, path=""):
        if isinstance(a, dict):
            return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}" if path else k)]
        return [] if a == b else [path]

    default = configs["cltdr_gmg.table1"]["CLTDR-GMG [I3D]"]
    assert differences(configs["cltdr_gmg.table1"]["CLTDR-GMG [I3D], best test epoch (official train.py)"],
                       default) == ["one_stage.train.snapshots"]
    assert differences(configs["cltdr_gmg.table7"]["with gate, paper eq. 4 (ReLU gates, no LN(x) term)"],
                       default) == ["one_stage.gmg.gate"]
    assert differences(configs["cltdr_gmg.table10"]["refine both, paper eq. 10 (score sqrt(a x R))"],
                       default) == ["one_stage.cltdr.refine_form"]
