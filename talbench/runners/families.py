"""The model families, the part of the configuration each one reads, and running one row with one seed.

A benchmark row names its family with ``model.runner``. Its configuration is *scoped*: the shared sections
(:data:`SHARED_SECTIONS`) plus the family's own (:attr:`Family.sections`), so that a row's MLflow parameters,
configuration hash and training hash change only when something the family reads changes (a RefactorNet,
leaderboard or tuning key never retrains a D-Net row). Its code is scoped the same way: the family's code hash
covers the static import closure of its runner module and of :mod:`talbench.runners.common.execution`
(:mod:`talbench.code_scope`), so adding another family's files, or an entry to :data:`FAMILIES`, reruns
nothing.

``model.runner`` is a key of :data:`FAMILIES`, or a ``module:function`` path to a runner defined elsewhere
(tests, a user's own model), whose module lists the sections it reads in ``SECTIONS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from talbench.config import TEST_TIME_KEY
from talbench.errors import ConfigError
from talbench.runners.common.checkpoints import training_code_hash
from talbench.runners.common.execution import execute_row
from talbench.runners.common.outcome import RowOutcome

SHARED_SECTIONS = ("model", "data", "eval", "run")
"""Read by every family: which runner, the dataset, the evaluation protocol, the splits and threads."""


@dataclass(frozen=True)
class Family:
    """A model family: its runner (``module:function``) and the params.yaml sections it reads besides the
    shared ones; ``test_time`` holds its inference-only settings (left out of the training hash).

    ``rows_share_training``: whether rows with different training hashes may share a trained network (D-Net's
    original-feature branch, RefactorNet's stage 1, TAL-Net's per-stream networks): the rows of one seed then
    run in one process, in file order. A family whose checkpoints are keyed by the row's own training hash only
    (the one-stage detectors) sets it False, and its rows of one seed spread over the workers too."""

    name: str
    runner: str
    sections: tuple[str, ...]
    rows_share_training: bool = True

    @property
    def module(self) -> str:
        return self.runner.partition(":")[0]

    @property
    def stage(self) -> str:
        """The family's name in ``pipeline.tables`` and its DVC stage name (a runner path's module name)."""
        return self.name if ":" not in self.name else self.module.rpartition(".")[2]

    @property
    def scope(self) -> tuple[str, ...]:
        """Every section a row of this family carries, in params.yaml order of reading."""
        return (*SHARED_SECTIONS, *self.sections, TEST_TIME_KEY)

    def code_hash(self) -> str:
        """Hash of the import closures (inside talbench) of the runner module and the row execution."""
        return training_code_hash(self.module)

    def scoped(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """``cfg`` restricted to :attr:`scope` (a missing section is an error naming it); on synthetic data, when
        params.yaml ``synthetic_variants`` gives the family a variant, its ``data.synthetic_variant`` names it."""
        missing = [s for s in self.scope if s not in cfg]
        if missing:
            raise ConfigError(f"params.yaml: the {self.name} family reads section(s) {missing}, which are missing")
        scoped = {section: cfg[section] for section in self.scope}
        variant = synthetic_variant(cfg, self.stage)
        if variant is not None and scoped["data"].get("source") == "synthetic":
            scoped["data"] = {**scoped["data"], "synthetic_variant": variant}
        return scoped

    def load(self) -> Callable[..., RowOutcome]:
        module_name, _, function_name = self.runner.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise ConfigError(f"params: model.runner '{self.name}' -> module '{module_name}' not found: {err}") from err
        function = getattr(module, function_name, None)
        if not callable(function):
            raise ConfigError(f"params: model.runner '{self.name}' -> '{self.runner}' is not a function")
        return function


FAMILIES: dict[str, Family] = {
    "dnet": Family("dnet", "talbench.runners.dnet.runner:run_row", ("bsn", "detector", "anet", "dnet")),
    "refactornet": Family(
        "refactornet", "talbench.runners.refactornet.runner:run_row", ("bsn", "detector", "anet", "refactornet")
    ),
    "talnet": Family("talnet", "talbench.runners.talnet.runner:run_row", ("talnet",)),
    # CLTDR-GMG and the one-stage detectors its tables compare and combine (ActionFormer, TriDet, TemporalMaxer):
    # one family, since tables 12 and 13 build encoders of one method with decoders of another.
    "one_stage": Family("one_stage", "talbench.runners.one_stage.runner:run_row", ("one_stage",),
                        rows_share_training=False),
}


def synthetic_variant(cfg: dict[str, Any], family: str) -> str | None:
    """The entry of ``cfg["synthetic_variants"]`` whose ``families`` list ``family`` (None: the family reads the
    profile's own synthetic data); a family listed by two variants is an error."""
    names = [name for name, variant in (cfg.get("synthetic_variants") or {}).items()
             if family in (variant or {}).get("families", [])]
    if len(names) > 1:
        raise ConfigError(f"params.yaml: synthetic_variants {names} both list the family '{family}' (one at most)")
    return names[0] if names else None


def family_of(cfg: dict[str, Any]) -> Family:
    """The family named by ``cfg["model"]["runner"]``: a :data:`FAMILIES` key or a ``module:function`` path
    whose module declares ``SECTIONS``."""
    try:
        name = cfg["model"]["runner"]
    except (KeyError, TypeError) as err:
        raise ConfigError("params.yaml: model.runner is missing") from err
    if name in FAMILIES:
        return FAMILIES[name]
    if ":" not in name:
        raise ConfigError(f"params: model.runner '{name}' is unknown (known: {sorted(FAMILIES)}, or module:function)")
    module_name = name.partition(":")[0]
    try:
        sections = importlib.import_module(module_name).SECTIONS
    except ModuleNotFoundError as err:
        raise ConfigError(f"params: model.runner '{name}' -> module '{module_name}' not found: {err}") from err
    except AttributeError:
        raise ConfigError(f"params: model.runner '{name}': module '{module_name}' does not declare SECTIONS "
                          "(the params.yaml sections its runner reads)") from None
    return Family(name, name, tuple(sections))


def run_row(
    cfg: dict[str, Any],
    seed: int,
    dataset,
    console=None,
    report: Callable[[int, float], None] | None = None,
) -> RowOutcome:
    """Seed everything, then run the row's family on ``dataset``; ``report(step, value)`` is handed to the
    runner (per-epoch validation score for tuning/pruning)."""
    family = family_of(cfg)
    return execute_row(family.load(), family.name, cfg, seed, dataset, console, report)
