"""FeatureDataset on tiny on-disk fixtures: streams, time grid, cache, every load-time error, open_dataset."""

from __future__ import annotations

import copy
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers.paths import SHARED_DATA

from talbench.config import load_params, resolve
from talbench.data import install_thumos14_archive, open_dataset, read_block_list
from talbench.data.annotations import THUMOS14_CLASSES, load_thumos14_annotations
from talbench.data.dataset import FeatureDataset, FeatureLayout
from talbench.errors import DataError

SHARED = SHARED_DATA
DIM = 3  # per stream in the fixtures (real I3D: 1024)


def _database() -> dict:
    def video(subset, duration, fps, *anns):
        return {
            "subset": subset,
            "duration": duration,
            "fps": fps,
            "annotations": [
                {"label": lab, "segment": [s, e], "label_id": THUMOS14_CLASSES.index(lab)}
                for lab, s, e in anns
            ],
        }

    return {
        "video_validation_0000001": video("Validation", 4.0, 30.0, ("HighJump", 0.5, 1.5)),
        "video_validation_0000002": video(
            "Validation", 3.0, 25.0, ("Diving", 1.0, 2.0), ("Diving", 2.5, 3.5)
        ),
        "video_validation_0000003": video("Validation", 2.0, 30.0),
        "video_test_0000001": video("Test", 5.0, 29.97, ("Billiards", 0.2, 0.9), ("Billiards", 4.0, 6.0)),
    }


def make_thumos_layout(root: Path, cells: int = 12, database: dict | None = None) -> Path:
    """A tiny dataset in the ActionFormer THUMOS14 layout; features encode (video, cell, column)."""
    database = database or _database()
    (root / "annotations").mkdir(parents=True)
    (root / "i3d_features").mkdir()
    (root / "annotations" / "thumos14.json").write_text(json.dumps({"database": database}))
    for k, video_id in enumerate(sorted(database)):
        cell = np.arange(cells, dtype=np.float32)[:, None]
        column = np.arange(2 * DIM, dtype=np.float32)[None, :]
        np.save(root / "i3d_features" / f"{video_id}.npy", 1000 * k + 10 * cell + column)
    return root


def make_dataset(root: Path, **options) -> FeatureDataset:
    annotations = load_thumos14_annotations(root / "annotations" / "thumos14.json", THUMOS14_CLASSES)
    layout = FeatureLayout.two_stream(root / "i3d_features", DIM, stride=4, clip_frames=16)
    return FeatureDataset(annotations, layout, **options)


@pytest.fixture
def root(tmp_path):
    return make_thumos_layout(tmp_path / "thumos14")


def test_streams_grid_and_splits(root):
    ds = make_dataset(root, holdout_fraction=0.34, holdout_seed=0)
    vid = "video_test_0000001"
    both = ds.features(vid, "both")
    assert both.dtype == np.float32 and both.shape == (12, 2 * DIM)
    np.testing.assert_array_equal(ds.features(vid, "rgb"), both[:, :DIM])
    np.testing.assert_array_equal(ds.features(vid, "flow"), both[:, DIM:])
    k = sorted(_database()).index(vid)
    assert ds.features(vid, "flow")[2, 0] == 1000 * k + 10 * 2 + DIM  # cell 2, first flow column
    assert ds.stream_dim("rgb") == DIM and ds.stream_dim("both") == 2 * DIM
    # centre of cell i = (i * 4 + 8) / fps at the video's own fps
    np.testing.assert_allclose(ds.snippet_centers(vid), (np.arange(12) * 4 + 8) / 29.97)
    np.testing.assert_allclose(ds.snippet_centers("video_validation_0000002")[:2], [8 / 25, 12 / 25])
    assert ds.fps("video_validation_0000002") == 25.0 and ds.duration(vid) == 5.0
    assert ds.video_ids("train") == [f"video_validation_000000{i}" for i in (1, 2, 3)]
    assert ds.video_ids("test") == [vid]
    assert len(ds.video_ids("holdout")) == 1 and len(ds.video_ids("train_fit")) == 2
    assert set(ds.video_ids("holdout")) | set(ds.video_ids("train_fit")) == set(ds.video_ids("train"))
    train = ds.instances("train")
    assert list(train.columns) == ["video_id", "label", "label_id", "start", "end"]
    # segment policy clip on the training side: Diving (2.5, 3.5) in a 3.0 s video becomes (2.5, 3.0)
    assert train[["start", "end"]].to_numpy().tolist() == [[0.5, 1.5], [1.0, 2.0], [2.5, 3.0]]
    assert train["label_id"].tolist() == [11, 7, 7]
    # the test ground truth is as annotated, (4.0, 6.0) past the 5 s end included
    assert ds.instances("test")[["start", "end"]].to_numpy().tolist() == [[0.2, 0.9], [4.0, 6.0]]
    assert (ds.report.clipped, ds.report.dropped, ds.report.kept_in_test) == (1, 0, 1)
    with pytest.raises(DataError, match="unknown split 'val'"):
        ds.video_ids("val")
    with pytest.raises(DataError, match="field 'stream': unknown stream 'audio'"):
        ds.features(vid, "audio")


def test_cache_is_read_only_and_bounded(root):
    ds = make_dataset(root, cache_mb=2 * 12 * 2 * DIM * 4 / 2**20)  # room for two videos' two streams
    first = ds.features("video_test_0000001")
    assert ds.features("video_test_0000001") is first  # served from the cache
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = 1.0
    rgb = ds.features("video_test_0000001", "rgb")  # a copy of the stream's columns only, not a view of the file
    assert rgb.flags.c_contiguous and rgb.base is None and np.array_equal(rgb, first[:, :DIM])
    for vid in ds.video_ids("train"):
        ds.features(vid)
    assert len(ds._cache) == 2 and ("video_test_0000001", "both") not in ds._cache
    assert ds._cache_bytes <= ds._cache_limit
    assert ds.num_snippets("video_validation_0000003") == 12


def test_missing_files_all_listed_and_block_list(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for vid in ("video_validation_0000002", "video_test_0000001"):
        (root / "i3d_features" / f"{vid}.npy").unlink()
    with pytest.raises(DataError) as err:
        make_dataset(root)
    message = str(err.value)
    assert str(root / "i3d_features") in message and "field 'features'" in message
    assert "2 of 4 feature files are missing" in message
    assert "video_validation_0000002.npy, video_test_0000001.npy;" in message
    listing = tmp_path / "scratch" / "missing_files.txt"
    assert f"data.missing_files: {listing}" in message
    assert listing.read_text() == "video_validation_0000002.npy\nvideo_test_0000001.npy\n"
    (root / "missing_files.txt").write_text("video_validation_0000002.npy\nvideo_test_0000001\n")
    blocked = read_block_list("missing_files.txt", root)
    ds = make_dataset(root, blocked=blocked)
    assert ds.video_ids("train") == ["video_validation_0000001", "video_validation_0000003"]
    assert ds.video_ids("test") == []
    assert len(ds.instances("test")) == 2  # evaluation ground truth keeps the blocked test video
    assert ds.report.blocked_videos == ["video_test_0000001", "video_validation_0000002"]
    assert "2 videos blocked" in ds.report.summary()
    with pytest.raises(DataError, match="field 'data.missing_files': block list not found"):
        read_block_list("absent.txt", root)


@pytest.mark.parametrize(
    ("array", "field", "problem"),
    [
        (np.zeros((12, 2 * DIM + 1), np.float32), "feature_dim", r"expected shape \(T, 6\), got \(12, 7\)"),
        (np.zeros(12, np.float32), "feature_dim", r"expected shape \(T, 6\), got \(12,\)"),
        (np.zeros((12, 2 * DIM), np.int32), "dtype", "expected floating point features, got int32"),
        (np.zeros((5, 2 * DIM), np.float32), "num_snippets", "5 snippets, fewer than data.min_snippets = 8"),
    ],
)
def test_bad_feature_file(root, array, field, problem):
    """Found from the file's header when the dataset opens (before any run is created)."""
    vid = "video_validation_0000002"
    path = root / "i3d_features" / f"{vid}.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=problem) as err:
        make_dataset(root)
    assert f"{path}: video '{vid}', field '{field}'" in str(err.value)


def test_nan_and_inf_and_validate_all(root):
    path = root / "i3d_features" / "video_test_0000001.npy"
    array = np.load(path)
    array[3, 1], array[7, 4] = np.nan, np.inf
    np.save(path, array)
    other = root / "i3d_features" / "video_validation_0000001.npy"
    np.save(other, np.full((12, 2 * DIM), np.inf, np.float32))
    ds = make_dataset(root)  # NaN/Inf need the data: found on first load
    with pytest.raises(DataError) as err:
        ds.features("video_test_0000001")
    assert f"{path}: video 'video_test_0000001', field 'features': 2 NaN/Inf values in 2 snippets" in str(
        err.value
    )
    assert "first at snippet 3" in str(err.value)
    with pytest.raises(DataError) as err:
        ds.validate_all(progress=False)
    message = str(err.value)
    assert message.startswith("2 of 4 feature files are invalid")
    assert "video 'video_validation_0000001', field 'features': 72 NaN/Inf values in 12 snippets" in message
    assert "video 'video_test_0000001', field 'features'" in message


def test_many_missing_files_make_one_short_line_and_a_block_list(tmp_path, monkeypatch):
    """400 missing videos used to make one line of 11,000 characters; the full list goes to a file that
    works as data.missing_files."""
    monkeypatch.chdir(tmp_path)
    database = {f"video_validation_{i:07d}": {"subset": "Validation", "duration": 4.0, "fps": 30.0,
                                              "annotations": [{"label": "HighJump", "segment": [0.5, 1.5]}]}
                for i in range(1, 401)}
    database["video_test_0000001"] = _database()["video_test_0000001"]
    root = make_thumos_layout(tmp_path / "thumos14", database=database)
    missing = sorted(v for v in database if v.startswith("video_validation"))[:-1]  # all training but one
    for vid in missing:
        (root / "i3d_features" / f"{vid}.npy").unlink()
    with pytest.raises(DataError) as err:
        make_dataset(root)
    message = str(err.value)
    assert len(message) < 600 and "\n" not in message
    assert "399 of 401 feature files are missing" in message and "and 394 more" in message
    blocked = read_block_list(str(tmp_path / "scratch" / "missing_files.txt"), root)
    assert blocked == missing
    assert make_dataset(root, blocked=blocked).video_ids("train") == ["video_validation_0000400"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (bytes(range(256)) * 4, r"not a NumPy \.npy file \(no \.npy header\)"),
        ("object array", "holds Python objects, not numbers"),
        ("truncated", r"unreadable or truncated \.npy array"),
    ],
)
def test_unreadable_feature_file_is_named(root, content, problem):
    """A zero-byte .npy used to end `talbench run` with "Aborted." (exit 1) and random bytes with numpy's advice
    to load the file with pickle, both after the runs were created; now opening the dataset names the file."""
    vid = "video_validation_0000002"
    path = root / "i3d_features" / f"{vid}.npy"
    if content == "object array":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=problem) as err:
        make_dataset(root)
    message = str(err.value)
    assert message.startswith(f"{path}: video '{vid}', field 'features': ") and "pickle" not in message


def test_no_training_video_or_annotation_is_an_error(tmp_path):
    """An empty database or no training videos used to fail deep in training ("need at least one array to
    stack"), after the MLflow runs were created; now opening the dataset says so."""
    test_only = {k: v for k, v in _database().items() if k.startswith("video_test")}
    unannotated = {k: {**v, "annotations": []} if k.startswith("video_validation") else v
                   for k, v in _database().items()}
    train_only = {k: v for k, v in _database().items() if k.startswith("video_validation")}
    for name, database, problem in (
        ("empty", {}, "field 'database': no training video"),
        ("test_only", test_only, "field 'database': no training video"),
        ("train_only", train_only, "field 'database': no test video"),
        ("unannotated", unannotated, "field 'annotations': none of the 3 training videos has an annotation"),
    ):
        root = tmp_path / name
        (root / "annotations").mkdir(parents=True)
        (root / "i3d_features").mkdir()
        (root / "annotations" / "thumos14.json").write_text(json.dumps({"database": database}))
        with pytest.raises(DataError, match=problem) as err:
            make_dataset(root)
        assert str(err.value).startswith(str(root / "annotations" / "thumos14.json"))


def test_validate_all_passes_and_checksum(root):
    ds = make_dataset(root)
    assert ds.validate_all(progress=False) is ds.report
    checksum = ds.checksum()
    assert checksum == make_dataset(root).checksum() and len(checksum) == 12
    np.save(root / "i3d_features" / "video_test_0000001.npy", np.zeros((13, 2 * DIM), np.float32))
    assert make_dataset(root).checksum() != checksum


def test_checksum_follows_contents_and_rereads_only_changed_files(root, monkeypatch):
    """Features rewritten in place with the same shape (same names, same sizes) are other data: the checksum
    changes; unchanged files are not read again (their hashes are cached by path, size and times)."""
    import talbench.data.dataset as dataset_module

    checksum = make_dataset(root).checksum()
    read = []
    real_sha1 = dataset_module.file_sha1

    def counting_sha1(path):
        read.append(Path(path).name)
        return real_sha1(path)

    monkeypatch.setattr(dataset_module, "file_sha1", counting_sha1)
    assert make_dataset(root).checksum() == checksum and read == []
    path = root / "i3d_features" / "video_validation_0000002.npy"
    size = path.stat().st_size
    np.save(path, np.load(path) + 1.0)  # same shape, same size, other values
    assert path.stat().st_size == size
    assert make_dataset(root).checksum() != checksum
    assert read == ["video_validation_0000002.npy"]


def _cfg(**data) -> dict:
    cfg = resolve(load_params(), "smoke")
    cfg = copy.deepcopy(cfg)
    cfg["data"].update(data)
    return cfg


def test_open_dataset_sources(tmp_path):
    make_thumos_layout(tmp_path / "synthetic" / "smoke")
    (tmp_path / "synthetic" / "smoke" / "synth_meta.json").write_text(
        json.dumps({"classes": THUMOS14_CLASSES})
    )
    cfg = _cfg(source="synthetic", synthetic_root=str(tmp_path / "synthetic"), feature_dim=DIM)
    ds = open_dataset(cfg)
    assert ds.classes == THUMOS14_CLASSES and len(ds.video_ids("train")) == 3
    cfg = _cfg(source="synthetic", synthetic_root=str(tmp_path / "nowhere"), feature_dim=DIM)
    with pytest.raises(
        DataError, match="the synthetic dataset is not there: generate it with `talbench synth"
    ):
        open_dataset(cfg)
    cfg = _cfg(source="thumos14", thumos14_root=str(tmp_path / "thumos14"),
               thumos14_archive=str(tmp_path / "none.tar.gz"))  # fmt: skip
    with pytest.raises(DataError) as err:
        open_dataset(cfg)
    assert "thumos14.json" in str(err.value) and "`dvc update datasets.dvc`" in str(err.value)
    with pytest.raises(DataError, match="unknown data source 'ucf'"):
        open_dataset(_cfg(source="ucf"))


def test_archive_is_verified_and_unpacked(tmp_path):
    source = make_thumos_layout(tmp_path / "release" / "thumos")
    archive = tmp_path / "thumos.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="thumos")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=f"field 'md5': md5 {md5} differs from the pinned 375f76ff"):
        install_thumos14_archive(
            archive, tmp_path / "out", md5="375f76ffbf7447af1035e694971ec9b2", progress=False
        )
    assert not (tmp_path / "out").exists()
    # open_dataset unpacks the archive named in data.thumos14_archive on first use
    cfg = _cfg(source="thumos14", thumos14_root=str(tmp_path / "out"), thumos14_archive=str(archive),
               thumos14_archive_md5=md5, feature_dim=DIM)  # fmt: skip
    ds = open_dataset(cfg)
    assert (tmp_path / "out" / "annotations" / "thumos14.json").is_file()
    assert ds.video_ids("test") == ["video_test_0000001"]
    np.testing.assert_array_equal(ds.features("video_test_0000001"), np.load(source / "i3d_features" /
                                  "video_test_0000001.npy"))  # fmt: skip


def test_archive_never_unpacks_over_a_users_folder(tmp_path):
    """data.thumos14_root used to be replaced wholesale (the same helper as synth --out)."""
    from talbench.errors import ConfigError

    source = make_thumos_layout(tmp_path / "release" / "thumos")
    archive = tmp_path / "thumos.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="thumos")
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="mine: not empty and not a previous output of this command"):
        install_thumos14_archive(archive, root, md5=None, progress=False)
    assert [p.name for p in root.iterdir()] == ["notes.txt"]
    install_thumos14_archive(archive, tmp_path / "out", md5=None, progress=False)
    (tmp_path / "out" / "notes.txt").write_text("added later")
    install_thumos14_archive(archive, tmp_path / "out", md5=None, progress=False)  # an earlier installation
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["annotations", "i3d_features", "notes.txt"]


def test_real_annotations_with_stand_in_features(tmp_path):
    """The real THUMOS14 annotation file with tiny stand-in features: 412 videos, all splits."""
    root = tmp_path / "thumos14"
    (root / "i3d_features").mkdir(parents=True)
    (root / "annotations").mkdir()
    real = SHARED / "thumos14" / "annotations" / "thumos14.json"
    (root / "annotations" / "thumos14.json").write_bytes(real.read_bytes())
    for vid in json.loads(real.read_text())["database"]:
        np.save(root / "i3d_features" / f"{vid}.npy", np.zeros((8, 2 * DIM), np.float32))
    ds = open_dataset(_cfg(source="thumos14", thumos14_root=str(root), feature_dim=DIM))
    assert (len(ds.video_ids("train")), len(ds.video_ids("test"))) == (200, 212)
    assert len(ds.instances("test")) == 3358 and len(ds.instances("train")) == 3007 - 4
    assert len(ds.video_ids("holdout")) == 40
    assert set(ds.video_ids("holdout")).isdisjoint(ds.video_ids("test"))
    assert ds.video_ids("holdout") == open_dataset(_cfg(source="thumos14", thumos14_root=str(root),
                                                        feature_dim=DIM)).video_ids("holdout")  # fmt: skip
    assert ds.report.to_dict()["dropped"] == 4
