"""CLTDR-GMG at small dimensions: GMG variants (tables 6-8), DCM / DRM / CLFF (tables 9, 11), RefineHead
variants (table 10), pyramid depth (table 14), masking and determinism."""

from __future__ import annotations

import pytest
import torch

from talbench.models.blocks.self_attention import MaskedMHA
from talbench.models.cltdr_gmg.clff import CrossLayerFeatureFusion
from talbench.models.cltdr_gmg.dcm import DCM
from talbench.models.cltdr_gmg.detector import build_cltdr_gmg
from talbench.models.cltdr_gmg.drm import DRM
from talbench.models.cltdr_gmg.gmg import FourierGlobalFilter, GMGBlock, gated_mixture

torch.set_num_threads(1)
SMALL = {"in_dim": 12, "num_classes": 3, "dim": 32, "head_dim": 16, "mlp_dim": 24, "num_bins": 4}


def lengths_mask(lengths: list[int], t: int) -> torch.Tensor:
    return (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]


def count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------ GMG


def constant_terms(g: float = 5.0) -> dict[str, torch.Tensor]:
    return {"instant": torch.tensor(2.0), "local": torch.tensor(3.0), "global": torch.tensor(g)}


@pytest.mark.parametrize(
    ("branches", "gate", "g", "expected"),
    [
        (("instant", "local", "global"), "code", 5.0, 5 + 3 * 5 + 2 * 15 + 7),  # G, L = c G, I = f L, + u
        (("instant", "local", "global"), "code", -5.0, -5 - 15 - 30 + 7),
        (("instant", "local", "global"), "none", 5.0, 2 + 3 + 5 + 7),
        (("instant", "local", "global"), "paper", 5.0, 5 + 15 + 30),  # eq. 4: ReLU gates, no u
        (("instant", "local", "global"), "paper", -5.0, -5 + 0 + 0),
        (("instant", "global"), "code", 5.0, 5 + 2 * 5 + 7),  # instant gated by the next present branch
        (("instant", "local"), "code", 5.0, 3 + 2 * 3 + 7),
        (("local",), "code", 5.0, 3 + 7),
        (("global",), "none", 5.0, 5 + 7),
    ],
)
def test_gated_mixture(branches, gate, g, expected):
    terms = {name: value for name, value in constant_terms(g).items() if name in branches}
    assert gated_mixture(terms, torch.tensor(7.0), gate).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("branches", "gate"),
    [(("instant", "local", "global"), "code"), (("instant", "local"), "none"), (("global",), "paper")],
)
def test_gmg_block_wiring(branches, gate):
    """The block output equals the formula of its docstring computed from its own sub-modules."""
    torch.manual_seed(0)
    block = GMGBlock(16, 3, stride=2, mlp_dim=24, init_conv_vars=0.2, branches=branches, gate=gate).eval()
    x, mask = torch.randn(2, 16, 10), lengths_mask([10, 7], 10)
    xd, md = torch.nn.functional.max_pool1d(x, 3, 2, 1), mask[..., ::2]
    u = block.ln(xd)
    terms = {}
    if "instant" in branches:
        terms["instant"] = block.instant(u)
    if "local" in branches:
        terms["local"] = block.local(u)
    if "global" in branches:
        terms["global"] = block.global_branch(u, md)
    y = xd * md + gated_mixture(terms, u, gate)
    y = y + block.mlp(block.gn(y))
    out, out_mask = block(x, mask)
    torch.testing.assert_close(out, y)
    assert torch.equal(out_mask, md)


def test_gmg_branches_are_built_only_when_selected():
    full = GMGBlock(16, 3, mlp_dim=24)
    assert {full.instant is None, full.local is None, full.global_branch is None} == {False}
    only_global = GMGBlock(16, 3, mlp_dim=24, branches=("global",))
    assert only_global.instant is None and only_global.local is None
    assert count(full) - count(only_global) == 16 * 2 + 16 * 4  # depth-wise 1x1 and 3-tap convs with biases
    assert isinstance(
        GMGBlock(16, 1, branches=("global",), global_extractor="attention").global_branch.attn, MaskedMHA
    )
    for bad in ({"branches": ()}, {"branches": ("fft",)}, {"gate": "relu"}, {"global_extractor": "conv"}):
        with pytest.raises(ValueError):
            GMGBlock(16, 1, **bad)


def test_fourier_filter_matches_eqs_1_to_3():
    torch.manual_seed(0)
    filt = FourierGlobalFilter(4)
    u = torch.randn(2, 4, 9)
    spectrum = torch.fft.rfft(u, norm="ortho")
    w1, b1 = torch.complex(filt.w1[0], filt.w1[1]), torch.complex(filt.b1[0], filt.b1[1])[:, None]
    w2, b2 = torch.complex(filt.w2[0], filt.w2[1]), torch.complex(filt.b2[0], filt.b2[1])[:, None]
    hidden = spectrum * w1 + b1
    w = torch.complex(hidden.real.relu(), hidden.imag.relu()) * w2 + b2
    w = torch.complex(
        torch.nn.functional.softshrink(w.real, 0.001), torch.nn.functional.softshrink(w.imag, 0.001)
    )
    torch.testing.assert_close(filt(u, None), torch.fft.irfft(spectrum * w, n=9, norm="ortho"))


def test_attention_global_extractor_ignores_padded_positions():
    torch.manual_seed(0)
    block = GMGBlock(16, 1, mlp_dim=24, branches=("global",), global_extractor="attention").eval()
    mask = lengths_mask([6], 9)
    u = torch.randn(1, 16, 9)
    u2 = u.clone()
    u2[..., 6:] = 100.0
    a, b = block.global_branch(u, mask), block.global_branch(u2, mask)
    torch.testing.assert_close(a[..., :6], b[..., :6])
    assert (a[..., 6:] == 0).all()


# -------------------------------------------------------------------------------------- DCM / DRM / CLFF


def odd_pyramid(dim: int = 8, lengths=(7, 4, 2, 1)) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(2, dim, t) for t in lengths]


@pytest.mark.parametrize(
    "module", [DCM(8), DRM(8), CrossLayerFeatureFusion(8), DCM(8, ("upper", "lower"), "concatenation")]
)
def test_cross_layer_modules_keep_level_shapes_with_odd_lengths(module):
    feats = odd_pyramid()
    out = module(feats)
    assert [o.shape for o in out] == [f.shape for f in feats]


def test_dcm_fuses_the_coarser_level_and_keeps_the_top():
    feats = odd_pyramid()
    dcm = DCM(8, fusion="addition")
    out = dcm(feats)
    torch.testing.assert_close(
        out[0], feats[0] + dcm.upsample.conv(feats[1])[..., :7]
    )  # ConvT: 8 steps cropped to 7
    torch.testing.assert_close(out[1], feats[1] + dcm.upsample.conv(feats[2]))
    assert torch.equal(out[-1], feats[-1])


def test_drm_fuses_the_finer_level_with_attention_and_keeps_the_bottom():
    feats = odd_pyramid()
    drm = DRM(8)
    out = drm(feats)
    assert torch.equal(out[0], feats[0])
    down = drm.downsample.conv(feats[0])  # 7 -> 4 steps
    att = drm.fusion.attention[0]
    weight = torch.sigmoid(att.fc(torch.relu(down + att.conv_l(feats[1])).mean(-1, keepdim=True)))
    assert weight.shape == (2, 8, 1)
    torch.testing.assert_close(out[1], feats[1] + weight * down)


def test_clff_sums_the_available_neighbours():
    feats = odd_pyramid()
    clff = CrossLayerFeatureFusion(8)
    out = clff(feats)
    torch.testing.assert_close(out[0], feats[0] + clff.upsample.conv(feats[1])[..., :7])
    torch.testing.assert_close(out[-1], feats[-1] + clff.downsample.conv(feats[-2]))
    mid = feats[1] + clff.downsample.conv(feats[0]) + clff.upsample.conv(feats[2])
    torch.testing.assert_close(out[1], mid)


def test_fusion_strategies_and_layer_choices_parameters():
    d = 8
    resample = 3 * d * d + d
    assert count(DCM(d)) == resample + 2 * (d * d + d)  # ConvT + conv_l + attention FC
    assert count(DCM(d, fusion="addition")) == resample
    assert count(DCM(d, fusion="concatenation")) == resample + 2 * d * d + d
    assert count(DRM(d, ("upper", "lower"))) == 2 * resample + 4 * (d * d + d)
    assert count(DCM(d, ())) == 0
    feats = odd_pyramid()
    assert all(torch.equal(a, b) for a, b in zip(DCM(d, ())(feats), feats, strict=True))
    with pytest.raises(ValueError):
        DCM(d, ("above",))
    with pytest.raises(ValueError):
        DRM(d, fusion="product")


# ------------------------------------------------------------------------------------------- detector


def small_model(**kwargs):
    torch.manual_seed(0)
    return build_cltdr_gmg(**{**SMALL, **kwargs}).eval()


def test_outputs_per_level():
    model = small_model()
    x, mask = torch.randn(2, 12, 45), lengths_mask([45, 30], 45)
    out = model(x, mask)
    lengths = [45, 23, 12, 6, 3, 2]
    assert model.strides == (1, 2, 4, 8, 16, 32)
    for name in (
        "cls_logits",
        "coarse_cls_logits",
        "start_logits",
        "end_logits",
        "refine_start",
        "refine_end",
    ):
        assert [tuple(o.shape) for o in getattr(out, name)] == [(2, 3, t) for t in lengths]
    assert [tuple(o.shape) for o in out.offsets] == [(2, 2, 5, t) for t in lengths]
    assert [tuple(m.shape) for m in out.masks] == [(2, t) for t in lengths]
    assert [tuple(d.shape) for d in out.refined_distances(model.strides)] == [(2, t, 3, 2) for t in lengths]
    assert all((d >= 0).all() for d in out.refined_distances(model.strides))
    assert out.masks[1][1].sum() == 15


def test_refinement_variants_table_10():
    x, mask = torch.randn(1, 12, 16), lengths_mask([16], 16)
    none = small_model(refine=())
    assert none.decoder.refine_head is None and none.decoder.clff is None
    out = none(x, mask)
    assert out.refine_start is None and all(
        torch.equal(a, b) for a, b in zip(out.cls_logits, out.coarse_cls_logits)
    )
    cls_only = small_model(refine=("classification",))
    out = cls_only(x, mask)
    assert out.refine_start is None and cls_only.decoder.refine_head.start_offset is None
    assert not torch.equal(out.cls_logits[0], out.coarse_cls_logits[0])
    reg_only = small_model(refine=("regression",))
    out = reg_only(x, mask)
    assert reg_only.decoder.refine_head.classifier is None and out.refine_start is not None
    assert all(torch.equal(a, b) for a, b in zip(out.cls_logits, out.coarse_cls_logits))
    paper = small_model(refine_form="paper")(x, mask)
    code = small_model()(x, mask)
    assert torch.equal(paper.coarse_cls_logits[0], code.coarse_cls_logits[0])
    assert not torch.allclose(paper.cls_logits[0], code.cls_logits[0])


@pytest.mark.parametrize("num_levels", [1, 2, 7])
def test_number_of_levels_table_14(num_levels):
    model = small_model(num_levels=num_levels)
    out = model(torch.randn(1, 12, 40), lengths_mask([40], 40))
    assert len(out.cls_logits) == len(out.offsets) == len(out.refine_end) == num_levels
    assert len(model.decoder.reg_head.scales) == num_levels == len(model.neck.norms)


def test_padded_content_does_not_change_valid_outputs():
    model = small_model(init_conv_vars=0.1)
    mask = lengths_mask([37, 22], 40)
    x = torch.randn(2, 12, 40)
    x_garbage = torch.where(mask, x, torch.randn_like(x) * 50)
    a, b = model(x, mask), model(x_garbage, mask)
    for name in ("cls_logits", "coarse_cls_logits", "start_logits", "end_logits", "offsets", "refine_start"):
        for level_a, level_b, valid in zip(getattr(a, name), getattr(b, name), a.masks, strict=True):
            keep = valid[:, None, None, :] if level_a.dim() == 4 else valid[:, None, :]
            torch.testing.assert_close(level_a * keep, level_b * keep, rtol=0, atol=0)


def test_deterministic_given_a_seed():
    x, mask = torch.randn(2, 12, 24), lengths_mask([24, 17], 24)
    a, b = small_model().train(), small_model().train()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    torch.manual_seed(1)
    out_a = a(x, mask)
    torch.manual_seed(1)
    out_b = b(x, mask)
    assert all(torch.equal(p, q) for p, q in zip(out_a.cls_logits, out_b.cls_logits, strict=True))
