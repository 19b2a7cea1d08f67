"""BSN on the output features of the module before the detector (RefactorNet CVPR 2022, sec. 3.6 and 5.2, eq. 6).

The paper runs its boundary-based proposal generator on ``F'``: "we perform action boundary regression via
the new snippet representations F' to find start and end locations with high responses and group them into
action proposals", trained with ``L_P = L_bl^s + gamma L_bl^e`` (eq. 6, gamma = 1). Here the shared BSN
implementation (:mod:`talbench.runners.bsn`: TEM, PGM, PEM, Soft-NMS) reads a view of the dataset whose
features are the module's output at every feature cell, with ``bsn.tem_end_weight = gamma``. The Deep Baseline
gets the same: BSN trained on its own output features (table 2 replaces RefactorNet by it).

The module is trained on 16-frame snippets (``detector.snippet_pooling`` cells average-pooled) and, for the Deep
Baseline, convolves the snippet sequence; BSN reads the feature cells. So the view runs the module on the
snippet sequence of every grid phase (the cells pooled from cell ``r`` on, ``r < snippet_pooling``) and gives
cell ``i`` the output of the snippet that holds it nearest its centre: the module always sees the inputs it was
trained on, at BSN's temporal resolution.

Order (the paper gives none, see docs/refactornet.md): stage 1 and stage 2 train the module and the detector
(on the shared BSN proposals of the training videos), then BSN is trained on the F' of the ``run.train_split``
videos and proposes for the evaluation videos, which the detector scores. ``refactornet.proposals.encoders``
chooses the encoders whose F' BSN reads: ``final`` (after stage 2) or ``stage1``; the choice was measured on
train_fit / holdout (docs/refactornet.md). A trained BSN is cached under ``models/bsn/<hash>/`` keyed by a
digest of the module's weights.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pandas as pd
import torch
from torch import nn

from talbench.runners.bsn.generate import generate_proposals
from talbench.runners.bsn.train import fit_bsn
from talbench.runners.common.device import autocast, module_device
from talbench.runners.common.snippets import pool_snippets


@torch.no_grad()
def module_on_cells(module: nn.Module, cells: np.ndarray, factor: int, run: dict | None = None) -> np.ndarray:
    """The module's output ``(T, D')`` at every feature cell of ``cells`` ``(T, D)``: for each grid phase ``r``
    the cells are cut into ``[0, r), [r, r + factor), ...`` and average-pooled (as the detector's snippets), the
    module runs on that sequence, and cell ``i`` takes its snippet's output in the phase where it is the
    ``(factor - 1) // 2``-th cell of its snippet (``factor`` 1: the module on the cells themselves). The module
    runs on its own device, autocast by ``run.mixed_precision``."""
    t = cells.shape[0]
    device = module_device(module)
    offset = (factor - 1) // 2
    out: np.ndarray | None = None
    cell = np.arange(t)
    for phase in range(factor):
        tail, _ = pool_snippets(cells[phase:], np.zeros(t - phase), factor)
        groups = [cells[:phase].mean(axis=0, keepdims=True), tail] if phase else [tail]
        with autocast({"run": run or {}}, device):
            y = module(torch.from_numpy(np.concatenate(groups).astype(np.float32)).to(device))
        y = y.float().cpu().numpy()
        if out is None:
            out = np.empty((t, y.shape[1]), dtype=np.float32)
        mine = cell[(cell - offset) % factor == phase]
        group = np.where(mine < phase, 0, (mine - phase) // factor + (1 if phase else 0))
        out[mine] = y[group]
    return out


class RefactoredFeatures:
    """A dataset view whose ``features(video, stream)`` are the module's output at every feature cell of
    ``stream`` (the stream the module was trained on; :func:`module_on_cells`); everything else is the wrapped
    dataset's. ``run``: the row's run section (mixed precision)."""

    def __init__(self, dataset, module: nn.Module, stream: str, snippet_pooling: int, run: dict | None = None):
        self._dataset, self._module, self._stream, self._factor = dataset, module, stream, snippet_pooling
        self._run = run or {}

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)

    @torch.no_grad()
    def features(self, video_id: str, stream: str = "both") -> np.ndarray:
        if stream != self._stream:
            raise ValueError(f"refactored features exist for stream '{self._stream}' only, BSN asked for "
                             f"'{stream}' (video '{video_id}'); set bsn.stream to refactornet.stream")
        self._module.eval()
        return module_on_cells(self._module, np.asarray(self._dataset.features(video_id, stream), np.float32),
                               self._factor, self._run)


def module_digest(module: nn.Module) -> str:
    """sha256 of the module's class and weights: identical stage-1 encoders give the same BSN cache key."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    digest.update(repr(module).encode())  # the architecture, incl. the components it outputs
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def bsn_config(cfg: dict) -> dict:
    """The ``bsn`` section for BSN on F': RefactorNet's stream, gamma (eq. 6) and training videos."""
    rc = cfg["refactornet"]
    out = copy.deepcopy(cfg)
    out["bsn"].update(stream=rc["stream"], tem_end_weight=rc["proposals"]["gamma"],
                      train_split=cfg["run"]["train_split"])
    return out


def refactored_proposals(cfg: dict, module: nn.Module, dataset, eval_ids: list[str],
                         console=None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Train (or load) BSN on ``module``'s F' of the ``run.train_split`` videos and propose for ``eval_ids``;
    returns the proposals (``video_id, start, end, score`` and BSN's component scores, seconds) and BSN's
    timings."""
    view = RefactoredFeatures(dataset, module, cfg["refactornet"]["stream"], cfg["detector"]["snippet_pooling"],
                              cfg["run"])
    features_id = (f"refactornet:{cfg['refactornet']['components']}:{module_digest(module)}:"
                   f"pooling{cfg['detector']['snippet_pooling']}")
    bsn = fit_bsn(bsn_config(cfg), view, console, features_id=features_id)
    return generate_proposals(bsn, view, eval_ids, console), bsn.timings
