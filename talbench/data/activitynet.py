"""ActivityNet v1.3 with TSP features (ActionFormer release: ``tsp_features/v_<id>.npy``, 512-d).

TSP (Alwassel et al., ICCVW'21) R(2+1)D features: 16-frame clips every 16 frames of the video re-sampled at
15 fps, so the centre of cell ``i`` is ``(i * 16 + 8) / 15`` seconds (ActionFormer's ``feat_stride``,
``num_frames``, ``default_fps``). Annotations are BMN's files: ``anet_anno_action.json``
(``v_<id> -> {duration_second, annotations: [{segment, label}]}``), ``video_info_new.csv`` (the subset)
and ``action_name.csv`` (the 200 classes; label id = row). ActivityNet "training" is the training set and
"validation" the evaluation set (its "testing" videos have no public labels and are skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from talbench.data.annotations import INSTANCE_COLUMNS, Annotations, check_taxonomy
from talbench.data.dataset import FeatureDataset, FeatureLayout
from talbench.errors import DataError
from talbench.io import read_json

ACTIVITYNET_SUBSETS: dict[str, str] = {"training": "train", "validation": "test"}
ANNOTATION_FILE, VIDEO_INFO_FILE, CLASS_FILE = (
    "anet_anno_action.json",
    "video_info_new.csv",
    "action_name.csv",
)


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except FileNotFoundError as err:
        raise DataError.at(path, "annotation file not found") from err
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError.at(path, f"missing column(s), found {list(table.columns)}", field=", ".join(missing))
    return table


def load_activitynet_annotations(annotation_dir: str | Path) -> Annotations:
    """Read BMN's ActivityNet v1.3 annotation files from ``annotation_dir``."""
    folder = Path(annotation_dir)
    classes = _read_csv(folder / CLASS_FILE, ["action"])["action"].astype(str).tolist()
    info = _read_csv(folder / VIDEO_INFO_FILE, ["video", "subset"])
    subset_of = dict(zip(info["video"].astype(str), info["subset"].astype(str), strict=True))
    database = read_json(folder / ANNOTATION_FILE, "annotation file")
    path = folder / ANNOTATION_FILE
    video_rows, rows = [], []
    for video_id, entry in database.items():
        if video_id not in subset_of:
            raise DataError.at(
                folder / VIDEO_INFO_FILE,
                "video of the annotation file has no row",
                video=video_id,
                field="video",
            )
        split = ACTIVITYNET_SUBSETS.get(subset_of[video_id].lower())
        if split is None:
            continue
        if "duration_second" not in entry:
            raise DataError.at(path, "missing", video=video_id, field="duration_second")
        duration = float(entry["duration_second"])
        if not duration > 0:
            raise DataError.at(
                path, f"must be positive, got {duration}", video=video_id, field="duration_second"
            )
        video_rows.append((video_id, subset_of[video_id], split, duration, float("nan")))
        for k, ann in enumerate(entry.get("annotations") or []):
            segment = ann.get("segment")
            if "label" not in ann or not isinstance(segment, (list, tuple)) or len(segment) != 2:
                raise DataError.at(
                    path,
                    f"expected label and segment [start, end], got {ann!r}",
                    video=video_id,
                    field=f"annotations[{k}]",
                )
            rows.append((video_id, str(ann["label"]), None, float(segment[0]), float(segment[1]), k))
    videos = pd.DataFrame(video_rows, columns=["video_id", "subset", "split", "duration", "fps"]).set_index(
        "video_id"
    )
    table = pd.DataFrame(rows, columns=["video_id", "label", "label_id", "start", "end", "index"])
    check_taxonomy(path, table, classes)
    table["label_id"] = table["label"].map({name: i for i, name in enumerate(classes)}).astype("int64")
    return Annotations(file=path, classes=classes, videos=videos, instances=table[INSTANCE_COLUMNS])


def open_activitynet(anet: dict[str, Any], *, blocked_spec=None, **options) -> FeatureDataset:
    """ActivityNet v1.3 dataset from the ``data.activitynet`` parameters (``root``, ``annotation_dir``,
    ``feature_dir``, ``feature_dim``, ``feature_stride``, ``clip_frames``, ``feature_fps``)."""
    from talbench.data import read_block_list

    root = Path(anet["root"])
    feature_dir = root / anet["feature_dir"]
    if not feature_dir.is_dir():
        raise DataError.at(
            feature_dir,
            "ActivityNet TSP features not found: unpack anet_1.3.tar.gz (ActionFormer "
            "release, md5 c415f50120b9425ee1ede9ac3ce11203) there; see docs/data.md",
            field="data.activitynet.feature_dir",
        )
    dim = int(anet["feature_dim"])
    # TSP is a single RGB stream: `rgb` and `both` are the same columns, there is no `flow`.
    layout = FeatureLayout(
        feature_dir,
        {"rgb": (0, dim), "both": (0, dim)},
        dim,
        int(anet["feature_stride"]),
        int(anet["clip_frames"]),
        float(anet["feature_fps"]),
    )
    annotations = load_activitynet_annotations(root / anet["annotation_dir"])
    return FeatureDataset(
        annotations, layout, blocked=read_block_list(blocked_spec, root), name="activitynet", **options
    )
