"""Full-sequence data of the one-stage detectors: grid coordinates, the training crop (truncation rule), padded
batches and inference padding, against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talbench.runners.one_stage.data import (
    GridTimes,
    VideoSequence,
    crop_for_training,
    inference_batches,
    inference_length,
    load_sequences,
    padded_batch,
)

THUMOS = GridTimes(fps=30.0, stride=4, clip_frames=16)


def video(length: int, segments, labels=None) -> VideoSequence:
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    labels = np.arange(len(segments)) if labels is None else np.asarray(labels)
    features = torch.arange(length, dtype=torch.float32).repeat(3, 1)  # (3, T): column i holds i
    return VideoSequence("v", features, segments, labels, THUMOS, THUMOS.to_seconds(length - 1))


def test_grid_coordinates_are_the_official_ones():
    """Cell i is centred at (4 i + 8) / 30 s; a time t maps to (30 t - 8) / 4 (ActionFormer's thumos14.py)."""
    assert THUMOS.to_grid([8 / 30, 1.0]).tolist() == pytest.approx([0.0, 5.5])
    assert THUMOS.to_seconds([0.0, 5.5]).tolist() == pytest.approx([8 / 30, 1.0])
    assert THUMOS.offset == 2.0  # half a 16-frame clip in cells of 4 frames


def test_load_sequences_converts_the_ground_truth(tiny_synthetic):
    _, _, dataset, _ = tiny_synthetic
    vid = dataset.video_ids("train")[0]
    (seq,) = load_sequences(dataset, [vid], "train", "both")
    gt = dataset.instances("train")
    gt = gt[gt["video_id"] == vid]
    assert seq.features.shape == (dataset.stream_dim("both"), dataset.num_snippets(vid))
    centres = dataset.snippet_centers(vid)
    # grid positions are cell indices: the grid value of a cell's centre time is its index
    assert seq.times.to_grid(centres).tolist() == pytest.approx(list(range(len(centres))))
    np.testing.assert_allclose(seq.segments, (30.0 * gt[["start", "end"]].to_numpy() - 8.0) / 4.0)
    assert seq.labels.tolist() == gt["label_id"].tolist()


def test_short_video_without_crop_ratio_is_untouched():
    v = video(50, [[10, 20]])
    crop = crop_for_training(v, 64, 0.5, None, np.random.default_rng(0))
    assert crop.features is v.features and crop.segments is v.segments


def test_long_video_is_cut_to_max_seq_len_keeping_actions_half_inside():
    """Window [st, st + 20) widened by the 2-cell offset: (st - 2, st + 22). An action keeps at least half its
    length inside or is dropped; the kept ones are clipped to the widened window and shifted by st."""
    v = video(100, [[0, 10], [30, 40], [45, 49]], labels=[3, 4, 5])
    for seed in range(20):
        rng = np.random.default_rng(seed)
        crop = crop_for_training(v, 20, 0.5, None, rng)
        st = int(crop.features[0, 0])
        assert crop.features.shape == (3, 20) and crop.features[0].tolist() == list(range(st, st + 20))
        expected = []
        for (s, e), label in zip(v.segments, v.labels, strict=True):
            left, right = max(st - 2, s), min(st + 22, e)
            if max(right - left, 0) / (e - s) >= 0.5:
                expected.append((left - st, right - st, label))
        assert expected, "a window with an action is drawn"
        assert crop.segments.tolist() == [[a, b] for a, b, _ in expected]
        assert crop.labels.tolist() == [c for _, _, c in expected]


def test_crop_ratio_shortens_short_videos_too():
    """crop_ratio [0.9, 1.0] on 50 cells: windows of round(45)..50 cells; 50 returns the video as it is."""
    v = video(50, [[5, 45]])
    lengths = {crop_for_training(v, 64, 0.5, [0.9, 1.0], np.random.default_rng(s)).features.shape[-1]
               for s in range(60)}
    assert lengths <= set(range(45, 51)) and len(lengths) > 3


def test_padded_batch_and_mask():
    x, mask = padded_batch([torch.ones(2, 3), 2 * torch.ones(2, 5)], 8)
    assert x.shape == (2, 2, 8) and mask.shape == (2, 1, 8) and mask.dtype == torch.bool
    assert mask[0, 0].tolist() == [True] * 3 + [False] * 5
    assert x[0, :, 3:].abs().sum() == 0 and x[1, :, :5].eq(2).all()
    with pytest.raises(ValueError, match="does not fit"):
        padded_batch([torch.ones(2, 9)], 8)


def test_inference_padding_is_the_official_one():
    """Pad to max_seq_len when shorter, else to the next multiple of the largest stride."""
    assert inference_length(100, 256, 32) == 256
    assert inference_length(256, 256, 32) == 256
    assert inference_length(257, 256, 32) == 288
    videos = [video(n, [[1, 2]]) for n in (100, 300, 120, 290, 50)]
    batches = list(inference_batches(videos, 256, 32, batch_size=2))
    assert [[v.length for v in group] for group, _, _ in batches] == [[100, 120], [50], [300, 290]]
    for group, x, mask in batches:
        assert x.shape[-1] == inference_length(group[0].length, 256, 32)
        assert mask[:, 0].sum(-1).tolist() == [v.length for v in group]
