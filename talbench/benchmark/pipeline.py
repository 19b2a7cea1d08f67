"""The DVC stage of a model family's tables, as the code defines it.

``dvc.yaml`` runs every active table of a family with one ``foreach`` stage over params.yaml
``pipeline.tables.<family>`` (stage names ``<family>@<table id>``). What the stage depends on follows from the
code: the params sections the family reads (the shared ones, its own, ``test_time``, and their profile entries)
and the source files of its code hash (:meth:`talbench.runners.families.Family.code_hash`). :func:`family_stage`
builds that stage; a test checks that ``dvc.yaml`` holds exactly it for every family, so DVC reruns a family's
tables exactly when its code hash or its configuration changes, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from talbench.code_scope import relative_paths
from talbench.config import REPO_ROOT
from talbench.runners.common.checkpoints import EXECUTION_MODULE
from talbench.runners.families import Family

PIPELINE_PARAMS = ("pipeline.seeds", "pipeline.first_seed", "pipeline.tracking_experiment")


def family_stage(family: Family, root: Path = REPO_ROOT) -> dict[str, Any]:
    """The ``foreach`` stage of ``family`` (paths relative to the repository ``root``)."""
    return {
        "foreach": f"${{pipeline.tables.{family.stage}}}",
        "do": {
            "cmd": "talbench run ${key}",
            "deps": [
                "${item}",
                "${data.synthetic_root}/${data.profile}",
                *(["proposals/${data.source}-${data.profile}"] if "bsn" in family.sections else []),
                *relative_paths(root, EXECUTION_MODULE, family.module),
            ],
            "params": [
                *PIPELINE_PARAMS,
                *family.scope,
                *(f"profiles.${{data.profile}}.{section}" for section in (*family.scope, "pipeline")),
            ],
            "outs": ["predictions/${key}"],
            "metrics": [{"results/${key}.json": {"cache": False}}],
        },
    }
