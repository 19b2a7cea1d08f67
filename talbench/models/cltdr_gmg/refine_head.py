"""RefineHead of CLTDR (sec. "RefineHead", eqs. 10-12; official ``RefineHead`` in ``libs/modeling/meta_archs.py``
and the fusion in ``TriDet.forward`` / ``decode_offset``).

Network (on the CLFF features ``F_c^l``, shared by all levels): 2 x [MaskedConv1D (k 3, no bias) -> LN -> ReLU],
then three parallel MaskedConv1Ds: start offsets ``R_so`` (``C`` channels, **kernel 7**), end offsets ``R_eo``
(``C``, kernel 7) and class refinement logits ``R_co`` (``C``, kernel 3, bias 0, no prior). Supp. C says kernel 3
for all RefineHead convs; the code uses 7 for the two offset convs; the default follows the code. The official
module also creates one ``Scale`` per level that it never uses (6 parameters at L = 6); they are not built here, so
this module has 6 fewer parameters than the official one at L = 6 and the same outputs.

Refinement (tensor functions below):

* classification, eq. 10 — code: refined logit = ``coarse_logit * R_co`` (product of raw logits), score =
  ``sigmoid`` of it (``form="code"``, default); paper: score = ``sqrt(sigmoid(coarse) * sigmoid(R_co))``
  (``form="paper"``, diagnostic; returned as the logit of that score so both forms feed the same losses);
* regression, eqs. 11-12 — per class: ``s_r = t - d_left * s + R_so``, ``e_r = t + d_right * s + R_eo``, with ``R``
  in input-grid units (not scaled by the stride ``s``), converted back to distances ``/ s`` and clamped at 0.

``refine`` selects what is refined (table 10): ``("classification", "regression")`` (default), one of the two, or
neither (then the detector builds no RefineHead and no CLFF).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from talbench.models.blocks.masked_conv import MaskedConv1d
from talbench.models.one_stage.heads import ConvTrunk, pack_levels

REFINE_TARGETS = ("classification", "regression")
REFINE_FORMS = ("code", "paper")


@dataclass
class RefineOutputs:
    """Per-level ``(B, C, T_l)`` lists; ``None`` for what the head does not refine."""

    class_logits: list[torch.Tensor] | None
    start_offsets: list[torch.Tensor] | None
    end_offsets: list[torch.Tensor] | None


class RefineHead(nn.Module):
    def __init__(
        self,
        in_dim: int = 512,
        feat_dim: int = 512,
        num_classes: int = 20,
        num_layers: int = 3,
        kernel_size: int = 3,
        offset_kernel_size: int = 7,
        with_ln: bool = True,
        refine: Sequence[str] = REFINE_TARGETS,
    ):
        super().__init__()
        refine = tuple(refine)
        if not refine or any(r not in REFINE_TARGETS for r in refine):
            raise ValueError(f"refine must be a non-empty subset of {REFINE_TARGETS}, got {refine}")
        self.gap = max(kernel_size, offset_kernel_size) // 2  # levels run packed (one_stage.heads)
        self.trunk = ConvTrunk(in_dim, feat_dim, num_layers - 1, kernel_size, with_ln)
        regression = "regression" in refine
        self.start_offset = MaskedConv1d(feat_dim, num_classes, offset_kernel_size) if regression else None
        self.end_offset = MaskedConv1d(feat_dim, num_classes, offset_kernel_size) if regression else None
        self.classifier = (
            MaskedConv1d(feat_dim, num_classes, kernel_size) if "classification" in refine else None
        )

    def forward(self, feats: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> RefineOutputs:
        packed = pack_levels(feats, masks, self.gap)
        hidden = self.trunk(packed.x, packed.mask, packed.present)

        def run(conv: MaskedConv1d | None) -> list[torch.Tensor] | None:
            return None if conv is None else packed.unpack(conv(hidden, packed.mask)[0])

        return RefineOutputs(run(self.classifier), run(self.start_offset), run(self.end_offset))


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate on both sides of ``-log 2``."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def refine_class_logits(coarse: torch.Tensor, refine: torch.Tensor, form: str = "code") -> torch.Tensor:
    """Refined classification logits (eq. 10); their sigmoid is the refined score."""
    if form == "code":
        return coarse * refine
    if form == "paper":
        log_score = 0.5 * (nn.functional.logsigmoid(coarse) + nn.functional.logsigmoid(refine))
        return log_score - _log1mexp(log_score)
    raise ValueError(f"form must be one of {REFINE_FORMS}, got {form!r}")


def refine_distances(
    distances: torch.Tensor, start_offsets: torch.Tensor, end_offsets: torch.Tensor, stride: int
) -> torch.Tensor:
    """Eqs. 11-12 for one level: ``distances`` ``(B, T, C, 2)`` (Trident, in stride units), ``R_so`` / ``R_eo``
    ``(B, C, T)`` in input steps -> refined distances ``(B, T, C, 2)`` in stride units, clamped at 0.
    ``(t - s_r) / s = d_left - R_so / s`` and ``(e_r - t) / s = d_right + R_eo / s``."""
    left = distances[..., 0] - start_offsets.transpose(1, 2) / stride
    right = distances[..., 1] + end_offsets.transpose(1, 2) / stride
    return torch.stack([left.clamp(min=0), right.clamp(min=0)], dim=-1)
