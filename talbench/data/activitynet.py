"""ActivityNet v1.3 with TSP features (ActionFormer release ``anet_1.3.tar.gz``: ``tsp_features/v_<id>.npy``, 512-d).

TSP (Alwassel et al., ICCVW'21) R(2+1)D features: 16-frame clips every 16 frames of the video re-sampled at
15 fps, so the centre of cell ``i`` is ``(i * 16 + 8) / 15`` seconds (ActionFormer's ``feat_stride``,
``num_frames``, ``default_fps``). Annotations (``data.activitynet.annotation_format``):

* ``actionformer``: the archive's ``annotations/anet1.3_tsp_filtered.json``, the ActionFormer JSON layout
  (``database -> <id> -> {subset, duration, annotations: [{label, segment, label_id}]}``) whose keys lack the
  ``v_`` of the feature files (ActionFormer's ``file_prefix: v_``); also what the synthetic ActivityNet-shaped
  profile writes;
* ``bmn``: BMN's files ``anet_anno_action.json`` (``v_<id> -> {duration_second, annotations: [{segment,
  label}]}``), ``video_info_new.csv`` (the subset) and ``action_name.csv`` (the 200 classes; label id = row).

Video ids are the feature files' names (``v_<id>``). ActivityNet "training" is the training set and
"validation" the evaluation set (its "testing" videos have no public labels and are skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from talbench.data.annotations import INSTANCE_COLUMNS, Annotations, check_taxonomy, load_thumos14_annotations
from talbench.data.dataset import FeatureDataset, FeatureLayout
from talbench.errors import ConfigError, DataError
from talbench.io import read_json

ACTIVITYNET_SUBSETS: dict[str, str] = {"training": "train", "validation": "test"}
ANNOTATION_FILE, VIDEO_INFO_FILE, CLASS_FILE = (
    "anet_anno_action.json",
    "video_info_new.csv",
    "action_name.csv",
)
ACTIONFORMER_ANNOTATION_FILE = "anet1.3_tsp_filtered.json"  # in anet_1.3.tar.gz (ActionFormer's anet_tsp.yaml)
ACTIVITYNET_FILE_PREFIX = "v_"  # feature files are v_<key>.npy (ActionFormer's file_prefix)


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


def load_actionformer_activitynet(path: str | Path, taxonomy: list[str] | None = None) -> Annotations:
    """ActionFormer's ActivityNet JSON (``anet1.3_tsp_filtered.json``): keys get the ``v_`` of the feature files."""
    parsed = load_thumos14_annotations(path, taxonomy, subsets=ACTIVITYNET_SUBSETS, fps_required=False)
    videos = parsed.videos.rename(index=lambda key: ACTIVITYNET_FILE_PREFIX + key)
    instances = parsed.instances.assign(video_id=ACTIVITYNET_FILE_PREFIX + parsed.instances["video_id"])
    return Annotations(file=parsed.file, classes=parsed.classes, videos=videos, instances=instances)


def open_activitynet(
    anet: dict[str, Any],
    *,
    taxonomy: list[str] | None = None,
    blocked_spec=None,
    hint: str = "",
    name: str = "activitynet",
    **options,
) -> FeatureDataset:
    """ActivityNet v1.3 dataset from the ``data.activitynet`` parameters (``root``, ``annotation_dir``,
    ``annotation_format``, ``feature_dir``, ``feature_dim``, ``feature_stride``, ``clip_frames``,
    ``feature_fps``); ``taxonomy`` is checked when given (the synthetic profile's classes)."""
    from talbench.data import read_block_list

    root = Path(anet["root"])
    feature_dir = root / anet["feature_dir"]
    if not feature_dir.is_dir():
        raise DataError.at(
            feature_dir, f"ActivityNet TSP features not found: {hint}", field="data.activitynet.feature_dir"
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
    annotation_dir = root / anet["annotation_dir"]
    if anet["annotation_format"] == "actionformer":
        annotations = load_actionformer_activitynet(annotation_dir / ACTIONFORMER_ANNOTATION_FILE, taxonomy)
    elif anet["annotation_format"] == "bmn":
        annotations = load_activitynet_annotations(annotation_dir)
    else:
        raise ConfigError(
            f"params.yaml: data.activitynet.annotation_format must be actionformer or bmn, "
            f"got {anet['annotation_format']!r}"
        )
    return FeatureDataset(annotations, layout, blocked=read_block_list(blocked_spec, root), name=name, **options)
