"""BSN on RefactorNet's refactored features F' (CVPR 2022, sec. 3.6 and 5.2, eq. 6).

The paper runs its boundary-based proposal generator on ``F'``: "we perform action boundary regression via
the new snippet representations F' to find start and end locations with high responses and group them into
action proposals", trained with ``L_P = L_bl^s + gamma L_bl^e`` (eq. 6, gamma = 1). Here the shared BSN
implementation (:mod:`talbench.runners.bsn`: TEM, PGM, PEM, Soft-NMS) reads a view of the dataset whose
features are ``f' = phi_A(f) (+) phi_C(f)`` of every feature cell, with ``bsn.tem_end_weight = gamma``.

Order (the paper gives none, see docs/refactornet.md): stage 1 and stage 2 train the encoders and the detector
(on the shared BSN proposals of the training videos), then BSN is trained on the final F' of the
``run.train_split`` videos and proposes for the evaluation videos, which the detector scores. BSN on the F' of
the stage-1 encoders was measured and rejected: its AR@100 on the smoke test split is 12.6 against 54.0 on
the original features (stage 1 alone makes phi_C nearly constant), while BSN on the final F' reaches 53.7.
A trained BSN is cached under ``models/bsn/<hash>/`` keyed by a digest of the module's weights.
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


class RefactoredFeatures:
    """A dataset view whose ``features(video, stream)`` are the module's output on every feature cell of
    ``stream`` (the stream the module was trained on); everything else is the wrapped dataset's."""

    def __init__(self, dataset, module: nn.Module, stream: str, chunk: int = 8192):
        self._dataset, self._module, self._stream, self._chunk = dataset, module, stream, chunk

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)

    @torch.no_grad()
    def features(self, video_id: str, stream: str = "both") -> np.ndarray:
        if stream != self._stream:
            raise ValueError(f"refactored features exist for stream '{self._stream}' only, BSN asked for "
                             f"'{stream}' (video '{video_id}'); set bsn.stream to refactornet.stream")
        cells = torch.tensor(np.asarray(self._dataset.features(video_id, stream)), dtype=torch.float32)
        self._module.eval()
        out = [self._module(part) for part in torch.split(cells, self._chunk)]
        return torch.cat(out).numpy()


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
    """Train (or load) BSN on ``module``'s F' of the ``run.train_split`` videos and propose for ``eval_ids``; returns the proposals (``video_id, start, end, score`` and BSN's component scores, seconds)
    and BSN's timings."""
    view = RefactoredFeatures(dataset, module, cfg["refactornet"]["stream"])
    features_id = f"refactornet:{cfg['refactornet']['components']}:{module_digest(module)}"
    bsn = fit_bsn(bsn_config(cfg), view, console, features_id=features_id)
    return generate_proposals(bsn, view, eval_ids, console), bsn.timings
