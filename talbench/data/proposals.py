"""Proposal files: the BSN stage's per-video CSVs and externally released proposals.

Layout written by ``talbench proposals`` (BSN's own output format): one ``<video_id>.csv`` per video in
``proposals/<data source>-<profile>/`` with columns ``xmin, xmax, score, xmin_score, xmax_score, iou_score``,
times in **seconds**, rows sorted by descending ``score`` (``score = xmin_score x xmax_score x iou_score``
after Soft-NMS). In memory, proposals are a DataFrame ``video_id, start, end, score`` (+ the component
scores when present), the same tabular form as predictions.

External sources, chosen for the detector by ``bsn.source`` in params.yaml:

* ``bsn``: this project's BSN stage output (``proposals_dir(cfg)``).
* ``bsn_csv``: a folder of BSN-format CSVs (``bsn.external_path``). BSN's released ActivityNet files hold
  ``xmin, xmax`` normalised by the video duration; set ``bsn.external_normalized: true`` for those (times
  are then multiplied by each video's duration), ``false`` for files in seconds.
* ``turn``: a TURN proposal file (``video start_frame end_frame`` at 30 fps, e.g.
  ``../shared/data/thumos14/proposals_turn/test_proposals_from_TURN.txt``), read by
  :func:`talbench.eval.io.load_turn_proposals`. TURN's release covers the test videos only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from talbench.errors import ConfigError, DataError
from talbench.io import atomic_dir

CSV_COLUMNS = ["xmin", "xmax", "score", "xmin_score", "xmax_score", "iou_score"]
COMPONENT_COLUMNS = ["xmin_score", "xmax_score", "iou_score"]
SOURCES = ("bsn", "turn", "bsn_csv")


def proposals_dir(cfg: Mapping[str, Any], root: str | Path = ".", train_split: str | None = None) -> Path:
    """Where the BSN stage writes the CSVs of a BSN trained on ``train_split`` (default ``bsn.train_split``):
    ``<root>/proposals/<data.source>-<data.profile>`` for the training videos (``train``), with a
    ``-<split>`` suffix for another split (``train_fit``: the tuning's BSN, which never sees the holdout)."""
    data = cfg["data"]
    split = train_split or cfg["bsn"].get("train_split", "train")
    suffix = "" if split == "train" else f"-{split}"
    return Path(root) / "proposals" / f"{data['source']}-{data['profile']}{suffix}"


def _is_csv(name: str) -> bool:
    return name.endswith(".csv")


def _only_csv(folder: Path) -> bool:
    """Whether ``folder`` holds proposal CSVs only (an earlier output of :func:`write_proposals`)."""
    return all(_is_csv(entry.name) for entry in folder.iterdir())


def write_proposals(directory: str | Path, proposals: pd.DataFrame, video_ids: Iterable[str]) -> None:
    """Write one BSN-format CSV per video of ``video_ids`` (an empty one where a video has no proposal),
    atomically: ``directory`` is replaced only once every file is written (a folder holding anything else
    than proposal CSVs is refused, never emptied).

    ``proposals``: ``video_id, start, end, score`` in seconds, optionally the component scores.
    """
    missing = {"video_id", "start", "end", "score"} - set(proposals.columns)
    if missing:
        raise ValueError(f"write_proposals: missing columns {sorted(missing)}")
    table = proposals.rename(columns={"start": "xmin", "end": "xmax"})
    for column in COMPONENT_COLUMNS:
        if column not in table.columns:
            table[column] = np.nan
    groups = dict(tuple(table.groupby("video_id", sort=False)))
    with atomic_dir(directory, owned=_is_csv, previous_output=_only_csv, what="proposal files") as tmp:
        for video_id in video_ids:
            rows = groups.get(video_id, table.iloc[0:0])
            rows = rows.sort_values("score", ascending=False, kind="stable")
            rows[CSV_COLUMNS].to_csv(tmp / f"{video_id}.csv", index=False, float_format="%.6f")


def _read_csv(path: Path, video_id: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: proposal file missing for video '{video_id}'")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: video '{video_id}': not a readable CSV ({err})") from err
    for column in ("xmin", "xmax", "score"):
        if column not in frame.columns:
            raise DataError(f"{path}: video '{video_id}': column '{column}' missing (have {list(frame.columns)})")
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: video '{video_id}': field '{column}' row {row} is not a number")
        frame[column] = values.astype(np.float64)
    inverted = (frame["xmax"] < frame["xmin"]).to_numpy()
    if inverted.any():
        row = int(np.flatnonzero(inverted)[0])
        raise DataError(f"{path}: video '{video_id}': row {row} has xmax < xmin")
    return frame


def load_proposals(directory: str | Path, video_ids: Iterable[str]) -> pd.DataFrame:
    """Read the BSN-format CSVs of ``video_ids`` from ``directory`` (times in seconds) into one DataFrame
    ``video_id, start, end, score`` (+ component scores where the files have them)."""
    return load_bsn_csv(directory, video_ids, durations=None)


def load_bsn_csv(
    directory: str | Path, video_ids: Iterable[str], durations: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Read a folder of BSN-format CSVs. With ``durations`` (video id -> seconds) the files' ``xmin, xmax``
    are taken as fractions of the duration (BSN's released ActivityNet format) and scaled to seconds."""
    directory = Path(directory)
    frames = []
    for video_id in video_ids:
        frame = _read_csv(directory / f"{video_id}.csv", video_id)
        if durations is not None:
            if video_id not in durations:
                raise DataError(f"{directory}: video '{video_id}': no duration to scale normalised xmin/xmax")
            frame[["xmin", "xmax"]] *= float(durations[video_id])
        keep = ["xmin", "xmax", "score"] + [c for c in COMPONENT_COLUMNS if c in frame.columns]
        frame = frame[keep].rename(columns={"xmin": "start", "xmax": "end"})
        frame.insert(0, "video_id", video_id)
        frames.append(frame)
    columns = ["video_id", "start", "end", "score"]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "video_id" else float) for c in columns})
    return pd.concat(frames, ignore_index=True)


def load_detector_proposals(
    cfg: Mapping[str, Any],
    video_ids: Iterable[str],
    durations: Mapping[str, float] | None = None,
    root: str | Path = ".",
    train_split: str | None = None,
) -> pd.DataFrame:
    """The detector's proposals for ``video_ids`` from the source chosen by ``bsn.source``
    (``video_id, start, end, score``, seconds). ``durations`` is needed for normalised ``bsn_csv`` files;
    ``train_split`` picks the BSN stage's output of a BSN trained on that split (``bsn`` source)."""
    bsn = cfg["bsn"]
    source = bsn["source"]
    video_ids = list(video_ids)
    if source == "bsn":
        directory = proposals_dir(cfg, root, train_split)
        if not directory.is_dir():
            split = train_split or bsn.get("train_split", "train")
            raise DataError(f"{directory}: no BSN proposals of a BSN trained on '{split}' "
                            f"(run `talbench proposals --train-split {split}`)")
        return load_proposals(directory, video_ids)
    path = bsn.get("external_path")
    if not path:
        raise ConfigError(f"params.yaml: bsn.source is '{source}' but bsn.external_path is not set")
    path = Path(path) if Path(path).is_absolute() else Path(root) / path
    if source == "bsn_csv":
        if bsn.get("external_normalized") and durations is None:
            raise ConfigError("bsn.external_normalized needs the videos' durations")
        return load_bsn_csv(path, video_ids, durations if bsn.get("external_normalized") else None)
    if source == "turn":
        from talbench.eval.io import load_turn_proposals

        turn = load_turn_proposals(path)
        wanted = set(video_ids)
        absent = sorted(wanted - set(turn["video_id"]))
        if absent:
            raise DataError(f"{path}: no TURN proposals for {len(absent)} videos, e.g. '{absent[0]}'")
        return turn[turn["video_id"].isin(wanted)].reset_index(drop=True)
    raise ConfigError(f"params.yaml: bsn.source must be one of {SOURCES}, got '{source}'")


def detector_proposals(cfg: Mapping[str, Any], dataset, root: str | Path = ".") -> pd.DataFrame:
    """The detector's proposals (``bsn.source``) of a row's ``run.train_split`` and ``run.eval_split`` videos,
    from a BSN trained on ``run.train_split`` (a row trained on ``train_fit`` and evaluated on the holdout
    reads the proposals of a BSN that never saw the holdout's annotations)."""
    train_split = cfg["run"]["train_split"]
    ids = dataset.video_ids(train_split) + dataset.video_ids(cfg["run"]["eval_split"])
    return load_detector_proposals(cfg, ids, {v: dataset.duration(v) for v in ids}, root, train_split)


def proposals_fingerprint(proposals: pd.DataFrame) -> str:
    """sha1 (12 hex) of a proposal table's ``video_id, start, end, score`` (in order): a trained detector or a
    recorded run is reused only with the same proposals (BSN's output changes with BSN's code and data)."""
    values = pd.util.hash_pandas_object(proposals[["video_id", "start", "end", "score"]], index=False)
    return hashlib.sha1(values.to_numpy().tobytes()).hexdigest()[:12]
