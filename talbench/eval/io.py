"""Readers and writers of the evaluation file formats, to and from the shared tabular form.

* GT: ActivityNet / ActionFormer JSON ``{"database": {video: {"subset", "duration", "annotations":
  [{"label", "segment": [start, end]}]}}}``; the subset is compared case-insensitively (as ActionFormer).
* Predictions: ActivityNet result JSON ``{"results": {video: [{"label", "segment", "score"}]}}``.
* CBR detections: text lines ``video start end class_id score`` (class ids are UCF101 ids).
* TURN proposals: text lines ``video start_frame end_frame`` at 30 fps.

Rows keep the order of the file (the official evaluation's tie order depends on it). Every problem raises
:class:`talbench.data.errors.DataError` naming the file, the video and the field. The JSON formats are read into
numpy columns (``read_*_columns``, what ``talbench eval`` evaluates without importing pandas) and, by the
``load_*`` functions, into DataFrames.
"""

from __future__ import annotations

import math
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from talbench.errors import DataError
from talbench.io import atomic_write_compact_json, gc_paused, read_json

GT_COLUMNS = ["video_id", "label", "start", "end"]
PRED_COLUMNS = ["video_id", "label", "start", "end", "score"]
PROPOSAL_COLUMNS = ["video_id", "start", "end", "score"]

#: UCF101 class id -> THUMOS'14 class name (CBR, UntrimmedNet); 0 is "Ambiguous".
UCF101_TO_THUMOS14 = {
    7: "BaseballPitch", 9: "BasketballDunk", 12: "Billiards", 21: "CleanAndJerk", 22: "CliffDiving",
    23: "CricketBowling", 24: "CricketShot", 26: "Diving", 31: "FrisbeeCatch", 33: "GolfSwing",
    36: "HammerThrow", 40: "HighJump", 45: "JavelinThrow", 51: "LongJump", 68: "PoleVault", 79: "Shotput",
    85: "SoccerPenalty", 92: "TennisSwing", 93: "ThrowDiscus", 97: "VolleyballSpiking", 0: "Ambiguous",
}
TURN_FPS = 30.0


def _read_object(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level must be a JSON object")
    return data


def _number(value, path: Path, video: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}: video '{video}' field '{field}' must be a finite number, got {value!r}")
    return float(value)


def _segment(entry: dict, path: Path, video: str, index: int) -> tuple[float, float]:
    where = f"annotations[{index}].segment" if "score" not in entry else f"results[{index}].segment"
    seg = entry.get("segment")
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise DataError(f"{path}: video '{video}' field '{where}' must be [start, end], got {seg!r}")
    return _number(seg[0], path, video, where), _number(seg[1], path, video, where)


def _label(entry: dict, path: Path, video: str, where: str) -> str:
    if "label" not in entry:
        raise DataError(f"{path}: video '{video}' field '{where}.label' is missing")
    label = entry["label"]
    if not isinstance(label, (str, int)) or isinstance(label, bool):
        raise DataError(f"{path}: video '{video}' field '{where}.label' must be a string, got {label!r}")
    return str(label)


def _columns(rows: list[tuple], names: list[str]) -> dict[str, np.ndarray]:
    """Row tuples -> one numpy column per name: text as objects, the rest as float64."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return {name: np.array(column, dtype=object if name in ("video_id", "label") else np.float64)
            for name, column in zip(names, values, strict=True)}


def load_ground_truth(path: str | Path, subset: str | None = "test"):
    """GT instances of ``subset`` (case-insensitive; None = all videos) as a DataFrame video_id, label, start,
    end."""
    import pandas as pd

    return pd.DataFrame(read_ground_truth_columns(path, subset))


def read_ground_truth_columns(path: str | Path, subset: str | None = "test") -> dict[str, np.ndarray]:
    """GT instances of ``subset`` (case-insensitive; None = all videos) as numpy columns video_id, label, start,
    end."""
    path = Path(path)
    database = _read_object(path).get("database")
    if not isinstance(database, dict):
        raise DataError(f"{path}: field 'database' must be an object of videos")
    rows: list[tuple[str, str, float, float]] = []
    n_videos = 0
    for video, info in database.items():
        if not isinstance(info, dict):
            raise DataError(f"{path}: video '{video}' must be an object")
        if subset is not None:
            video_subset = info.get("subset")
            if not isinstance(video_subset, str):
                raise DataError(f"{path}: video '{video}' field 'subset' is missing or not a string")
            if video_subset.lower() != subset.lower():
                continue
        n_videos += 1
        annotations = info.get("annotations", [])
        if not isinstance(annotations, list):
            raise DataError(f"{path}: video '{video}' field 'annotations' must be a list")
        for i, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                raise DataError(f"{path}: video '{video}' field 'annotations[{i}]' must be an object")
            start, end = _segment(ann, path, video, i)
            rows.append((str(video), _label(ann, path, video, f"annotations[{i}]"), start, end))
    if n_videos == 0:
        subsets = sorted({str(v.get("subset")) for v in database.values() if isinstance(v, dict)})
        raise DataError(f"{path}: no video in subset '{subset}' (field 'subset' values: {subsets})")
    return _columns(rows, GT_COLUMNS)


def load_predictions(path: str | Path):
    """ActivityNet result JSON -> DataFrame video_id, label, start, end, score (file order)."""
    import pandas as pd

    return pd.DataFrame(read_prediction_columns(path))


class _Entry(msgspec.Struct):
    """One well-formed prediction: a string label, two numbers and a number (other keys are ignored)."""

    label: str
    segment: tuple[float, float]
    score: float


class _ResultFile(msgspec.Struct):
    results: dict[str, list[_Entry]]


_RESULT_FILE = msgspec.json.Decoder(_ResultFile)


def read_prediction_columns(path: str | Path) -> dict[str, np.ndarray]:
    """ActivityNet result JSON -> numpy columns video_id, label, start, end, score (file order).

    Well-formed files (string labels, ``[start, end]`` and ``score`` finite numbers) are decoded by msgspec
    straight into typed entries and read column-wise (:func:`_prediction_columns`, about 0.06 s per 100k
    predictions; half the time of parsing into dicts and checking every value's type); any other file is parsed
    as plain JSON and goes through the entry by entry check, which names the first bad video and field."""
    path = Path(path)
    columns = _prediction_columns(path)
    if columns is not None:
        return columns
    with gc_paused():
        results = _read_object(path).get("results")
        if not isinstance(results, dict):
            raise DataError(f"{path}: field 'results' must be an object of videos")
        return _checked_predictions(path, results)


def _prediction_columns(path: Path) -> dict[str, np.ndarray] | None:
    """The predictions of a well-formed result file, or ``None`` when it needs the detailed check (unreadable,
    not JSON, a missing key, a label that is not a string, a segment that is not two numbers, a non-finite
    value)."""
    try:
        with gc_paused():
            results = _RESULT_FILE.decode(path.read_bytes()).results
    except (OSError, msgspec.MsgspecError):
        return None
    counts, labels, segments, scores = [], [], [], []
    label_of, segment_of, score_of = attrgetter("label"), attrgetter("segment"), attrgetter("score")
    for entries in results.values():
        counts.append(len(entries))
        labels += map(label_of, entries)
        segments += map(segment_of, entries)
        scores += map(score_of, entries)
    bounds = np.array(segments, dtype=np.float64).reshape(-1, 2)
    score = np.array(scores, dtype=np.float64)
    if not (np.isfinite(bounds).all() and np.isfinite(score).all()):
        return None
    video_ids = np.repeat(np.array(list(results), dtype=object), counts)
    return {"video_id": video_ids, "label": np.array(labels, dtype=object), "start": bounds[:, 0],
            "end": bounds[:, 1], "score": score}


def _checked_predictions(path: Path, results: dict) -> dict[str, np.ndarray]:
    """The predictions of ``results``, entry by entry: the first problem raises a DataError naming the video
    and the field."""
    rows: list[tuple[str, str, float, float, float]] = []
    for video, entries in results.items():
        if not isinstance(entries, list):
            raise DataError(f"{path}: video '{video}' field 'results' must be a list of detections")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise DataError(f"{path}: video '{video}' field 'results[{i}]' must be an object")
            start, end = _segment({**entry, "score": None}, path, video, i)
            if "score" not in entry:
                raise DataError(f"{path}: video '{video}' field 'results[{i}].score' is missing")
            score = _number(entry["score"], path, video, f"results[{i}].score")
            rows.append((str(video), _label(entry, path, video, f"results[{i}]"), start, end, score))
    return _columns(rows, PRED_COLUMNS)


def predictions_to_json(pred, path: str | Path | None = None, *, version: str = "talbench") -> dict:
    """DataFrame -> ActivityNet result dict (rows grouped by video in first-appearance order, row order kept);
    written atomically to ``path`` when given, as compact JSON."""
    missing = [c for c in PRED_COLUMNS if c not in pred.columns]
    if missing:
        raise DataError(f"predictions: missing column(s) {missing}")
    results: dict[str, list[dict]] = {}
    columns = (pred["video_id"].astype(str).tolist(), pred["label"].astype(str).tolist(),
               pred["start"].to_numpy(float).tolist(), pred["end"].to_numpy(float).tolist(),
               pred["score"].to_numpy(float).tolist())
    for video, label, start, end, score in zip(*columns, strict=True):
        results.setdefault(video, []).append({"label": label, "segment": [start, end], "score": score})
    payload = {"version": version, "results": results, "external_data": {}}
    if path is not None:
        atomic_write_compact_json(path, payload)
    return payload


def _read_table(path: Path, names: list[str], dtypes: dict):
    import pandas as pd

    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, names=names, dtype=str, engine="c")
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: expected {len(names)} whitespace-separated fields per line ({err})") from err
    for column, kind in dtypes.items():
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: line {row + 1} video '{df['video_id'].iloc[row]}' field '{column}' "
                f"is not a finite number ({df[column].iloc[row]!r})"
            )
        df[column] = values.astype(kind)
    return df


def load_cbr_detections(path: str | Path, class_map: dict[int, str] | None = None):
    """CBR result txt (``video start end class_id score``, UCF101 ids) -> prediction DataFrame, file order.

    Rows are kept as they stand (including end < start) as the official evaluation of these files does.
    """
    import pandas as pd

    path = Path(path)
    class_map = UCF101_TO_THUMOS14 if class_map is None else class_map
    df = _read_table(
        path, ["video_id", "start", "end", "class_id", "score"],
        {"start": float, "end": float, "class_id": float, "score": float},
    )
    ids = df["class_id"].to_numpy()
    labels = pd.Series(ids.astype(np.int64)).map(class_map)
    bad = labels.isna().to_numpy() | (ids != np.round(ids))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: line {row + 1} video '{df['video_id'].iloc[row]}' field 'class_id' "
            f"{float(df['class_id'].iloc[row]):g} is not a known UCF101 id of THUMOS'14"
        )
    return pd.DataFrame(
        {"video_id": df["video_id"], "label": labels.to_numpy(dtype=object), "start": df["start"],
         "end": df["end"], "score": df["score"]}
    )


def load_turn_proposals(path: str | Path, fps: float = TURN_FPS):
    """TURN proposals (``video start_frame end_frame``, 30 fps) -> video_id, start, end, score (seconds).

    The file carries no score; it lists each video's proposals best first (TURN writes them sorted by its
    confidence), so the score is ``1 / rank`` within the video (rank 1 = first line): it keeps the file's
    order when proposals are ranked or truncated to the top AN.
    """
    import pandas as pd

    path = Path(path)
    df = _read_table(path, ["video_id", "start_frame", "end_frame"], {"start_frame": float, "end_frame": float})
    rank = df.groupby("video_id", sort=False).cumcount().to_numpy() + 1
    return pd.DataFrame(
        {"video_id": df["video_id"], "start": df["start_frame"] / fps, "end": df["end_frame"] / fps,
         "score": 1.0 / rank}
    )
