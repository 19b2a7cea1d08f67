"""Validated knobs of the synthetic benchmark (the ``synth:`` section of ``params.yaml``).

Every field is documented in docs/synthetic.md; an unknown or out-of-range key is a
:class:`talbench.config.ConfigError` naming ``synth.<key>``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from talbench.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSizes(_Strict):
    train: int = Field(ge=1, description="THUMOS 'Validation' videos (the training set)")
    test: int = Field(ge=1, description="THUMOS 'Test' videos (the evaluation set)")


class VideoCells(_Strict):
    min: int = Field(ge=8, description="fewest feature cells in a video")
    max: int = Field(ge=8, description="most feature cells in a video")

    @model_validator(mode="after")
    def _ordered(self) -> VideoCells:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class Durations(_Strict):
    """Instance durations: a log-logistic law on ``log d`` truncated to ``[min_s, max_s]``."""

    min_s: float = Field(gt=0)
    max_s: float = Field(gt=0)
    median_s: float = Field(gt=0)
    log_scale: float = Field(gt=0, description="scale of the logistic law of log(duration)")

    @model_validator(mode="after")
    def _ordered(self) -> Durations:
        if not self.min_s < self.median_s < self.max_s:
            raise ValueError("need min_s < median_s < max_s")
        return self


class Phases(_Strict):
    """Phase fractions of an instance (onset, key and offset; the body takes the rest)."""

    onset: float = Field(gt=0, lt=0.5)
    key: float = Field(gt=0, lt=0.5)
    offset: float = Field(gt=0, lt=0.5)
    jitter: float = Field(ge=0, lt=1, description="relative jitter of each fraction, uniform in +-jitter")
    blur_s: float = Field(gt=0, description="logistic edge scale of phase boundaries (seconds)")
    blur_rel: float = Field(ge=0, description="extra edge scale per second of instance duration")

    @model_validator(mode="after")
    def _fits(self) -> Phases:
        if (self.onset + self.key + self.offset) * (1 + self.jitter) >= 0.95:
            raise ValueError("onset + key + offset (with jitter) must leave room for the body")
        return self


class Context(_Strict):
    margin_s: float = Field(ge=0, description="context extends this far before and after each instance")
    coupling_fraction: float = Field(ge=0, lt=0.5, description="mean fraction of each free gap with context")
    blur_s: float = Field(gt=0, description="logistic edge scale of context regions (seconds)")
    class_share: float = Field(ge=0, le=1, description="share of the context that is class-specific")
    reliability: float = Field(
        ge=0, le=1, description="probability that a video shows its own class's context (else a sibling class's)"
    )
    within_instances: bool = Field(
        default=True,
        description="the class-specific context is visible inside the instances too; false: only around them "
        "(margins, coupling stretches), so a class is told apart by its surroundings (CLTDR-GMG's coarse context)",
    )


class StreamGains(_Strict):
    background: float = Field(ge=0)
    context: float = Field(ge=0)
    action: float = Field(ge=0)
    nuisance: float = Field(ge=0, description="std of the latent nuisance (full rank in the latent space)")
    noise: float = Field(ge=0, description="std of the per-dimension sensor noise")


class Streams(_Strict):
    rgb: StreamGains
    flow: StreamGains


class SynthConfig(_Strict):
    seed: int = Field(ge=0)
    layout: Literal["thumos14", "activitynet"] = Field(
        description="ActionFormer's THUMOS14 I3D files (two streams) or its ActivityNet TSP files (one stream)"
    )
    fps: float = Field(gt=0)
    feature_stride: int = Field(ge=1)
    clip_frames: int = Field(ge=1)
    num_classes: int = Field(ge=2)
    num_families: int = Field(ge=1)
    feature_dim: int = Field(ge=4, description="per stream; features are T x 2*feature_dim, RGB then Flow")
    videos: SplitSizes
    video_cells: VideoCells
    instances_per_video: float = Field(ge=1, description="mean number of instances per video")
    instances_dispersion: float = Field(gt=0, description="negative-binomial shape (smaller: heavier tail)")
    foreground_fraction: float = Field(gt=0, lt=1, description="target share of action time per video")
    foreground_spread: float = Field(ge=0, description="std of log(foreground share) across videos")
    second_class_prob: float = Field(ge=0, le=1)
    duration: Durations
    phases: Phases
    context: Context
    background_atoms: int = Field(ge=1)
    latent_dim: int = Field(ge=2, description="dimension of the latent space mixed into D features per stream")
    key_family_similarity: float = Field(ge=0, lt=1)
    instance_gain_jitter: float = Field(ge=0)
    noise_rho: float = Field(ge=0, lt=1, description="AR(1) coefficient of nuisance and noise per cell")
    bias: float
    streams: Streams

    @model_validator(mode="after")
    def _families(self) -> SynthConfig:
        if self.num_families > self.num_classes:
            raise ValueError(f"num_families ({self.num_families}) must be <= num_classes ({self.num_classes})")
        return self


def parse_config(synth_cfg: dict[str, Any]) -> SynthConfig:
    """Validate the ``synth:`` mapping; errors name the key as ``synth.a.b``."""
    try:
        return SynthConfig.model_validate(synth_cfg)
    except ValidationError as err:
        lines = []
        for problem in err.errors():
            key = ".".join(str(part) for part in ("synth", *problem["loc"]))
            lines.append(f"{key}: {problem['msg']}")
        raise ConfigError("params.yaml: invalid synthetic configuration: " + "; ".join(lines)) from err
