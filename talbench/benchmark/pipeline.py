"""The DVC stage of a model family's tables, as the code defines it.

``dvc.yaml`` runs every active table of a family with one ``foreach`` stage over params.yaml
``pipeline.tables.<family>`` (stage names ``<family>@<table id>``). What the stage depends on follows from the
code: the params sections the family reads (the shared ones, its own, ``test_time``, and their profile entries),
the dataset it reads (the profile's, or the variant that params.yaml ``synthetic_variants`` gives it) and the
source files of its code hash (:meth:`talbench.runners.families.Family.code_hash`). :func:`family_stage` builds
that stage; a test checks that ``dvc.yaml`` holds exactly it for every family, so DVC reruns a family's
tables exactly when its code hash or its configuration changes, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from talbench.code_scope import relative_paths
from talbench.config import REPO_ROOT, load_params
from talbench.data import synthetic_name
from talbench.runners.common.checkpoints import EXECUTION_MODULE
from talbench.runners.families import Family, synthetic_variant

PIPELINE_PARAMS = ("pipeline.seeds", "pipeline.first_seed", "pipeline.tracking_experiment")


def family_stage(family: Family, root: Path = REPO_ROOT, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``foreach`` stage of ``family`` (paths relative to the repository ``root``); a family that
    ``synthetic_variants`` in ``params`` (default: ``root``'s params.yaml) gives a variant depends on that dataset
    and entry instead of the profile's own data."""
    variant = synthetic_variant(load_params(root / "params.yaml") if params is None else params, family.stage)
    return {
        "foreach": f"${{pipeline.tables.{family.stage}}}",
        "do": {
            "cmd": "talbench run ${key}",
            "deps": [
                "${item}",
                "${data.synthetic_root}/" + synthetic_name("${data.profile}", variant),
                *(["proposals/${data.source}-${data.profile}"] if "bsn" in family.sections else []),
                *relative_paths(root, EXECUTION_MODULE, family.module),
            ],
            "params": [
                *PIPELINE_PARAMS,
                *([f"synthetic_variants.{variant}"] if variant else []),
                *family.scope,
                *(f"profiles.${{data.profile}}.{section}" for section in (*family.scope, "pipeline")),
            ],
            "outs": ["predictions/${key}"],
            "metrics": [{"results/${key}.json": {"cache": False}}],
        },
    }
