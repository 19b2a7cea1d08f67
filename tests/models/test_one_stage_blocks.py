"""Shared one-stage blocks: masked conv, channel LayerNorm, drop-path, local attention, SGP, max-pool blocks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from talbench.models.blocks.channel_norm import ChannelLayerNorm
from talbench.models.blocks.drop_path import AffineDropPath, residual_scaler
from talbench.models.blocks.local_attention import MaskedMHCA, TransformerBlock, windowed_attention
from talbench.models.blocks.masked_conv import MaskedConv1d, downsample_mask
from talbench.models.blocks.max_downsample import TemporalMaxerBlock, max_pool_downsample
from talbench.models.blocks.scale import Scale
from talbench.models.blocks.sgp import SGPBlock, sgp_long_kernel
from talbench.models.one_stage.projection import SinusoidPositionEncoding

torch.set_num_threads(1)


def lengths_mask(lengths: list[int], t: int) -> torch.Tensor:
    return (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]


def test_masked_conv_masks_output_and_downsamples_mask():
    torch.manual_seed(0)
    conv = MaskedConv1d(3, 4, 3, stride=2)
    mask = lengths_mask([5, 9], 9)
    y, out_mask = conv(torch.randn(2, 3, 9), mask)
    assert y.shape == (2, 4, 5) and out_mask.tolist() == mask[..., ::2].tolist()
    assert out_mask[0, 0].tolist() == [True, True, True, False, False]
    assert (y[0, :, 3:] == 0).all() and (y[1] != 0).any()
    assert (conv.conv.bias == 0).all()
    with pytest.raises(ValueError):
        MaskedConv1d(3, 4, 2)


def test_downsample_mask_equals_nearest_interpolation_when_divisible():
    mask = lengths_mask([5, 11, 16], 16)
    nearest = F.interpolate(mask.float(), size=8, mode="nearest").bool()
    assert torch.equal(downsample_mask(mask, 2), nearest)
    assert downsample_mask(lengths_mask([7], 7), 2).shape[-1] == 4


def test_channel_layer_norm_normalises_each_time_step_over_channels():
    torch.manual_seed(0)
    norm = ChannelLayerNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 6, 5)
    expected = F.layer_norm(x.transpose(1, 2), (6,), norm.weight.view(6), norm.bias.view(6), 1e-5).transpose(
        1, 2
    )
    torch.testing.assert_close(norm(x), expected)


def test_scale_and_affine_drop_path():
    torch.manual_seed(0)
    scale = Scale(2.0)
    assert torch.equal(scale(torch.ones(3)), torch.full((3,), 2.0))
    dp = AffineDropPath(4, drop_prob=0.5)
    x = torch.ones(64, 4, 3)
    assert torch.allclose(dp.eval()(x), torch.full_like(x, 1e-4))
    out = dp.train()(x)
    per_sample = out.flatten(1)
    kept = (per_sample != 0).all(dim=1)
    assert ((per_sample == 0).all(dim=1) | kept).all()  # whole samples are dropped
    assert torch.allclose(
        per_sample[kept], torch.full_like(per_sample[kept], 2e-4)
    )  # kept ones rescaled by 1/0.5
    assert 0 < kept.sum() < 64
    assert isinstance(residual_scaler(4, 0.0), torch.nn.Identity)


def band_attention_reference(q, k, v, key_mask, window):
    """Dense attention with an explicit band mask, the reference for the unfold implementation."""
    t = q.shape[2]
    idx = torch.arange(t)
    allowed = key_mask[:, None, None, :] & ((idx[:, None] - idx[None, :]).abs() <= window // 2)[None, None]
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    return weights @ v


@pytest.mark.parametrize("window", [3, 5, None])
def test_windowed_attention_matches_dense_band_reference(window):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 11, 4) for _ in range(3))
    key_mask = lengths_mask([7, 11], 11)[:, 0]
    expected = band_attention_reference(q, k, v, key_mask, window if window else 999)
    torch.testing.assert_close(windowed_attention(q, k, v, key_mask, window), expected)


def test_masked_keys_get_no_weight():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 6, 4) for _ in range(3))
    key_mask = lengths_mask([4], 6)[:, 0]
    out = windowed_attention(q, k, v, key_mask, 5)
    v2 = v.clone()
    v2[..., 4:, :] = 1e6
    k2 = k.clone()
    k2[..., 4:, :] = -1e3
    assert torch.allclose(out[..., :4, :], windowed_attention(q, k2, v2, key_mask, 5)[..., :4, :])


def test_transformer_block_shapes_and_mask():
    torch.manual_seed(0)
    mask = lengths_mask([9, 13], 13)
    x = torch.randn(2, 8, 13)
    for stride, t_out in [(1, 13), (2, 7)]:
        block = TransformerBlock(8, 2, 5, stride=stride, drop_path=0.1).eval()
        y, m = block(x, mask)
        assert y.shape == (2, 8, t_out) and m.shape == (2, 1, t_out)
    attn = MaskedMHCA(8, 2, 5, stride=2)
    out, m = attn(x, mask)
    assert (out[0, :, 5:] == 0).all() and m[0, 0].tolist() == [True] * 5 + [False] * 2
    with pytest.raises(ValueError):
        MaskedMHCA(8, 3, 5)


def test_sgp_block_long_kernel_and_shapes():
    assert sgp_long_kernel(1, 5.0) == 11 and sgp_long_kernel(3, 1.5) == 7
    torch.manual_seed(0)
    block = SGPBlock(16, 3, stride=2, k=1.5, mlp_dim=24, drop_path=0.1, init_conv_vars=0.1).eval()
    assert block.convkw.kernel_size == (7,)
    y, m = block(torch.randn(2, 16, 11), lengths_mask([11, 6], 11))
    assert y.shape == (2, 16, 6) and m[1, 0].tolist() == [True] * 3 + [False] * 3


def test_max_pool_and_temporalmaxer_block():
    x = torch.tensor([[[1.0, 5.0, 2.0, 0.0, 3.0]]])
    assert max_pool_downsample(x, 2).tolist() == [[[5.0, 5.0, 3.0]]]
    y, m = TemporalMaxerBlock(2)(x, lengths_mask([3], 5))
    assert y.tolist() == [[[5.0, 5.0, 0.0]]] and m.tolist() == [[[True, True, False]]]


def test_sinusoid_position_encoding():
    pe = SinusoidPositionEncoding(4, max_len=6)
    x = torch.zeros(1, 4, 5)
    out = pe(x, lengths_mask([3], 5))
    t = torch.tensor([0.0, 1.0, 2.0])
    expected = torch.stack([torch.sin(t), torch.cos(t), torch.sin(t / 100), torch.cos(t / 100)]) / 2
    torch.testing.assert_close(out[0, :, :3], expected)
    assert (out[0, :, 3:] == 0).all()
    assert pe.eval()(torch.zeros(1, 4, 9), lengths_mask([9], 9)).shape == (
        1,
        4,
        9,
    )  # interpolated beyond max_len
    with pytest.raises(ValueError):
        pe.train()(torch.zeros(1, 4, 9), lengths_mask([9], 9))


def test_projection_without_layer_norm_uses_conv_biases():
    from talbench.models.one_stage.projection import ConvProjection

    with_ln, without = ConvProjection(4, 8), ConvProjection(4, 8, with_ln=False)
    assert all(c.conv.bias is None for c in with_ln.convs) and all(c.conv.bias is not None for c in without.convs)
    assert all(isinstance(n, torch.nn.Identity) for n in without.norms)
    out = without(torch.randn(1, 4, 6), lengths_mask([4], 6))
    assert (out >= 0).all() and (out[..., 4:] == 0).all()


def test_depthwise_conv_of_kernel_one_is_the_grouped_convolution():
    from talbench.models.blocks.sgp import DepthwiseConv1d

    torch.manual_seed(0)
    for kernel in (1, 3):
        fast = DepthwiseConv1d(8, 8, kernel, padding=kernel // 2, groups=8)
        x = torch.randn(2, 8, 11)
        reference = F.conv1d(x, fast.weight, fast.bias, padding=kernel // 2, groups=8)
        assert torch.allclose(fast(x), reference, atol=1e-6)


def _per_level_head(head, feats, masks, final_convs):
    """The heads computed one level at a time, as the official loops do (zero padding at each level's ends)."""
    outs = []
    for x, m in zip(feats, masks, strict=True):
        hidden = head.trunk(x, m)
        outs.append([conv(hidden, m)[0] for conv in final_convs])
    return outs


def test_packed_levels_give_the_per_level_outputs():
    """Levels run side by side with zeroed gap columns: the outputs of each level equal its own computation,
    including levels whose last position is valid (no padding to read) and the kernel-7 refine offsets."""
    from talbench.models.cltdr_gmg.refine_head import RefineHead
    from talbench.models.one_stage.heads import ClassificationHead, RegressionHead

    torch.manual_seed(0)
    lengths = [(16, [16, 11]), (8, [8, 6]), (4, [4, 3]), (2, [2, 2])]
    feats = [torch.randn(2, 8, t) for t, _ in lengths]
    masks = [lengths_mask(valid, t) for t, valid in lengths]
    cls = ClassificationHead(8, 6, 3)
    for norm in (*cls.trunk.norms,):
        torch.nn.init.normal_(norm.bias)  # LN(0) = bias: padded columns are not zero inside the trunk
    packed = cls(feats, masks)
    for out, (ref,) in zip(packed, _per_level_head(cls, feats, masks, [cls.classifier]), strict=True):
        assert torch.allclose(out, ref, atol=1e-5)
    reg = RegressionHead(8, 6, num_levels=4, num_outputs=2)
    for i, scale in enumerate(reg.scales):
        scale.scale.data.fill_(0.5 + i)
    for level, (out, (ref,)) in enumerate(zip(reg(feats, masks), _per_level_head(reg, feats, masks, [reg.regressor]),
                                              strict=True)):
        assert torch.allclose(out, torch.relu(ref * (0.5 + level)), atol=1e-5)
    refine = RefineHead(8, 6, 3, offset_kernel_size=7)
    for norm in refine.trunk.norms:
        torch.nn.init.normal_(norm.bias)
    got = refine(feats, masks)
    expected = _per_level_head(refine, feats, masks, [refine.classifier, refine.start_offset, refine.end_offset])
    for level, (c, s, e) in enumerate(expected):
        assert torch.allclose(got.class_logits[level], c, atol=1e-5)
        assert torch.allclose(got.start_offsets[level], s, atol=1e-5)
        assert torch.allclose(got.end_offsets[level], e, atol=1e-5)
