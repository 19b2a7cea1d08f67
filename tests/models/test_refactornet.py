"""RefactorNet encoders, losses (eqs. 1-5), Deep Baseline size, coupling samples and the linear probe."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from talbench.errors import ConfigError
from talbench.eval.probe import linear_probe
from talbench.models.refactornet import (
    DeepBaseline,
    RefactorNet,
    action_separation_loss,
    cooccurrence_similarity_loss,
    count_parameters,
    deep_baseline_params,
    kl_batch_moments,
    kl_per_sample,
    matched_deep_hidden_dim,
    refactoring_loss,
)
from talbench.runners.refactornet.coupling import action_snippet_labels, collect_coupling_samples, pair_video


def test_encoder_shapes_and_unshared_weights():
    torch.manual_seed(0)
    model = RefactorNet(in_dim=64, hidden_dim=32, num_layers=2)
    video = torch.randn(50, 64)
    action, cooc = model.decouple(video)
    assert action.shape == (50, 32) and cooc.shape == (50, 32)
    assert model(video).shape == (50, 64) and model.out_dim == 64
    assert torch.equal(model(video), torch.cat([action, cooc], dim=1))  # eq. 3
    assert model(torch.randn(3, 50, 64)).shape == (3, 50, 64)
    assert not torch.equal(model.phi_a.net[0].weight, model.phi_c.net[0].weight)
    assert count_parameters(model.phi_a) == count_parameters(model.phi_c)  # same structure
    only_action = RefactorNet(in_dim=64, hidden_dim=32, components="action")
    assert only_action(video).shape == (50, 32) and only_action.out_dim == 32
    with pytest.raises(ValueError, match="components"):
        RefactorNet(in_dim=64, hidden_dim=32, components="cooccurrence")


def test_action_loss_eq1_hand_made():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    c = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    loss = action_separation_loss(a, c)
    # cos = 1, -1 (clamped to 0), 1/sqrt(2)
    assert torch.allclose(loss, torch.tensor([1.0, 0.0, 1 / math.sqrt(2)]), atol=1e-6)


def test_cooccurrence_loss_eq2_hand_made():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    c = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert torch.allclose(cooccurrence_similarity_loss(a, c), torch.tensor([0.0, 1.0, 2.0]), atol=1e-6)


def test_kl_loss_eq4_per_sample_hand_made():
    # sample 0: mu (0, 1), sigma^2 (1, e): 0.5 * [(0 + 1 - 0 - 1) + (1 + e - 1 - 1)] = 0.5 (e - 1)
    # sample 1: mu (2, 0), sigma^2 (e^-2, 1): 0.5 * [(4 + e^-2 + 2 - 1) + 0] = 0.5 (5 + e^-2)
    mu = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    log_var = torch.tensor([[0.0, 1.0], [-2.0, 0.0]])
    expected = [0.5 * (math.e - 1), 0.5 * (5 + math.exp(-2))]
    assert kl_per_sample(mu, log_var).tolist() == pytest.approx(expected, abs=1e-6)
    assert float(kl_per_sample(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max()) == 0.0  # N(0, 1) itself


def test_cooccurrence_encoder_with_log_variance_samples_in_training_only():
    torch.manual_seed(0)
    model = RefactorNet(in_dim=8, hidden_dim=6, component_dim=4, cooccurrence_log_variance=True)
    x = torch.randn(5, 8)
    out, mu, log_var = model.phi_c.encode(x)
    assert out.shape == mu.shape == log_var.shape == (5, 4) and not torch.equal(out, mu)  # mu + sigma eps
    with torch.no_grad():
        trunk = torch.relu(model.phi_c.net[0](x))
        assert torch.allclose(mu, model.phi_c.net[2](trunk)) and torch.allclose(log_var, model.phi_c.log_var(trunk))
    model.eval()
    assert torch.equal(model.phi_c(x), model.phi_c.encode(x)[1])  # inference: F' = phi_A(f) (+) mu
    # phi_C = phi_A's layers + one parallel output layer (hidden -> component_dim)
    assert count_parameters(model.phi_c) == count_parameters(model.phi_a) + 6 * 4 + 4
    plain = RefactorNet(in_dim=8, hidden_dim=6, component_dim=4)
    assert plain.phi_c.log_var is None and count_parameters(plain.phi_c) == count_parameters(plain.phi_a)


def test_refactoring_loss_per_sample_kl():
    torch.manual_seed(0)
    model = RefactorNet(in_dim=8, hidden_dim=6, component_dim=4, cooccurrence_log_variance=True).eval()
    a, c = torch.randn(5, 8), torch.randn(5, 8)
    alpha = torch.full((5,), 0.7)
    total, parts = refactoring_loss(model, a, c, alpha, beta=0.01)
    with torch.no_grad():
        _, mu_a, lv_a = model.phi_c.encode(a)
        _, mu_c, lv_c = model.phi_c.encode(c)
        kl = kl_per_sample(torch.cat([mu_a, mu_c]), torch.cat([lv_a, lv_c])).mean()
        expected = (alpha * (action_separation_loss(model.phi_a(a), model.phi_a(c))
                             + cooccurrence_similarity_loss(mu_a, mu_c))).mean() + 0.01 * kl
    assert parts["L_KL"] == pytest.approx(float(kl), rel=1e-6)
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-6)


def test_kl_loss_eq4_batch_moments_hand_made():
    # dimension 0: values {-1, 1} -> mu 0, var 1 -> 0; dimension 1: {1, 3} -> mu 2, var 1 -> 0.5 * 4 = 2
    x = torch.tensor([[-1.0, 1.0], [1.0, 3.0]])
    assert float(kl_batch_moments(x, eps=0.0)) == pytest.approx(2.0, abs=1e-6)
    # dimension with var 0.25, mu 0: 0.5 * (0.25 - log 0.25 - 1)
    y = torch.tensor([[-0.5], [0.5]])
    assert float(kl_batch_moments(y, eps=0.0)) == pytest.approx(0.5 * (0.25 - math.log(0.25) - 1), abs=1e-6)
    with pytest.raises(ValueError):
        kl_batch_moments(torch.zeros(1, 4))


def test_refactoring_loss_eq5_weights_and_switches():
    torch.manual_seed(0)
    model = RefactorNet(in_dim=8, hidden_dim=6, component_dim=4)
    a, c = torch.randn(5, 8), torch.randn(5, 8)
    alpha = torch.linspace(0.5, 0.9, 5)
    total, parts = refactoring_loss(model, a, c, alpha, beta=0.001)
    fa_a, fc_a = model.decouple(a)
    fa_c, fc_c = model.decouple(c)
    expected = (alpha * (action_separation_loss(fa_a, fa_c) + cooccurrence_similarity_loss(fc_a, fc_c))).mean()
    expected = expected + 0.001 * kl_batch_moments(torch.cat([fc_a, fc_c]))
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert set(parts) == {"L_A", "L_C", "L_KL", "L_R"}
    only_kl, parts_kl = refactoring_loss(model, a, c, alpha, beta=0.5, use_la_lc=False)
    assert set(parts_kl) == {"L_KL", "L_R"}
    assert float(only_kl.detach()) == pytest.approx(0.5 * float(kl_batch_moments(torch.cat([fc_a, fc_c])).detach()), rel=1e-6)
    no_kl, parts_no = refactoring_loss(model, a, c, alpha, beta=0.001, use_kl=False)
    assert "L_KL" not in parts_no and float(no_kl.detach()) < float(total.detach()) + 1e-9


@pytest.mark.parametrize("in_dim,hidden,layers", [(2048, 512, 2), (256, 96, 3), (64, 32, 2)])
def test_deep_baseline_matches_encoder_size_and_depth(in_dim, hidden, layers):
    model = RefactorNet(in_dim=in_dim, hidden_dim=hidden, num_layers=layers)
    target = count_parameters(model)
    width = matched_deep_hidden_dim(target, in_dim, model.out_dim, layers, kernel_size=3)
    deep = DeepBaseline(in_dim, width, model.out_dim, num_layers=layers, kernel_size=3)
    assert count_parameters(deep) == deep_baseline_params(in_dim, width, model.out_dim, layers, 3)
    # equal up to one integer step of the width (below 0.5 % at the paper's D = 2048)
    step = deep_baseline_params(in_dim, width + 1, model.out_dim, layers, 3) - count_parameters(deep)
    assert abs(count_parameters(deep) - target) <= step / 2
    if in_dim >= 1024:
        assert abs(count_parameters(deep) - target) / target < 0.005
    assert sum(isinstance(m, torch.nn.Conv1d) for m in deep.modules()) == layers
    assert sum(isinstance(m, torch.nn.Linear) for m in model.phi_a.modules()) == layers
    x = torch.randn(17, in_dim)
    assert deep(x).shape == (17, model.out_dim)
    assert deep(x.unsqueeze(0)).shape == (1, 17, model.out_dim)


def test_action_snippet_labels():
    centers = np.array([0.5, 1.5, 2.5, 3.5, 4.5])
    instances = pd.DataFrame({"start": [1.0, 3.0], "end": [2.6, 4.0], "label_id": [2, 5]})
    assert action_snippet_labels(centers, instances).tolist() == [-1, 2, 2, 5, -1]
    assert action_snippet_labels(centers, instances.iloc[0:0]).tolist() == [-1] * 5


def test_pair_video_tiny_example():
    # snippets 0, 1 are action; 2 resembles 0, 3 resembles 1 weakly, 4 is orthogonal to both
    features = np.array(
        [[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0.2, 0.5, 0.8], [0, 0, 1]], dtype=np.float32
    )
    labels = np.array([3, 3, -1, -1, -1])
    a_rows, c_rows, sim = pair_video(features, labels, min_similarity=0.3, top_k=10)
    assert c_rows.tolist() == [2, 3] and a_rows.tolist() == [0, 1]
    assert sim[0] == pytest.approx(0.9 / math.sqrt(0.82), abs=1e-6)
    assert sim[1] == pytest.approx(0.5 / math.sqrt(0.93), abs=1e-6)
    a1, c1, _ = pair_video(features, labels, min_similarity=0.3, top_k=1)
    assert c1.tolist() == [2] and a1.tolist() == [0]
    # chunking over action samples gives the same pairs
    a2, c2, s2 = pair_video(features, labels, min_similarity=0.3, top_k=10, chunk_size=1)
    assert a2.tolist() == a_rows.tolist() and c2.tolist() == c_rows.tolist() and np.allclose(s2, sim)


def test_collect_coupling_samples_across_videos():
    rng = np.random.default_rng(0)
    videos = []
    for k in range(3):
        feats = rng.normal(size=(20, 6)).astype(np.float32)
        feats[10:] = feats[:10] + 0.05 * rng.normal(size=(10, 6))  # non-action copies of action snippets
        centers = np.arange(20) + 0.5
        inst = pd.DataFrame({"start": [0.0], "end": [10.0], "label_id": [k]})
        videos.append((f"v{k}", feats, centers, inst))
    samples = collect_coupling_samples(videos, min_similarity=0.9, top_k=4)
    assert len(samples) == 12 and samples.num_action_samples == 30
    assert sorted(set(samples.video_id)) == ["v0", "v1", "v2"]
    assert (samples.similarity >= 0.9).all()
    assert samples.label_id.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    a = samples.features[samples.action_index]
    c = samples.features[samples.coupling_index]
    cos = (a * c).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(c, axis=1)
    assert np.allclose(cos, samples.similarity, atol=1e-5)
    again = collect_coupling_samples(videos, min_similarity=0.9, top_k=4)
    assert np.array_equal(again.features, samples.features) and np.array_equal(again.similarity, samples.similarity)
    with pytest.raises(ConfigError, match="min_similarity"):
        collect_coupling_samples(videos, min_similarity=1.01, top_k=4)


def test_linear_probe_separable_and_random():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=600)
    centres = np.array([[4, 0, 0], [0, 4, 0], [0, 0, 4]], dtype=float)
    x = centres[labels] + rng.normal(size=(600, 3))
    noise = rng.normal(size=(600, 3))
    good = linear_probe(x[:400], labels[:400], x[400:], labels[400:])
    assert good.accuracy > 0.95 and good.num_classes == 3 and good.num_test == 200
    bad = linear_probe(noise[:400], labels[:400], noise[400:], labels[400:])
    assert bad.accuracy < 0.5
    with pytest.raises(ValueError):
        linear_probe(x[:10, :2], labels[:10], x[:10], labels[:10])


def test_parameter_counts_at_the_papers_dimensions():
    """D = 2048 (RGB & Flow), 20 classes, the paper profile's encoder width 1024 (docs/refactornet.md)."""
    from talbench.benchmark.rows import row_config
    from talbench.benchmark.schema import load_benchmark
    from talbench.config import load_params
    from talbench.models.refactornet import parameter_counts

    def counts(table: str, row: str) -> dict[str, int]:
        bench = load_benchmark(table)
        return parameter_counts(row_config(load_params(), "paper", bench, bench.row(row), table), 2048, 20)

    detector = 96_569_387  # RoI pooling, three head MLPs of 2 x 2048 on 4 x 2048 / 8 x 2048 inputs
    assert counts("refactornet.table2", "Baseline") == {"refactoring": 0, "detector": detector, "total": detector}
    refactor = counts("refactornet.table2", "Baseline + RefactorNet")
    assert refactor == {"refactoring": 7_345_152, "detector": detector, "total": 7_345_152 + detector}
    deep = counts("refactornet.table2", "Deep Baseline")
    assert deep["refactoring"] == 7_350_870 and deep["detector"] == detector  # within 0.08 % of RefactorNet's
    # without L_KL phi_C has no sigma head (1024 x 1024 + 1024 fewer): L_A + L_C and the control row
    assert counts("refactornet.table4", "L_A + L_C")["refactoring"] == 6_295_552
    assert counts("refactornet.table2", "Baseline + encoders, L_D only")["refactoring"] == 6_295_552
    assert counts("refactornet.table5", "Only action component")["detector"] == 24_167_467  # built at D/2
