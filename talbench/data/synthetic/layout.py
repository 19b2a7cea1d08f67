"""The latent timeline of one video: its length, its action instances with their phases, and the
regions where a class's context is visible (docs/synthetic.md, "Generative story", steps 1-4).

Times are seconds on the THUMOS14 I3D grid: a video of ``T`` cells lasts
``(stride * (T - 1) + clip) / fps`` and the centre of cell ``i`` is ``(i * stride + clip / 2) / fps``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talbench.data.synthetic.config import SynthConfig
from talbench.data.synthetic.taxonomy import Taxonomy


@dataclass(frozen=True)
class VideoLayout:
    num_cells: int
    duration: float  # seconds
    classes: np.ndarray  # (V,) classes present in the video
    start: np.ndarray  # (J,) instance start, seconds (sorted)
    end: np.ndarray  # (J,)
    label: np.ndarray  # (J,) class id
    bounds: np.ndarray  # (J, 5) phase boundaries: start, onset|body, body|key, key|offset, end
    gain: np.ndarray  # (J,) action amplitude of the instance
    setting: int  # the class whose context the video shows (its own class with probability context.reliability)
    region_start: np.ndarray  # (R,) where the context is visible: instances with margins, then coupling stretches
    region_end: np.ndarray  # (R,)

    def centers(self, cfg: SynthConfig) -> np.ndarray:
        return (np.arange(self.num_cells) * cfg.feature_stride + cfg.clip_frames / 2) / cfg.fps


def cells_to_seconds(num_cells: int, cfg: SynthConfig) -> float:
    return (cfg.feature_stride * (num_cells - 1) + cfg.clip_frames) / cfg.fps


def seconds_to_cells(seconds: float, cfg: SynthConfig) -> int:
    return round((seconds * cfg.fps - cfg.clip_frames) / cfg.feature_stride) + 1


def sample_durations(cfg: SynthConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Truncated log-logistic durations: ``log d = log m + s * logit(u)``, ``u ~ U(F(log min), F(log max))``."""
    d = cfg.duration
    loc, scale = np.log(d.median_s), d.log_scale
    lo, hi = (1 / (1 + np.exp(-(np.log([d.min_s, d.max_s]) - loc) / scale))).tolist()
    u = rng.uniform(lo, hi, size=n)
    return np.exp(loc + scale * np.log(u / (1 - u)))


def sample_layout(cfg: SynthConfig, taxonomy: Taxonomy, rng: np.random.Generator) -> VideoLayout:
    num_c = cfg.num_classes
    # 1. Classes of the video: one, or with second_class_prob two of the same family (as Diving/CliffDiving).
    #    Its setting (whose class context it shows): its own class with probability context.reliability, else
    #    another class of the family (a venue shared by several classes: the track of HighJump and LongJump).
    primary = int(rng.integers(num_c))
    siblings = np.flatnonzero(taxonomy.family_of_class == taxonomy.family_of_class[primary])
    siblings = siblings[siblings != primary]
    classes = np.array([primary])
    if siblings.size and rng.uniform() < cfg.second_class_prob:
        classes = np.array([primary, int(rng.choice(siblings))])
    setting = primary
    if siblings.size and rng.uniform() >= cfg.context.reliability:
        setting = int(rng.choice(siblings))

    # 2. Instance count (1 + negative binomial with the configured mean) and durations.
    extra_mean = cfg.instances_per_video - 1
    count = 1
    if extra_mean > 0:
        k = cfg.instances_dispersion
        count += int(rng.negative_binomial(k, k / (k + extra_mean)))
    durations = sample_durations(cfg, rng, count)

    # 3. Video length so that actions fill the video's foreground share (clipped to the allowed cells).
    share = float(np.clip(cfg.foreground_fraction * np.exp(cfg.foreground_spread * rng.standard_normal()), 0.02, 0.9))
    num_cells = int(np.clip(seconds_to_cells(durations.sum() / share, cfg), cfg.video_cells.min, cfg.video_cells.max))
    duration = cells_to_seconds(num_cells, cfg)
    keep = max(1, int(np.searchsorted(np.cumsum(durations), share * duration, side="right")))
    durations = np.minimum(durations[:keep], share * duration)
    gaps = rng.dirichlet(np.ones(durations.size + 1)) * (duration - durations.sum())
    start = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    # Annotations are written with 2 decimals (THUMOS14 uses 1): round here so latents match them exactly.
    end = np.minimum(np.round(start + durations, 2), np.floor(duration * 100) / 100)
    start = np.round(start, 2)
    durations = end - start
    # every class of the video has an instance when there are enough of them
    codes = rng.integers(classes.size, size=durations.size)
    if durations.size >= classes.size:
        codes[rng.permutation(durations.size)[: classes.size]] = np.arange(classes.size)
    label = classes[codes]
    classes = classes[np.unique(codes)]

    # 4. Phases: onset | body | key | offset, fractions jittered per instance.
    p = cfg.phases
    frac = np.array([p.onset, p.key, p.offset]) * (1 + p.jitter * rng.uniform(-1, 1, size=(durations.size, 3)))
    onset_end = start + frac[:, 0] * durations
    key_end = end - frac[:, 2] * durations
    key_start = key_end - frac[:, 1] * durations
    bounds = np.stack([start, onset_end, key_start, key_end, end], axis=1)
    gain = np.exp(cfg.instance_gain_jitter * rng.standard_normal(durations.size))

    # 5. Context regions: each instance with its margins, then "coupling" stretches inside the free gaps.
    margin = cfg.context.margin_s
    free_lo = np.concatenate([[0.0], end + margin])
    free_hi = np.concatenate([start - margin, [duration]])
    free = np.maximum(free_hi - free_lo, 0.0)
    length = free * np.minimum(1.0, 2 * cfg.context.coupling_fraction * rng.uniform(size=free.size))
    c_start = free_lo + (free - length) * rng.uniform(size=free.size)
    has = length > 0
    region_start = np.concatenate([np.maximum(start - margin, 0), c_start[has]])
    region_end = np.concatenate([np.minimum(end + margin, duration), (c_start + length)[has]])

    return VideoLayout(
        num_cells=num_cells, duration=duration, classes=classes, start=start, end=end, label=label,
        bounds=bounds, gain=gain, setting=setting, region_start=region_start, region_end=region_end,
    )


def hard_latents(layout: VideoLayout, cfg: SynthConfig) -> dict[str, np.ndarray]:
    """Per-cell latent labels of the sidecar: ``phase`` (index in PHASES), ``context`` (class or -1; -1 inside
    the instances when ``context.within_instances`` is false), ``instance`` (index into the video's annotations
    or -1), evaluated at each cell's centre time."""
    t = layout.centers(cfg)
    j = np.searchsorted(layout.start, t, side="right") - 1
    inside = (j >= 0) & (t < layout.end[np.maximum(j, 0)])
    instance = np.where(inside, j, -1)
    b = layout.bounds[np.maximum(j, 0)]
    phase = np.select(
        [~inside, t < b[:, 1], t < b[:, 2], t < b[:, 3]], [0, 1, 2, 3], default=4
    ).astype(np.int8)
    member = (t[:, None] >= layout.region_start[None]) & (t[:, None] < layout.region_end[None])
    visible = member.any(axis=1) & (cfg.context.within_instances | ~inside)
    context = np.where(visible, layout.setting, -1)
    return {"phase": phase, "context": context.astype(np.int16), "instance": instance.astype(np.int32)}
