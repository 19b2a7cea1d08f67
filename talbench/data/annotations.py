"""Temporal annotations: the ActionFormer/ActivityNet JSON layout, the segment policy, the tuning holdout.

THUMOS14 (ActionFormer's ``thumos14.json``)::

    {"database": {video_id: {"subset": "Validation" | "Test", "duration": s, "fps": f,
                             "annotations": [{"label": str, "segment": [start_s, end_s], "label_id": int}]}}}

THUMOS "Validation" videos are the training set and "Test" the evaluation set (as in every THUMOS14
TAL paper since the challenge itself). All tables are pandas DataFrames; times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from talbench.errors import ConfigError, DataError
from talbench.io import read_json

# The 20 THUMOS14 detection classes in ActionFormer's label_id order (label id = position).
THUMOS14_CLASSES: list[str] = [
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling",
    "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow",
    "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
]  # fmt: skip

THUMOS14_SUBSETS: dict[str, str] = {"validation": "train", "test": "test"}
TRAIN_SPLITS = ("train", "train_fit", "holdout")
SPLITS = ("train", "test", "train_fit", "holdout")
SEGMENT_POLICIES = ("clip", "drop")
INSTANCE_COLUMNS = ["video_id", "label", "label_id", "start", "end"]


@dataclass
class Annotations:
    """Parsed annotation file: the taxonomy, one row per video, one row per action instance."""

    file: Path
    classes: list[str]
    videos: pd.DataFrame  # index video_id; columns subset, split, duration, fps
    instances: pd.DataFrame  # columns video_id, label, label_id, start, end (as annotated)


@dataclass
class ValidationReport:
    """What load-time validation found and did; ``problems`` lists each affected annotation."""

    segment_policy: str
    problems: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["video_id", "split", "label", "start", "end", "duration", "issue"]
        )
    )
    clipped: int = 0  # training-side annotations clipped into [0, duration]
    dropped: int = 0  # training-side annotations removed (policy drop, or nothing left after clipping)
    kept_in_test: int = 0  # test annotations with a problem, kept as annotated (evaluation ground truth)
    blocked_videos: list[str] = field(default_factory=list)

    def summary(self) -> str:
        videos = self.problems["video_id"].nunique()
        lines = [
            (
                f"segment policy '{self.segment_policy}': {len(self.problems)} annotations out of range or empty "
                f"in {videos} videos; training side: {self.clipped} clipped, {self.dropped} dropped; "
                f"test: {self.kept_in_test} kept as annotated (evaluation ground truth is never altered)"
            )
        ]
        if self.blocked_videos:
            lines.append(
                f"{len(self.blocked_videos)} videos blocked (missing_files): {', '.join(self.blocked_videos)}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "segment_policy": self.segment_policy,
            "problems": len(self.problems),
            "problem_videos": sorted(self.problems["video_id"].unique().tolist()),
            "clipped": self.clipped,
            "dropped": self.dropped,
            "kept_in_test": self.kept_in_test,
            "blocked_videos": list(self.blocked_videos),
        }


def _number(file: Path, video: str, name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError.at(file, f"expected a number, got {value!r}", video=video, field=name) from None
    if not np.isfinite(number):
        raise DataError.at(file, f"not finite: {value!r}", video=video, field=name)
    return number


def _label_id(file: Path, video: str, index: int, value) -> int | None:
    """An annotation's optional ``label_id``: an integer (``3``, ``3.0`` or ``"3"``), else a DataError."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number.is_integer():
        raise DataError.at(file, f"expected an integer class id, got {value!r}", video=video,
                           field=f"annotations[{index}].label_id")
    return int(number)


def load_thumos14_annotations(
    path: str | Path,
    taxonomy: list[str] | None = None,
    subsets: dict[str, str] = THUMOS14_SUBSETS,
    fps_required: bool = True,
) -> Annotations:
    """Read an ActionFormer-layout JSON (THUMOS14, ActivityNet or the synthetic benchmark).

    ``taxonomy`` (label id = position) is checked when given; otherwise it is taken from the file's
    ``label``/``label_id`` pairs, which must be one-to-one (ActionFormer builds its label dict the same way).
    ``subsets`` maps subset names (case-insensitive, as ActionFormer) to splits; other subsets are skipped.
    Without ``fps_required`` a video may lack ``fps`` (NaN: its feature grid has a fixed rate, ActivityNet TSP).
    """
    path = Path(path)
    root = read_json(path, "annotation file")
    database = root.get("database") if isinstance(root, dict) else None
    if not isinstance(database, dict):
        raise DataError.at(path, "top level must be an object with a 'database' object", field="database")

    video_rows, rows = [], []
    for video_id, info in database.items():
        if not isinstance(info, dict):
            raise DataError.at(path, "entry must be an object", video=video_id)
        for key in ("subset", "duration", "fps") if fps_required else ("subset", "duration"):
            if key not in info:
                raise DataError.at(path, "missing", video=video_id, field=key)
        split = subsets.get(str(info["subset"]).lower())
        if split is None:
            continue
        duration = _number(path, video_id, "duration", info["duration"])
        fps = _number(path, video_id, "fps", info["fps"]) if "fps" in info else float("nan")
        if duration <= 0 or fps <= 0:
            raise DataError.at(
                path, "must be positive", video=video_id, field="duration" if duration <= 0 else "fps"
            )
        video_rows.append((video_id, info["subset"], split, duration, fps))
        annotations = info.get("annotations") or []
        if not isinstance(annotations, list):
            raise DataError.at(path, f"expected a list, got {annotations!r}", video=video_id, field="annotations")
        for k, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                raise DataError.at(path, f"expected an object, got {ann!r}", video=video_id, field=f"annotations[{k}]")
            for key in ("label", "segment"):
                if key not in ann:
                    raise DataError.at(path, "missing", video=video_id, field=f"annotations[{k}].{key}")
            segment = ann["segment"]
            if not isinstance(segment, (list, tuple)) or len(segment) != 2:
                raise DataError.at(
                    path,
                    f"expected [start, end], got {segment!r}",
                    video=video_id,
                    field=f"annotations[{k}].segment",
                )
            start = _number(path, video_id, f"annotations[{k}].segment[0]", segment[0])
            end = _number(path, video_id, f"annotations[{k}].segment[1]", segment[1])
            label_id = _label_id(path, video_id, k, ann.get("label_id"))
            rows.append((video_id, str(ann["label"]), label_id, start, end, k))

    videos = pd.DataFrame(video_rows, columns=["video_id", "subset", "split", "duration", "fps"]).set_index(
        "video_id"
    )
    table = pd.DataFrame(rows, columns=["video_id", "label", "label_id", "start", "end", "index"])
    classes = check_taxonomy(path, table, taxonomy)
    position = {name: i for i, name in enumerate(classes)}
    table["label_id"] = table["label"].map(position).astype("int64")
    return Annotations(file=path, classes=classes, videos=videos, instances=table[INSTANCE_COLUMNS])


def check_taxonomy(path: Path, table: pd.DataFrame, taxonomy: list[str] | None) -> list[str]:
    """Check labels against ``taxonomy`` (or derive it), naming the first offending annotation."""
    if taxonomy is not None:
        known = set(taxonomy)
        unknown = table[~table["label"].isin(known)]
        if len(unknown):
            row = unknown.iloc[0]
            raise DataError.at(
                path,
                f"label '{row['label']}' is not in the taxonomy ({len(unknown)} such annotations; "
                f"known: {', '.join(taxonomy)})",
                video=row["video_id"],
                field=f"annotations[{row['index']}].label",
            )
        stated = table.dropna(subset=["label_id"])
        expected = stated["label"].map({name: i for i, name in enumerate(taxonomy)})
        wrong = stated[stated["label_id"].astype("int64") != expected]
        if len(wrong):
            row = wrong.iloc[0]
            raise DataError.at(
                path,
                f"label_id {int(row['label_id'])} does not match label '{row['label']}' "
                f"(taxonomy id {taxonomy.index(row['label'])})",
                video=row["video_id"],
                field=f"annotations[{row['index']}].label_id",
            )
        return list(taxonomy)
    if table["label_id"].isna().any():
        return sorted(table["label"].unique().tolist())
    pairs = table[["label", "label_id"]].astype({"label_id": "int64"}).drop_duplicates()
    for column in ("label", "label_id"):
        clash = pairs[pairs.duplicated(column, keep=False)]
        if len(clash):
            value = clash.iloc[0][column]
            row = table[table[column] == value].iloc[0]
            raise DataError.at(
                path,
                f"{column} {value!r} is paired with several {'label_ids' if column == 'label' else 'labels'}",
                video=row["video_id"],
                field=f"annotations[{row['index']}].label_id",
            )
    ids = pairs.sort_values("label_id")
    if ids["label_id"].tolist() != list(range(len(ids))):
        raise DataError.at(
            path, f"label_ids must be 0..{len(ids) - 1}, got {ids['label_id'].tolist()}", field="label_id"
        )
    return ids["label"].tolist()


def apply_segment_policy(annotations: Annotations, policy: str) -> tuple[pd.DataFrame, ValidationReport]:
    """Apply the segment policy to training-side annotations; test annotations stay as annotated.

    An annotation is a problem when ``end <= start``, ``start < 0`` or ``end > duration``.
    ``clip`` clips it into ``[0, duration]`` and drops it if nothing is left; ``drop`` removes it.
    Empty segments (``end <= start``) are dropped under both policies. On the test split the official
    ActivityNet protocol scores every annotation, so they are counted and kept.
    """
    if policy not in SEGMENT_POLICIES:
        raise ConfigError(f"params.yaml: data.segment_policy must be clip or drop, got '{policy}'")
    table = annotations.instances.copy()
    duration = table["video_id"].map(annotations.videos["duration"]).to_numpy()
    split = table["video_id"].map(annotations.videos["split"]).to_numpy()
    start, end = table["start"].to_numpy(), table["end"].to_numpy()
    empty, negative, past = end <= start, start < 0, end > duration
    problem = empty | negative | past
    issue = np.select(
        [empty, negative & past, negative, past],
        [
            "end_not_after_start",
            "start_negative_and_end_past_duration",
            "start_negative",
            "end_past_duration",
        ],
        default="",
    )
    problems = (
        table.loc[problem, ["video_id", "label", "start", "end"]]
        .assign(split=split[problem], duration=duration[problem], issue=issue[problem])[
            ["video_id", "split", "label", "start", "end", "duration", "issue"]
        ]
        .reset_index(drop=True)
    )

    train_side = split != "test"
    if policy == "clip":
        clipped_start, clipped_end = np.clip(start, 0.0, duration), np.clip(end, 0.0, duration)
        fix = train_side & problem & ~empty
        table.loc[fix, "start"], table.loc[fix, "end"] = clipped_start[fix], clipped_end[fix]
        removed = train_side & (empty | (clipped_end <= clipped_start))
        clipped = int((fix & ~removed).sum())
    else:
        removed = train_side & problem
        clipped = 0
    report = ValidationReport(
        segment_policy=policy,
        problems=problems,
        clipped=clipped,
        dropped=int(removed.sum()),
        kept_in_test=int((problem & ~train_side).sum()),
    )
    return table[~removed].reset_index(drop=True), report


def holdout_split(train_ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded holdout of training videos for tuning: ``(train_fit, holdout)``, both sorted.

    The permutation is drawn over the sorted ids, so it depends only on the set of ids and the seed.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"params.yaml: data.holdout_fraction must be in [0, 1), got {fraction}")
    ids = sorted(train_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_holdout = round(fraction * len(ids))
    holdout = sorted(ids[i] for i in order[:n_holdout])
    held = set(holdout)
    return [v for v in ids if v not in held], holdout
