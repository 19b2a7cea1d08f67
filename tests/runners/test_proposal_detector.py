"""Snippet pooling, proposal regions, P-GCN label assignment and sampling, inference decoding and fusion."""

import numpy as np
import pytest

from talbench.runners.common.snippets import pool_snippets
from talbench.runners.proposal_detector.infer import (
    ProposalScores,
    combine_branches,
    decode_boundaries,
    fuse_streams,
    labelled_proposals,
)
from talbench.runners.proposal_detector.regions import extended_regions, region_index
from talbench.runners.proposal_detector.sampling import (
    BACKGROUND,
    FOREGROUND,
    IGNORED,
    INCOMPLETE,
    assign_labels,
    sample_video,
    training_targets,
)

SAMPLING = {"fg_iou": 0.7, "incomplete_iou": 0.3, "incomplete_overlap": 0.7, "bg_iou": 0.01,
            "bg_min_coverage": 0.01, "fg_per_video": 1, "incomplete_per_video": 6, "bg_per_video": 1,
            "incomplete_cls_per_video": 1}


def test_pool_snippets_averages_groups_of_four():
    feats = np.arange(10, dtype=np.float32)[:, None].repeat(2, axis=1)
    centers = np.arange(10, dtype=np.float64)
    pooled, c = pool_snippets(feats, centers, 4)
    np.testing.assert_allclose(pooled[:, 0], [1.5, 5.5, 8.5])  # last group holds cells 8 and 9 only
    np.testing.assert_allclose(c, [1.5, 5.5, 8.5])


def test_regions_and_indices():
    regions = extended_regions(np.array([[10.0, 14.0]]))
    np.testing.assert_allclose(regions["left"], [[8.0, 10.0]])
    np.testing.assert_allclose(regions["right"], [[14.0, 16.0]])
    centers = np.arange(0.5, 20.0, 1.0)  # 0.5, 1.5, ...
    idx, mask = region_index(centers, np.array([[10.0, 14.0], [3.1, 3.2], [0.0, 20.0]]), max_snippets=8)
    assert idx.shape == (3, 8)
    np.testing.assert_array_equal(idx[0, mask[0]], [10, 11, 12, 13])
    np.testing.assert_array_equal(idx[1, mask[1]], [3])  # no centre inside: the nearest snippet
    np.testing.assert_array_equal(idx[2, mask[2]], [0, 2, 5, 7, 10, 12, 15, 17])  # 20 snippets sampled to 8


def test_label_assignment_hand_example():
    gt = np.array([[10.0, 20.0], [40.0, 50.0]])
    labels = np.array([3, 1])
    props = np.array([
        [10.5, 20.0],  # tIoU 0.95 -> foreground, class 3
        [12.0, 14.0],  # inside gt 0: tIoU 0.2, overlap 1.0 -> incomplete, class 3
        [60.0, 80.0],  # no overlap, 20% of the video -> background
        [15.0, 25.0],  # tIoU 0.33 -> ignored
        [70.0, 70.5],  # no overlap but shorter than 1% of the video -> ignored
    ])
    a = assign_labels(props, gt, labels, duration=100.0, sampling=SAMPLING)
    np.testing.assert_array_equal(a.kind, [FOREGROUND, INCOMPLETE, BACKGROUND, IGNORED, IGNORED,
                                           FOREGROUND, FOREGROUND])  # ground truth appended as foreground
    np.testing.assert_array_equal(a.label[:3], [4, 4, 0])
    np.testing.assert_allclose(a.reg_target[0], [(15 - 15.25) / 9.5, np.log(10 / 9.5)], rtol=1e-6)
    np.testing.assert_allclose(a.reg_target[5], [0.0, 0.0], atol=1e-7)
    assert (a.reg_target[1:5] == 0).all()


def test_sampling_ratio_and_targets():
    gt = np.array([[10.0, 20.0]])
    props = np.array([[10.5, 20.0], [12.0, 14.0], [13.0, 15.0], [60.0, 80.0], [70.0, 90.0]])
    a = assign_labels(props, gt, np.array([0]), 100.0, SAMPLING)
    picked = sample_video(a, SAMPLING, np.random.default_rng(0))
    assert len(picked) == 8
    kinds = a.kind[picked]
    assert (kinds == FOREGROUND).sum() == 1 and (kinds == INCOMPLETE).sum() == 6 and (kinds == BACKGROUND).sum() == 1
    t = training_targets(a, picked, incomplete_cls=1)
    # classification: fg (class 1), bg (0) and ONE incomplete promoted to a positive; others ignored (-1)
    assert sorted(t["cls_label"].tolist()) == [-1] * 5 + [0, 1, 1]
    assert (t["comp_class"][kinds == BACKGROUND] == -1).all() and (t["comp_class"][kinds != BACKGROUND] == 0).all()
    assert t["reg_mask"].sum() == 1


def test_sampling_without_foreground_fills_with_other_types():
    a = assign_labels(np.array([[60.0, 80.0], [70.0, 90.0]]), np.zeros((0, 2)), np.zeros(0, np.int64), 100.0, SAMPLING)
    picked = sample_video(a, SAMPLING, np.random.default_rng(0))
    assert len(picked) == 8 and (a.kind[picked] == BACKGROUND).all()


def test_decode_inverts_targets():
    seg = np.array([[10.0, 14.0]])
    np.testing.assert_allclose(decode_boundaries(seg, np.array([[0.25, np.log(2.0)]])), [[9.0, 17.0]])


def _scores(cls, comp, bounds):
    return {"v": ProposalScores(np.array([[0.0, 1.0]]), np.array([cls]), np.array([comp]), np.array([bounds]))}


def test_fusion_five_to_six_on_scores_and_boundaries():
    rgb = _scores([0.5, 0.1], [0.0, 0.0], [0.0, 10.0])
    flow = _scores([0.2, 0.4], [np.log(2.0), 0.0], [1.1, 12.2])
    fused = fuse_streams([rgb, flow], [5, 6])["v"]
    # eq. 16 per stream: rgb [0.5, 0.1], flow [0.4, 0.4]; weighted 5:6
    np.testing.assert_allclose(fused.scores, [[(5 * 0.5 + 6 * 0.4) / 11, (5 * 0.1 + 6 * 0.4) / 11]])
    np.testing.assert_allclose(fused.boundaries, [[6 * 1.1 / 11, (5 * 10 + 6 * 12.2) / 11]])


def test_combine_branches_takes_classification_from_one_and_localization_from_other():
    a = _scores([0.9, 0.1], [0.0, 0.0], [0.0, 1.0])
    b = _scores([0.1, 0.9], [1.0, 1.0], [2.0, 3.0])
    mixed = combine_branches(a, b)["v"]
    np.testing.assert_allclose(mixed.cls_prob, [[0.9, 0.1]])
    np.testing.assert_allclose(mixed.boundaries, [[2.0, 3.0]])
    assert mixed.scores[0, 0] == pytest.approx(0.9 * np.e)


def test_labelled_proposals_take_the_top_class_and_regressed_boundaries():
    outputs = {
        "v1": ProposalScores(np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[0.2, 0.8], [0.9, 0.1]]),
                             np.zeros((2, 2)), np.array([[0.1, 1.1], [2.0, 3.5]])),
        "v2": ProposalScores(np.array([[5.0, 6.0]]), np.array([[0.4, 0.6]]), np.zeros((1, 2)),
                             np.array([[4.9, 6.2]])),
    }
    table = labelled_proposals(outputs, ["a", "b"])
    assert table["video_id"].tolist() == ["v1", "v1", "v2"] and table["label"].tolist() == ["b", "a", "b"]
    np.testing.assert_allclose(table[["start", "end"]].to_numpy(), [[0.1, 1.1], [2.0, 3.5], [4.9, 6.2]])
    assert labelled_proposals({}, ["a"]).empty


@pytest.mark.parametrize("repeats", [1, 3])
def test_an_epoch_visits_every_video_epoch_repeats_times(monkeypatch, repeats):
    """P-GCN / ContextLoc: an epoch is `training_epoch_multiplier` passes over the videos in one shuffled list,
    cut into batches of `videos_per_batch` videos; one pass (smoke) keeps the earlier order exactly."""
    import torch

    from talbench.models.proposal_detector import IdentityEncoder, LossWeights, ProposalDetector
    from talbench.runners.common.snippets import VideoSnippets
    from talbench.runners.proposal_detector import train as train_module

    torch.manual_seed(0)
    videos = {}
    for k in range(5):
        feats = torch.randn(20, 8)
        videos[f"v{k}"] = VideoSnippets(feats, np.arange(20) + 0.5, feats.amax(dim=0))
    proposals = np.array([[1.0, 5.0], [1.5, 4.0], [10.0, 18.0], [0.5, 19.0]])
    assigned = {v: assign_labels(proposals, np.array([[1.0, 5.0]]), np.array([0]), 20.0, SAMPLING) for v in videos}
    names = {id(v): k for k, v in videos.items()}
    visits: list[list[str]] = []
    build = train_module.build_batch
    monkeypatch.setattr(train_module, "build_batch", lambda vids, segs, m: visits.append(
        [names[id(v)] for v in vids]) or build(vids, segs, m))
    det = {"epochs": 1, "epoch_repeats": repeats, "videos_per_batch": 4, "lr": 0.01, "momentum": 0.9,
           "weight_decay": 0.0, "lr_steps": [], "clip_grad_norm": None, "ema_decay": None, "max_snippets": 64,
           "sampling": SAMPLING}
    model = ProposalDetector(IdentityEncoder(), 8, 1, 8, roi_bins=4)
    train_module.train_detector(model, videos, assigned, {"detector": det}, 7, LossWeights(0.5, 0.5))
    assert [len(b) for b in visits] == [4] * (5 * repeats // 4) + ([5 * repeats % 4] if 5 * repeats % 4 else [])
    flat = [v for b in visits for v in b]
    assert sorted(flat) == sorted(list(videos) * repeats)
    if repeats == 1:  # the order of the single-pass schedule
        assert flat == [f"v{i}" for i in np.random.default_rng([7, 0]).permutation(5)]
