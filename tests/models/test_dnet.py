"""D-Net (eqs. 1-5), A-Net (eqs. 6-11), heads and loss (eq. 15): shapes, zero-code decoding, losses and
parameter counts at the paper's dimensions (D = 1024 per stream, THUMOS14's 20 classes)."""

import pytest
import torch

from talbench.config import load_params, resolve
from talbench.models.anet import ContextAggregation
from talbench.models.dnet import DisentanglementNetwork, reconstruction_loss
from talbench.models.proposal_detector import LossWeights, build_detector, detection_loss, parameter_counts


def _cfg(**detector):
    cfg = resolve(load_params(), None)
    cfg["detector"].update(detector)
    return cfg


@pytest.mark.parametrize(
    ("encoder", "paper_total_m"), [("none", 10.1), ("mlp1", 11.7), ("mlp2", 11.7), ("dnet", 11.7)]
)
def test_parameter_counts_at_paper_dimensions(encoder, paper_total_m):
    counts = parameter_counts(_cfg(encoder=encoder), 1024, 20)
    # Table 1: 10.1M baseline, 11.7M with D-Net or the MLPs; our heads give 10.54M / 12.11M (within 5%).
    assert counts["total"] / 1e6 == pytest.approx(paper_total_m, rel=0.05)
    if encoder != "none":
        # sec. 4.1: "the disentanglement network only has 1.6M parameters" (D_h = 256: 6 x 1024 x 256 + biases)
        assert counts["encoder"] / 1e6 == pytest.approx(1.6, rel=0.02)


def test_dnet_exact_count_and_hidden_size():
    net = DisentanglementNetwork(1024, 256)
    assert sum(p.numel() for p in net.parameters()) == 3 * (1024 * 256 + 256) + 768 * 1024 + 1024


def test_zero_code_decoding_matches_equations_4_and_5():
    torch.manual_seed(0)
    net = DisentanglementNetwork(16, 4)
    x = torch.randn(5, 16)
    out = net(x)
    h = {p: net.encoders[p](x) for p in ("cls", "com", "loc")}
    zero = torch.zeros(5, 4)
    w = net.decoder
    assert torch.allclose(out["cls"], torch.relu(w(torch.cat([h["cls"], h["com"], zero], -1))))
    assert torch.allclose(out["loc"], torch.relu(w(torch.cat([zero, h["com"], h["loc"]], -1))))
    assert torch.allclose(out["rec"], torch.relu(w(torch.cat([h["cls"], h["com"], h["loc"]], -1))))
    assert not torch.allclose(out["cls"], out["loc"])


def test_dnet_variants_only_common_and_without_common():
    only = DisentanglementNetwork(16, 4, parts=["com"])
    out = only(torch.randn(3, 16))
    assert torch.equal(out["cls"], out["loc"])  # only the common code is left for both tasks
    wo = DisentanglementNetwork(16, 4, parts=["cls", "loc"])
    assert wo.decoder.in_features == 8
    with pytest.raises(ValueError, match="dnet.parts"):
        DisentanglementNetwork(16, 4, parts=["shared"])


def test_random_removed_code_differs_from_zeros():
    torch.manual_seed(0)
    zeros = DisentanglementNetwork(16, 4)
    rand = DisentanglementNetwork(16, 4, removed_code="random")
    rand.load_state_dict(zeros.state_dict())
    x = torch.randn(6, 16)
    assert torch.equal(zeros(x)["rec"], rand(x)["rec"])
    assert not torch.allclose(zeros(x)["cls"], rand(x)["cls"])


def test_reconstruction_loss_eq3_hand_example():
    y = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])
    y_hat = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])  # the third slot is padding
    # MSE over the 2 valid snippets: (0 + (0 + 1) / 2) / 2 = 0.25; cosine: both parallel -> 0
    assert reconstruction_loss(y, y_hat, mask).item() == pytest.approx(0.25)
    assert reconstruction_loss(y, y, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_anet_output_and_padding_invariance():
    torch.manual_seed(0)
    anet = ContextAggregation(8)
    feats, glob = torch.randn(1, 3, 8), torch.randn(1, 8)
    out = anet(feats, torch.ones(1, 3, dtype=torch.bool), glob)
    assert out.shape == (1, 8)
    padded = torch.cat([feats, 100 * torch.randn(1, 2, 8)], dim=1)
    mask = torch.tensor([[True, True, True, False, False]])
    assert torch.allclose(anet(padded, mask, glob), out, atol=1e-6)
    # eq. 10: the global half depends on the video feature, the local half (eq. 8) does not
    out2 = anet(feats, torch.ones(1, 3, dtype=torch.bool), glob + 1)
    assert torch.allclose(out2[:, :4], out[:, :4]) and not torch.allclose(out2[:, 4:], out[:, 4:])


def _batch(n=4, k=3, d=16):
    torch.manual_seed(1)
    b = {"video_global": torch.randn(n, d)}
    for r in ("left", "center", "right"):
        b[r], b[f"{r}_mask"] = torch.rand(n, k, d), torch.ones(n, k, dtype=torch.bool)
    return b


def test_detector_shapes_and_regrouping():
    cfg = _cfg(encoder="dnet", dropout=0.0)
    model = build_detector(cfg, 16, 5).eval()
    out = model(_batch())
    assert out["cls_logits"].shape == (4, 6) and out["completeness"].shape == (4, 5)
    assert out["regression"].shape == (4, 2) and out["rec_loss"].ndim == 0
    swapped = model(_batch(), cls_feature="F_loc", loc_feature="F_cls")
    assert not torch.allclose(swapped["cls_logits"], out["cls_logits"])
    base = build_detector(_cfg(encoder="none"), 16, 5)
    assert "rec_loss" not in base(_batch())


def test_roi_pool_detector_reads_the_proposal_bins_for_classification():
    model = build_detector(_cfg(encoder="none", aggregation="roi_pool", roi_bins=8, dropout=0.0), 16, 5).eval()
    batch = _batch()
    out = model(batch)
    assert out["cls_logits"].shape == (4, 6) and out["regression"].shape == (4, 2)
    # MUSES: classification on the proposal's 4 bins (4 x 16), completeness/regression on all 8 (8 x 16)
    assert model.cls_mlp.net[0].in_features == 64 and model.loc_mlp.net[0].in_features == 128
    assert not hasattr(model, "anet_cls")
    changed = dict(batch, left=batch["left"] + 1.0)  # the context regions do not touch classification
    assert torch.equal(model(changed)["cls_logits"], out["cls_logits"])
    assert not torch.equal(model(changed)["completeness"], out["completeness"])
    with pytest.raises(ValueError, match="multiple of 4"):
        build_detector(_cfg(aggregation="roi_pool", roi_bins=6), 16, 5)
    with pytest.raises(ValueError, match="aggregation"):
        build_detector(_cfg(aggregation="mean"), 16, 5)


def test_loss_hinge_excludes_background_and_weights():
    out = {
        "cls_logits": torch.zeros(3, 3),
        "completeness": torch.tensor([[2.0, 0.0], [0.5, 0.0], [-50.0, -50.0]]),
        "regression": torch.zeros(3, 2),
    }
    targets = {
        "cls_label": torch.tensor([1, -1, 0]),
        "comp_class": torch.tensor([0, 0, -1]),  # the background proposal has no completeness target
        "comp_sign": torch.tensor([1.0, -1.0, -1.0]),
        "reg_target": torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]),
        "reg_mask": torch.tensor([True, False, False]),
    }
    terms = detection_loss(out, targets, LossWeights(regression=0.2, completeness=0.6))
    # hinge: complete z=2 -> 0; incomplete z=0.5 -> 1.5; mean 0.75 (background's -50 would add 51)
    assert terms.com.item() == pytest.approx(0.75)
    assert terms.cls.item() == pytest.approx(torch.log(torch.tensor(3.0)).item())  # uniform logits, 2 samples
    assert terms.reg.item() == pytest.approx(0.25)  # smooth L1 (beta 1): 0.5 x 1^2 averaged over 2 coords
    assert terms.total.item() == pytest.approx(terms.cls.item() + 0.2 * 0.25 + 0.6 * 0.75)
