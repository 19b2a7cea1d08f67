"""ActionFormer, TriDet, TemporalMaxer and the encoder / decoder swaps of CLTDR-GMG tables 12 and 13 at small
dimensions: output shapes per level, masking, determinism."""

from __future__ import annotations

import pytest
import torch

from talbench.models.actionformer import ActionFormerDecoder, ActionFormerOutputs, build_actionformer
from talbench.models.cltdr_gmg.detector import CLTDRDecoder, CLTDROutputs
from talbench.models.one_stage.detector import OneStageDetector
from talbench.models.one_stage.encoder import (
    gmg_encoder,
    sgp_encoder,
    temporalmaxer_encoder,
    transformer_encoder,
)
from talbench.models.one_stage.neck import GroupNormNeck, LayerNormNeck
from talbench.models.temporalmaxer import build_temporalmaxer
from talbench.models.tridet import TridentDecoder, TridentOutputs, build_tridet

torch.set_num_threads(1)
IN, C, D, H, BINS = 12, 3, 32, 16, 4
LENGTHS = [45, 23, 12, 6, 3, 2]


def lengths_mask(lengths: list[int], t: int) -> torch.Tensor:
    return (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]


ENCODERS = {
    "transformer": lambda: (transformer_encoder(IN, D, window_size=5, mlp_dim=48), LayerNormNeck(D, 6)),
    "sgp": lambda: (sgp_encoder(IN, D, mlp_dim=24, init_conv_vars=0.1), LayerNormNeck(D, 6)),
    "gmg": lambda: (gmg_encoder(IN, D, mlp_dim=24, init_conv_vars=0.1), LayerNormNeck(D, 6)),
    "temporalmaxer": lambda: (temporalmaxer_encoder(IN, D), GroupNormNeck(D)),
}
DECODERS = {
    "actionformer": lambda: ActionFormerDecoder(D, H, C),
    "trident": lambda: TridentDecoder(D, H, C, num_bins=BINS),
    "cltdr": lambda: CLTDRDecoder(D, H, C, num_bins=BINS),
}
# the originals, table 12 (GMG + other decoders) and table 13 (other encoders + CLTDR)
COMBINATIONS = [
    ("transformer", "actionformer"),
    ("sgp", "trident"),
    ("temporalmaxer", "actionformer"),
    ("gmg", "actionformer"),
    ("gmg", "trident"),
    ("transformer", "cltdr"),
    ("temporalmaxer", "cltdr"),
    ("sgp", "cltdr"),
]


def build(encoder: str, decoder: str) -> OneStageDetector:
    torch.manual_seed(0)
    enc, neck = ENCODERS[encoder]()
    return OneStageDetector(enc, neck, DECODERS[decoder]()).eval()


def valid_outputs(out, name):
    return [
        level * (valid[:, None, None, :] if level.dim() == 4 else valid[:, None, :])
        for level, valid in zip(getattr(out, name), out.masks, strict=True)
    ]


@pytest.mark.parametrize(("encoder", "decoder"), COMBINATIONS)
def test_shapes_and_padded_content(encoder, decoder):
    model = build(encoder, decoder)
    mask = lengths_mask([45, 28], 45)
    x = torch.randn(2, IN, 45)
    out = model(x, mask)
    assert [tuple(o.shape) for o in out.cls_logits] == [(2, C, t) for t in LENGTHS]
    if decoder == "actionformer":
        assert isinstance(out, ActionFormerOutputs)
        assert [tuple(o.shape) for o in out.offsets] == [(2, 2, t) for t in LENGTHS]
        assert all((o >= 0).all() for o in out.offsets)
    else:
        assert isinstance(out, TridentOutputs if decoder == "trident" else CLTDROutputs)
        assert [tuple(o.shape) for o in out.offsets] == [(2, 2, BINS + 1, t) for t in LENGTHS]
        distances = out.distances() if decoder == "trident" else out.coarse_distances()
        assert [tuple(d.shape) for d in distances] == [(2, t, C, 2) for t in LENGTHS]
    garbage = model(torch.where(mask, x, torch.randn_like(x) * 50), mask)
    for name in ("cls_logits", "offsets"):
        for a, b in zip(valid_outputs(out, name), valid_outputs(garbage, name), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_builders_compose_the_published_models():
    small = {"in_dim": IN, "num_classes": C, "dim": D, "head_dim": H}
    af = build_actionformer(**small, window_size=5)
    assert isinstance(af.encoder.branch[0].attn.window_size, int) and isinstance(
        af.decoder, ActionFormerDecoder
    )
    td = build_tridet(**small, num_bins=BINS)
    assert isinstance(td.decoder, TridentDecoder) and td.decoder.reg_head.num_bins == BINS
    assert td.decoder.start_head.detach_input and not td.decoder.cls_head.detach_input
    tm = build_temporalmaxer(**small)
    assert isinstance(tm.neck, GroupNormNeck) and len(tm.encoder.stem) == 0 and len(tm.encoder.branch) == 5


def test_boundary_heads_read_detached_features():
    model = build("sgp", "trident").train()
    x, mask = torch.randn(1, IN, 16), lengths_mask([16], 16)
    out = model(x, mask)
    sum(o.sum() for o in out.start_logits).backward()
    assert model.decoder.start_head.classifier.conv.weight.grad is not None
    assert all(p.grad is None for p in model.encoder.parameters())


def test_actionformer_global_attention_levels():
    model = build_actionformer(IN, C, D, window_size=[5, 5, 5, 5, 5, None], head_dim=H).eval()
    assert model.encoder.branch[-1].attn.window_size is None
    out = model(torch.randn(1, IN, 40), lengths_mask([33], 40))
    assert len(out.cls_logits) == 6


def test_deterministic_given_a_seed():
    x, mask = torch.randn(2, IN, 24), lengths_mask([24, 13], 24)
    outs = []
    for _ in range(2):
        model = build("transformer", "actionformer").train()
        torch.manual_seed(3)
        outs.append(model(x, mask))
    assert all(torch.equal(a, b) for a, b in zip(outs[0].cls_logits, outs[1].cls_logits, strict=True))
