"""Data layer: real THUMOS14 / ActivityNet features and the synthetic benchmark, one ``FeatureDataset`` API.

``open_dataset(cfg)`` picks the source from ``cfg["data"]["source"]``:

* ``synthetic``: ``<data.synthetic_root>/<data.profile>`` (made by ``talbench synth`` / ``dvc repro``), or
  ``<data.profile>-<variant>`` when the row's family reads a variant (``data.synthetic_variant``, set from
  params.yaml ``synthetic_variants`` by :meth:`talbench.runners.families.Family.scoped`),
* ``thumos14``: ``data.thumos14_root``, the real I3D features pinned by ``datasets.dvc``,
* ``activitynet``: ``data.activitynet.root``, ActivityNet v1.3 TSP features pinned by ``activitynet.dvc``.

A pinned archive present at ``data.thumos14_archive`` / ``data.activitynet.archive`` is md5-checked and unpacked
on first use. A synthetic profile written in the ActivityNet layout (``synth.layout: activitynet``) is read by
the ActivityNet loader with the grid of ``data.activitynet``.

Relative paths are taken from the working directory (DVC runs stages from the repository root).
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import Any

from rich.progress import Progress

from talbench.data.annotations import THUMOS14_CLASSES, load_thumos14_annotations
from talbench.data.dataset import FeatureDataset, FeatureLayout
from talbench.errors import DataError
from talbench.io import atomic_dir, read_json

__all__ = [
    "DatasetCache", "FeatureDataset", "data_checksum", "install_activitynet_archive", "install_thumos14_archive",
    "open_dataset", "synthetic_name",
]  # fmt: skip

THUMOS14_ANNOTATION_FILE = Path("annotations") / "thumos14.json"
FETCH_HINT = (
    "get the real THUMOS14 features with `dvc update datasets.dvc` (downloads the pinned archive), or, if you "
    "already have thumos.tar.gz, `python scripts/thumos14_features.py --archive /path/to/thumos.tar.gz`; "
    "see docs/data.md"
)
ACTIVITYNET_FETCH_HINT = (
    "get the real ActivityNet TSP features with `dvc update activitynet.dvc` (downloads the pinned "
    "anet_1.3.tar.gz to data.activitynet.archive, unpacked on first use), or put an archive you have there; "
    "see docs/data.md"
)


def open_dataset(cfg: dict[str, Any]) -> FeatureDataset:
    """The dataset described by ``cfg["data"]`` (a resolved configuration)."""
    data = cfg["data"]
    source = data["source"]
    options = {
        "segment_policy": data["segment_policy"],
        "min_snippets": data["min_snippets"],
        "holdout_fraction": data["holdout_fraction"],
        "holdout_seed": data["holdout_seed"],
        "cache_mb": data["cache_mb"],
    }
    if source == "activitynet":
        from talbench.data.activitynet import open_activitynet

        anet = data["activitynet"]
        if not (Path(anet["root"]) / anet["feature_dir"]).is_dir() and Path(anet["archive"]).is_file():
            install_activitynet_archive(anet["archive"], anet["root"], md5=anet["archive_md5"])
        return open_activitynet(anet, blocked_spec=data["missing_files"], hint=ACTIVITYNET_FETCH_HINT, **options)
    if source == "synthetic":
        variant = data.get("synthetic_variant")
        root = Path(data["synthetic_root"]) / synthetic_name(data["profile"], variant)
        hint = (f"generate it with `talbench synth --profile {data['profile']}"
                + (f" --variant {variant}" if variant else "") + "` (or `dvc repro`)")
        meta = synthetic_meta(root)
        taxonomy = synthetic_taxonomy(root, meta)
        if meta.get("layout") == "activitynet":
            return _synthetic_activitynet(data, root, meta, taxonomy, hint, options)
    elif source == "thumos14":
        root = Path(data["thumos14_root"])
        if not (root / THUMOS14_ANNOTATION_FILE).is_file() and Path(data["thumos14_archive"]).is_file():
            install_thumos14_archive(data["thumos14_archive"], root, md5=data["thumos14_archive_md5"])
        hint = FETCH_HINT
        taxonomy = THUMOS14_CLASSES
    else:
        raise DataError.at(
            "params.yaml",
            f"unknown data source '{source}' (synthetic, thumos14 or activitynet)",
            field="data.source",
        )
    annotation_file = root / THUMOS14_ANNOTATION_FILE
    feature_dir = root / data["feature_dir"]
    if not annotation_file.is_file() or not feature_dir.is_dir():
        absent = annotation_file if not annotation_file.is_file() else feature_dir
        raise DataError.at(absent, f"the {source} dataset is not there: {hint}", field="data.source")
    layout = FeatureLayout.two_stream(
        feature_dir, data["feature_dim"], data["feature_stride"], data["clip_frames"]
    )
    return FeatureDataset(
        load_thumos14_annotations(annotation_file, taxonomy),
        layout,
        blocked=read_block_list(data["missing_files"], root),
        name=f"{source}" if source == "thumos14" else f"{source}-{root.name}",
        **options,
    )


class DatasetCache:
    """One opened dataset per data configuration: ``cache(cfg)`` opens ``cfg["data"]`` once per process."""

    def __init__(self) -> None:
        self._datasets: dict[str, FeatureDataset] = {}

    def __call__(self, cfg: dict[str, Any]) -> FeatureDataset:
        from talbench.config import config_hash

        key = config_hash(cfg["data"])
        if key not in self._datasets:
            self._datasets[key] = open_dataset(cfg)
        return self._datasets[key]


def synthetic_name(profile: str, variant: str | None = None) -> str:
    """The folder (under ``data.synthetic_root``) of a profile's synthetic benchmark or of its ``variant``."""
    return f"{profile}-{variant}" if variant else profile


def synthetic_meta(root: Path) -> dict[str, Any]:
    """``synth_meta.json`` of a synthetic benchmark (empty when absent)."""
    path = root / "synth_meta.json"
    return read_json(path) if path.is_file() else {}


def synthetic_taxonomy(root: Path, meta: dict[str, Any]) -> list[str] | None:
    """The synthetic benchmark's class list from ``synth_meta.json`` (classes may have no instance in a
    small profile, so the taxonomy cannot always be read off the annotations)."""
    if not meta:
        return None
    classes = meta.get("classes")
    if not isinstance(classes, list):
        raise DataError.at(root / "synth_meta.json", "expected a list of class names", field="classes")
    return [str(c) for c in classes]


def _synthetic_activitynet(data: dict[str, Any], root: Path, meta: dict[str, Any], taxonomy: list[str] | None,
                           hint: str, options: dict[str, Any]) -> FeatureDataset:
    """A synthetic profile in ActionFormer's ActivityNet layout, read on the grid of ``data.activitynet`` (the
    real features' grid, so a model sees the same layout on both); a profile written on another grid is an error."""
    from talbench.data.activitynet import open_activitynet

    anet = {**data["activitynet"], "root": str(root), "annotation_format": "actionformer"}
    synth = meta.get("synth", {})
    written = {"feature_dim": 2 * synth.get("feature_dim", 0), "feature_stride": synth.get("feature_stride"),
               "clip_frames": synth.get("clip_frames"), "feature_fps": synth.get("fps")}  # fmt: skip
    for key, value in written.items():
        if value != anet[key]:
            raise DataError.at(
                root / "synth_meta.json",
                f"written with {key} {value}, but data.activitynet.{key} is {anet[key]} (regenerate the profile)",
                field=f"synth.{'fps' if key == 'feature_fps' else key}",
            )
    return open_activitynet(anet, taxonomy=taxonomy, blocked_spec=data["missing_files"], hint=hint,
                            name=f"synthetic-{root.name}", **options)


def data_checksum(cfg: dict[str, Any]) -> str:
    """Stable fingerprint of the configured dataset's contents (:meth:`FeatureDataset.checksum`)."""
    return open_dataset(cfg).checksum()


def read_block_list(spec: str | list[str] | None, root: Path) -> list[str]:
    """Video ids to skip: ``None``, a list of ids, or an OpenTAD-style ``missing_files.txt`` (one id per
    line, ``.npy`` suffixes allowed) given relative to the dataset root or the working directory."""
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        return [str(v) for v in spec]
    path = Path(spec)
    for candidate in (root / path, path):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8").splitlines()
            return [line.strip().removesuffix(".npy") for line in lines if line.strip()]
    raise DataError.at(
        path,
        "block list not found (relative to the dataset root or the working directory)",
        field="data.missing_files",
    )


def file_md5(path: str | Path, progress: bool = True) -> str:
    path = Path(path)
    digest = hashlib.md5()
    with open(path, "rb") as f, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"md5 {path.name}", total=path.stat().st_size)
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            bar.advance(task, len(chunk))
    return digest.hexdigest()


def install_thumos14_archive(
    archive: str | Path, root: str | Path, md5: str | None, progress: bool = True
) -> Path:
    """Verify ``thumos.tar.gz`` (ActionFormer release) against ``md5`` and unpack it into ``root`` in the
    ActionFormer layout (``annotations/thumos14.json``, ``i3d_features/*.npy``), atomically. ``root`` must be
    new, empty or an earlier installation: a folder of the user's is refused, nothing in it removed."""
    return _install_archive(archive, root, md5, THUMOS14_ANNOTATION_FILE, FETCH_HINT, "data.thumos14_archive",
                            progress)


def install_activitynet_archive(
    archive: str | Path, root: str | Path, md5: str | None, progress: bool = True
) -> Path:
    """Verify ``anet_1.3.tar.gz`` (ActionFormer release) against ``md5`` and unpack it into ``root``
    (``annotations/anet1.3_tsp_filtered.json``, ``tsp_features/v_<id>.npy``), atomically."""
    from talbench.data.activitynet import ACTIONFORMER_ANNOTATION_FILE

    return _install_archive(archive, root, md5, Path("annotations") / ACTIONFORMER_ANNOTATION_FILE,
                            ACTIVITYNET_FETCH_HINT, "data.activitynet.archive", progress)


def _install_archive(archive: str | Path, root: str | Path, md5: str | None, anchor: Path, hint: str,
                     key: str, progress: bool) -> Path:
    """md5-check ``archive`` and unpack the folder holding ``anchor`` (``<folder>/<anchor>`` inside it) into
    ``root``, atomically (a failed unpack leaves nothing; a folder of the user's is refused)."""
    archive, root = Path(archive), Path(root)
    if not archive.is_file():
        raise DataError.at(archive, f"archive not found; {hint}", field=key)
    if md5 is not None:
        found = file_md5(archive, progress)
        if found != md5:
            raise DataError.at(
                archive,
                f"md5 {found} differs from the pinned {md5} (incomplete or different download)",
                field="md5",
            )
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        anchors = [m.name for m in members if m.name.endswith(anchor.as_posix())]
        if not anchors:
            raise DataError.at(archive, f"no {anchor.as_posix()} inside", field="members")
        prefix = anchors[0][: -len(anchor.as_posix())]
        chosen = [m for m in members if m.name.startswith(prefix) and m.name != prefix.rstrip("/")]
        output = atomic_dir(root, previous_output=lambda p: (p / anchor).is_file(), what=f"the features of {key}")
        with output as tmp, Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"unpacking {archive.name}", total=len(chosen))
            for member in chosen:
                member.name = member.name[len(prefix) :]
                tar.extract(member, tmp, filter="data")
                bar.advance(task)
    return root
