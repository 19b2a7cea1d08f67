"""benchmarks/calibration/one_stage_premises.py: CLTDR-GMG's data premises, and generator variants measured in
a temporary folder before any table runs on them."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest
from helpers.paths import REPO

SCRIPT = REPO / "benchmarks" / "calibration" / "one_stage_premises.py"


@pytest.fixture(scope="module")
def premises():
    spec = importlib.util.spec_from_file_location("one_stage_premises", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_variant(premises):
    assert premises.parse_variant('long={"duration": {"max_s": 60.0}}') == ("long", {"duration": {"max_s": 60.0}})
    for bad in ('long={"duration"', "long", '={"a": 1}', "long=[1, 2]"):
        with pytest.raises(argparse.ArgumentTypeError, match="--variant"):
            premises.parse_variant(bad)


def test_variant_measures_the_changed_generator_and_leaves_nothing(premises, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the variant starts from this repository's params.yaml
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    base = premises.measure_variant("tiny", {})
    longer = premises.measure_variant("tiny", {"duration": {"min_s": 4.0, "median_s": 8.0}})
    assert list(tmp_path.iterdir()) == []  # the generated folders are gone
    assert longer["synth_overrides"] == {"duration": {"min_s": 4.0, "median_s": 8.0}}
    for result in (base, longer):
        assert sum(result["instances_per_level"].values()) == result["instances"] > 0
        assert result["cells"] > 0
        json.dumps(result)  # what --json writes
    assert longer["duration_s"]["min"] >= 4.0 > base["duration_s"]["min"]
    mean_level = {name: sum(level * n for level, n in r["instances_per_level"].items()) / r["instances"]
                  for name, r in (("base", base), ("longer", longer))}
    assert mean_level["longer"] > mean_level["base"]
