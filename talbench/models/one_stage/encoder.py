"""Pyramid encoders of the one-stage detectors: projection -> stem blocks (stride 1) -> branch blocks (each
downsampling by ``scale_factor`` first), every branch output being one pyramid level (``libs/modeling/
backbones.py`` of ActionFormer ``ConvTransformerBackbone``, TriDet / CLTDR-GMG ``SGPBackbone``, TemporalMaxer
``ConvPoolerBackbone``).

``forward(x, mask) -> (feats, masks)`` with ``L = 1 + len(branch)`` levels, level ``l`` of stride
``scale_factor ** l`` and length ``ceil(T / scale_factor ** l)``. The input is multiplied by its mask first, so the
content of padded positions never reaches a valid output (the official code relies on zero padding; it also adds
its training noise to padded positions, which this masking removes). The padded *length* is a different matter:
blocks that mix the whole sequence (the GMG FFT, SGP's temporal mean, GroupNorm, CLTDR's average pooling) see it,
as in the official code, which pads every video to ``max_seq_len``.

Builders (defaults = each method's official THUMOS14 I3D config; ``num_levels`` = L, branch blocks = L - 1):

* :func:`transformer_encoder` — ActionFormer: 2 stem + 5 branch transformer blocks, 4 heads, local window 19,
  MLP 4D, drop-path 0.1 on every block (stem too);
* :func:`sgp_encoder` — TriDet: 2 stem + 5 branch SGP blocks, ``k`` 5, window 1, MLP 768, drop-path 0.1 on the
  branch blocks only (the stem is built without it), stem kernel 1;
* :func:`gmg_encoder` — CLTDR-GMG: the same layout with GMG blocks (stem local kernel 1, no stem drop-path);
* :func:`temporalmaxer_encoder` — TemporalMaxer: projection + 5 max-pool blocks, no stem, no parameters beyond
  the projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from talbench.models.blocks.local_attention import TransformerBlock
from talbench.models.blocks.max_downsample import TemporalMaxerBlock
from talbench.models.blocks.sgp import SGPBlock
from talbench.models.cltdr_gmg.gmg import BRANCHES, GMGBlock
from talbench.models.one_stage.projection import ConvProjection, SinusoidPositionEncoding


class PyramidEncoder(nn.Module):
    def __init__(
        self,
        projection: nn.Module,
        stem: Sequence[nn.Module],
        branch: Sequence[nn.Module],
        position_encoding: SinusoidPositionEncoding | None = None,
        scale_factor: int = 2,
    ):
        super().__init__()
        self.projection = projection
        self.position_encoding = position_encoding
        self.stem = nn.ModuleList(stem)
        self.branch = nn.ModuleList(branch)
        self.scale_factor = scale_factor

    @property
    def num_levels(self) -> int:
        return 1 + len(self.branch)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(self.scale_factor**level for level in range(self.num_levels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if x.dim() != 3 or mask.shape != (x.shape[0], 1, x.shape[2]) or mask.dtype != torch.bool:
            raise ValueError(
                f"expected x (B, C, T) and a bool mask (B, 1, T), got {tuple(x.shape)}, {tuple(mask.shape)}"
            )
        x = self.projection(x * mask.to(x.dtype), mask)
        if self.position_encoding is not None:
            x = self.position_encoding(x, mask)
        for block in self.stem:
            x, mask = block(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks


def _per_level(value: int | Sequence[int] | None, num_levels: int, name: str) -> list:
    if value is None or isinstance(value, int):
        return [value] * num_levels
    if len(value) != num_levels:
        raise ValueError(f"{name} needs one value per level ({num_levels}), got {list(value)}")
    return list(value)


def _projection(in_dim, dim, proj_layers, proj_kernel_size, proj_with_ln, use_abs_pe, max_seq_len):
    projection = ConvProjection(in_dim, dim, proj_layers, proj_kernel_size, proj_with_ln)
    return projection, (SinusoidPositionEncoding(dim, max_seq_len) if use_abs_pe else None)


def transformer_encoder(
    in_dim: int = 2048,
    dim: int = 512,
    num_levels: int = 6,
    num_stem: int = 2,
    num_heads: int = 4,
    window_size: int | None | Sequence[int | None] = 19,
    mlp_dim: int | None = None,
    drop_path: float = 0.1,
    scale_factor: int = 2,
    proj_layers: int = 2,
    proj_kernel_size: int = 3,
    proj_with_ln: bool = True,
    use_abs_pe: bool = False,
    max_seq_len: int = 2304,
) -> PyramidEncoder:
    """ActionFormer's encoder; ``window_size`` per level (stem uses level 0's), ``None`` = global attention."""
    windows = _per_level(window_size, num_levels, "window_size")
    projection, pe = _projection(
        in_dim, dim, proj_layers, proj_kernel_size, proj_with_ln, use_abs_pe, max_seq_len
    )
    stem = [TransformerBlock(dim, num_heads, windows[0], 1, mlp_dim, drop_path) for _ in range(num_stem)]
    branch = [
        TransformerBlock(dim, num_heads, windows[level], scale_factor, mlp_dim, drop_path)
        for level in range(1, num_levels)
    ]
    return PyramidEncoder(projection, stem, branch, pe, scale_factor)


def sgp_encoder(
    in_dim: int = 2048,
    dim: int = 512,
    num_levels: int = 6,
    num_stem: int = 2,
    kernel_size: int | Sequence[int] = 1,
    k: float = 5.0,
    mlp_dim: int = 768,
    drop_path: float = 0.1,
    init_conv_vars: float = 0.0,
    scale_factor: int = 2,
    proj_layers: int = 2,
    proj_kernel_size: int = 3,
    proj_with_ln: bool = True,
    use_abs_pe: bool = False,
    max_seq_len: int = 2304,
) -> PyramidEncoder:
    """TriDet's encoder; ``kernel_size`` = ``n_sgp_win_size`` per level (the stem always uses 1)."""
    kernels = _per_level(kernel_size, num_levels, "kernel_size")
    projection, pe = _projection(
        in_dim, dim, proj_layers, proj_kernel_size, proj_with_ln, use_abs_pe, max_seq_len
    )
    stem = [SGPBlock(dim, 1, 1, k, mlp_dim, 0.0, init_conv_vars) for _ in range(num_stem)]
    branch = [
        SGPBlock(dim, kernels[level], scale_factor, k, mlp_dim, drop_path, init_conv_vars)
        for level in range(1, num_levels)
    ]
    return PyramidEncoder(projection, stem, branch, pe, scale_factor)


def gmg_encoder(
    in_dim: int = 2048,
    dim: int = 512,
    num_levels: int = 6,
    num_stem: int = 2,
    local_kernel_size: int | Sequence[int] = 1,
    mlp_dim: int = 768,
    drop_path: float = 0.1,
    init_conv_vars: float = 0.0,
    branches: Sequence[str] = BRANCHES,
    gate: str = "code",
    global_extractor: str = "fft",
    attention_heads: int = 4,
    scale_factor: int = 2,
    proj_layers: int = 2,
    proj_kernel_size: int = 3,
    proj_with_ln: bool = True,
    use_abs_pe: bool = False,
    max_seq_len: int = 2304,
) -> PyramidEncoder:
    """CLTDR-GMG's encoder; ``local_kernel_size`` = ``n_sgp_win_size`` per level (the stem always uses 1).
    ``branches`` / ``gate`` / ``global_extractor`` apply to every block (tables 6-8)."""
    kernels = _per_level(local_kernel_size, num_levels, "local_kernel_size")
    variant = {
        "branches": branches,
        "gate": gate,
        "global_extractor": global_extractor,
        "attention_heads": attention_heads,
    }
    projection, pe = _projection(
        in_dim, dim, proj_layers, proj_kernel_size, proj_with_ln, use_abs_pe, max_seq_len
    )
    stem = [GMGBlock(dim, 1, 1, mlp_dim, 0.0, init_conv_vars, **variant) for _ in range(num_stem)]
    branch = [
        GMGBlock(dim, kernels[level], scale_factor, mlp_dim, drop_path, init_conv_vars, **variant)
        for level in range(1, num_levels)
    ]
    return PyramidEncoder(projection, stem, branch, pe, scale_factor)


def temporalmaxer_encoder(
    in_dim: int = 2048,
    dim: int = 512,
    num_levels: int = 6,
    scale_factor: int = 2,
    proj_layers: int = 2,
    proj_kernel_size: int = 3,
    proj_with_ln: bool = True,
) -> PyramidEncoder:
    """TemporalMaxer's encoder (``backbone_arch [2, 5]``): projection, then ``L - 1`` max-pool blocks."""
    projection = ConvProjection(in_dim, dim, proj_layers, proj_kernel_size, proj_with_ln)
    branch = [TemporalMaxerBlock(scale_factor) for _ in range(1, num_levels)]
    return PyramidEncoder(projection, [], branch, None, scale_factor)
