"""The embedded synthetic benchmark (issue 3): determinism, layout, latents, statistics, premises, CLI."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from talbench.cli import app
from talbench.config import PARAMS_FILE, deep_merge, load_params, resolve
from talbench.data.synthetic import PHASES, generate, parse_config
from talbench.data.synthetic.features import ar1, soft_box
from talbench.data.synthetic.layout import sample_durations
from talbench.errors import ConfigError, DataError


def synth_cfg(profile: str, **overrides) -> dict:
    return deep_merge(resolve(load_params(), profile)["synth"], overrides)


def digest(root: Path) -> dict[str, str]:
    return {
        str(f.relative_to(root)): hashlib.sha1(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*")) if f.is_file()
    }


def database(root: Path) -> dict:
    return json.loads((root / "annotations" / "thumos14.json").read_text())["database"]


def latents(root: Path, video_id: str) -> dict[str, np.ndarray]:
    with np.load(root / "latents" / f"{video_id}.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "tiny"
    generate(synth_cfg("tiny"), root)
    return root


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("synth") / "smoke"
    report = generate(synth_cfg("smoke"), root)
    return root, report


# ------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_other_seed_other_bytes(tiny, tmp_path):
    again = tmp_path / "again"
    generate(synth_cfg("tiny"), again)
    assert digest(again) == digest(tiny)
    other = tmp_path / "other"
    generate(synth_cfg("tiny", seed=1), other)
    first = "i3d_features/video_test_0000001.npy"
    assert digest(other)[first] != digest(tiny)[first]


def test_a_video_does_not_depend_on_the_number_of_videos(tiny, tmp_path):
    fewer = tmp_path / "fewer"
    generate(synth_cfg("tiny", videos={"train": 2, "test": 1}), fewer)
    for name in ("i3d_features/video_validation_0000002.npy", "i3d_features/video_test_0000001.npy"):
        assert (fewer / name).read_bytes() == (tiny / name).read_bytes()


@pytest.mark.parametrize("cpu_env", [
    {"OPENBLAS_CORETYPE": "Haswell"},  # another OpenBLAS kernel (the default here may be SkylakeX)
    {"OPENBLAS_CORETYPE": "Prescott"},  # the oldest, no SIMD
    {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL"},  # numpy's own SIMD paths without AVX-512
])
def test_the_same_bytes_whatever_the_cpu_kernels(tiny, tmp_path, cpu_env):
    """The data are identical under other BLAS kernels and numpy SIMD paths, so dvc.lock's md5 certifies the
    synthetic benchmark across machines (a BLAS product and float32 transcendentals differ in their last bits)."""
    import os
    import subprocess
    import sys

    code = ("import pathlib, sys; from talbench.config import load_params, resolve; "
            "from talbench.data.synthetic import generate; "
            "generate(resolve(load_params(), 'tiny')['synth'], pathlib.Path(sys.argv[1]))")
    env = {**os.environ, **cpu_env}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "tiny")], env=env, check=True, cwd=PARAMS_FILE.parent)
    assert digest(tmp_path / "tiny") == digest(tiny)


def test_features_sit_on_the_storage_grid(tiny):
    from talbench.data.synthetic.features import GRID

    features = np.load(tiny / "i3d_features" / "video_test_0000001.npy")
    assert features.dtype == np.float32
    np.testing.assert_array_equal(np.round(features.astype(np.float64) / GRID) * GRID, features)


def test_fixed_order_matmul_is_the_product_summed_in_index_order():
    from talbench.data.synthetic.features import fixed_order_matmul

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    np.testing.assert_allclose(fixed_order_matmul(a, b), a @ b, rtol=1e-12)
    expected = np.zeros((5, 3))
    for k in range(7):
        expected = expected + np.outer(a[:, k], b[k])
    np.testing.assert_array_equal(fixed_order_matmul(a, b), expected)


# ------------------------------------------------------------------ layout
def test_actionformer_thumos14_layout(tiny):
    cfg = synth_cfg("tiny")
    meta = json.loads((tiny / "synth_meta.json").read_text())
    db = database(tiny)
    ids = sorted(db)
    assert ids[:2] == ["video_test_0000001", "video_test_0000002"]
    assert sum(v["subset"] == "Validation" for v in db.values()) == cfg["videos"]["train"]
    assert sum(v["subset"] == "Test" for v in db.values()) == cfg["videos"]["test"]
    for video_id, video in db.items():
        assert re.fullmatch(r"video_(validation|test)_\d{7}", video_id)
        assert video["subset"] == ("Validation" if "validation" in video_id else "Test")
        assert video["fps"] == 30.0
        features = np.load(tiny / "i3d_features" / f"{video_id}.npy")
        assert features.dtype == np.float32 and features.shape[1] == 2 * cfg["feature_dim"]
        # duration = (stride * (T - 1) + clip) / fps: the I3D grid of the real files
        assert features.shape[0] == round((video["duration"] * 30.0 - 16) / 4) + 1
        assert video["annotations"], video_id
        for ann in video["annotations"]:
            assert set(ann) == {"label", "segment", "segment(frames)", "label_id"}
            start, end = ann["segment"]
            assert 0 <= start < end <= video["duration"]
            assert ann["segment(frames)"] == pytest.approx([start * 30.0, end * 30.0], abs=0.06)
            assert meta["classes"][ann["label_id"]] == ann["label"]
    assert sorted(p.stem for p in (tiny / "i3d_features").glob("*.npy")) == ids
    assert sorted(p.stem for p in (tiny / "latents").glob("*.npz")) == ids


def test_the_project_loader_reads_it_unchanged(tiny):
    from talbench.data import open_dataset

    cfg = resolve(load_params(), "tiny")
    cfg["data"].update(source="synthetic", synthetic_root=str(tiny.parent), profile="tiny")
    dataset = open_dataset(cfg)
    assert len(dataset.video_ids("train")) == 6 and len(dataset.video_ids("test")) == 6
    video = dataset.video_ids("test")[0]
    assert dataset.features(video, "rgb").shape[1] == 16 and dataset.features(video, "both").shape[1] == 32
    lat = latents(tiny, video)
    assert dataset.snippet_centers(video).shape == lat["phase"].shape
    assert len(dataset.instances("test")) == sum(len(v["annotations"]) for v in database(tiny).values() if v["subset"] == "Test")


# ------------------------------------------------------------------ latents
def test_latent_sidecar_matches_annotations(tiny):
    for video_id, video in database(tiny).items():
        lat = latents(tiny, video_id)
        t = (np.arange(lat["phase"].size) * 4 + 8) / 30.0
        anns = video["annotations"]
        assert lat["instance_label"].tolist() == [a["label_id"] for a in anns]
        inside = lat["instance"] >= 0
        assert np.array_equal(inside, lat["phase"] > 0)
        for j, ann in enumerate(anns):
            start, end = ann["segment"]
            cells = lat["instance"] == j
            assert cells.any(), (video_id, j)
            assert np.array_equal(cells, (t >= start) & (t < end))
            # the video's setting is visible inside every instance; phases run onset <= body <= key <= offset
            assert (lat["context"][cells] >= 0).all()
            assert (np.diff(lat["phase"][cells]) >= 0).all()
            assert lat["phase_bounds"][j, 0] == start and lat["phase_bounds"][j, -1] == end
        assert set(np.unique(lat["phase"])) <= set(range(len(PHASES)))
        # one setting per video (a venue), a class of the family of the video's classes
        setting = set(lat["context"].tolist()) - {-1}
        assert len(setting) == 1
        family = json.loads((tiny / "synth_meta.json").read_text())["family_of_class"]
        assert {family[c] for c in setting} == {family[a["label_id"]] for a in anns}


def test_class_context_only_around_the_instances(tiny, tmp_path):
    """``context.within_instances: false`` hides the class-specific context while an instance is on (CLTDR-GMG's
    classes told apart by their surroundings); the layout, the family scene and every other activation stay."""
    from talbench.data.synthetic.features import latent_activations
    from talbench.data.synthetic.layout import sample_layout
    from talbench.data.synthetic.taxonomy import build_taxonomy

    around = tmp_path / "around"
    generate(synth_cfg("tiny", context={"within_instances": False}), around)
    assert database(around) == database(tiny)
    assert json.loads((around / "synth_meta.json").read_text())["synth"]["context"]["within_instances"] is False
    assert "within_instances" not in json.loads((tiny / "synth_meta.json").read_text())["synth"]["context"]
    for video_id in database(tiny):
        lat, lat_around = latents(tiny, video_id), latents(around, video_id)
        inside = lat["instance"] >= 0
        assert (lat_around["context"][inside] == -1).all()
        assert np.array_equal(lat_around["context"][~inside], lat["context"][~inside])

    cfgs = {flag: parse_config(synth_cfg("tiny", context={"within_instances": flag})) for flag in (True, False)}
    taxonomy = build_taxonomy(cfgs[True], np.random.default_rng([0, 0, 0]))
    blur = cfgs[True].context.blur_s

    def cells_deep_and_far(layout):  # cells 5 edge scales inside an instance, and 5 away from every instance
        t = layout.centers(cfgs[True])[:, None]
        lo, hi = layout.start[None], layout.end[None]
        deep = ((t > lo + 5 * blur) & (t < hi - 5 * blur)).any(axis=1)
        return deep, ~((t > lo - 5 * blur) & (t < hi + 5 * blur)).any(axis=1)

    layouts = (sample_layout(cfgs[True], taxonomy, np.random.default_rng([0, 1, i])) for i in range(200))
    layout = next(lay for lay in layouts if all(cells.any() for cells in cells_deep_and_far(lay)))
    deep, far = cells_deep_and_far(layout)
    act = {flag: latent_activations(layout, cfg, taxonomy, np.random.default_rng(1)) for flag, cfg in cfgs.items()}
    column = taxonomy.context_atom[layout.setting]
    others = np.arange(taxonomy.num_atoms) != column
    assert np.array_equal(act[True][:, others], act[False][:, others])
    assert act[True][deep, column].min() > 0.5 and act[False][deep, column].max() < 0.01
    np.testing.assert_allclose(act[False][far, column], act[True][far, column], atol=0.01)


def test_a_family_reads_its_variant_of_the_data(tiny, tmp_path):
    """params.yaml ``synthetic_variants``: `talbench synth --variant long_around` writes the profile's data with
    the variant's overrides to <profile>-long_around, and only the families it lists read it (their rows' data section
    names it); the others' configuration, and so their hashes, stay as they were."""
    from talbench.config import config_hash
    from talbench.data import open_dataset
    from talbench.runners.families import FAMILIES, synthetic_variant

    params = load_params()
    root = tmp_path / "synthetic"
    result = CliRunner().invoke(app, ["synth", "--profile", "tiny", "--variant", "long_around", "--params",
                                      str(PARAMS_FILE), "--out", str(root / "tiny-long_around")])
    assert result.exit_code == 0, result.output
    expected = tmp_path / "expected"
    generate(synth_cfg("tiny", **params["synthetic_variants"]["long_around"]["synth"]), expected)
    assert (root / "tiny-long_around" / "synth_meta.json").read_bytes() == (expected / "synth_meta.json").read_bytes()
    assert database(root / "tiny-long_around") == database(expected)

    def median_length(data: Path) -> float:
        return float(np.median([a["segment"][1] - a["segment"][0] for video in database(data).values()
                                for a in video["annotations"]]))

    assert median_length(root / "tiny-long_around") > median_length(tiny)  # its longer actions (tiny: <= 10 s)

    cfg = resolve(params, "tiny", {"data": {"synthetic_root": str(root)}})
    assert synthetic_variant(cfg, "one_stage") == "long_around" and synthetic_variant(cfg, "dnet") is None
    one_stage, dnet = FAMILIES["one_stage"].scoped(cfg), FAMILIES["dnet"].scoped(cfg)
    assert one_stage["data"] == {**cfg["data"], "synthetic_variant": "long_around"} and dnet["data"] == cfg["data"]
    assert config_hash(dnet) == config_hash({s: cfg[s] for s in FAMILIES["dnet"].scope})
    dataset = open_dataset(one_stage)
    assert dataset.name == "synthetic-tiny-long_around" and dataset.checksum() != open_dataset(
        {**cfg, "data": {**cfg["data"], "synthetic_root": str(tiny.parent)}}).checksum()
    with pytest.raises(DataError, match=r"talbench synth --profile tiny --variant other"):
        open_dataset({**one_stage, "data": {**one_stage["data"], "synthetic_variant": "other"}})

    real = {**cfg, "data": {**cfg["data"], "source": "thumos14"}}
    assert FAMILIES["one_stage"].scoped(real)["data"] == real["data"]  # real features have no variants
    twice = {**cfg, "synthetic_variants": {"a": {"families": ["one_stage"]}, "b": {"families": ["one_stage"]}}}
    with pytest.raises(ConfigError, match=r"synthetic_variants \['a', 'b'\] both list the family 'one_stage'"):
        FAMILIES["one_stage"].scoped(twice)
    unknown = CliRunner().invoke(app, ["synth", "--profile", "tiny", "--variant", "nope", "--params",
                                       str(PARAMS_FILE), "--out", str(tmp_path / "nope")])
    assert unknown.exit_code == 2 and "synthetic_variants has no entry 'nope'" in unknown.output
    assert not (tmp_path / "nope").exists()


# ------------------------------------------------------------------ statistics
def test_durations_span_two_orders_of_magnitude():
    cfg = parse_config(synth_cfg("paper"))
    d = sample_durations(cfg, np.random.default_rng(0), 20000)
    assert d.min() >= 0.5 and d.max() <= 60.0
    assert d.min() < 0.55 and d.max() > 40.0
    # median of the log-logistic law truncated to [0.5, 60]: exp(log m + s * logit((F(log 0.5) + F(log 60)) / 2))
    lo, hi = (1 / (1 + np.exp(-(np.log([0.5, 60.0]) - np.log(3.0)) / 0.45))).tolist()
    u = (lo + hi) / 2
    assert np.median(d) == pytest.approx(np.exp(np.log(3.0) + 0.45 * np.log(u / (1 - u))), rel=0.02)
    # as THUMOS14: short actions dominate (95th percentile 10-11.5 s), 7-10% last under a second
    assert (d < 10).mean() > 0.85 and 0.05 < (d < 1).mean() < 0.12


def test_smoke_statistics(smoke):
    root, report = smoke
    assert report.videos == {"Validation": 40, "Test": 40}
    assert 0.65 <= report.background_fraction <= 0.8
    assert 2.5 <= sum(report.instances.values()) / 80 <= 5.5
    cells = [np.load(f, mmap_mode="r").shape[0] for f in (root / "i3d_features").glob("*.npy")]
    assert 128 <= min(cells) and max(cells) <= 1024 and 200 <= np.mean(cells) <= 600
    assert report.seconds < 30


def test_features_are_non_negative_finite_and_temporally_correlated(smoke):
    root, _ = smoke
    x = np.load(root / "i3d_features" / "video_validation_0000001.npy")
    assert np.isfinite(x).all() and (x >= 0).all()
    centred = x - x.mean(axis=0)
    lag1 = (centred[1:] * centred[:-1]).sum(axis=0) / (centred**2).sum(axis=0)
    assert np.median(lag1) > 0.5


def test_context_dominates_the_action_in_rgb_not_in_flow(smoke):
    root, _ = smoke
    groups: dict[str, list] = {"coupling": [], "background": [], "action": []}
    labels: dict[str, list] = {"coupling": [], "action": []}
    for f in sorted((root / "i3d_features").glob("video_validation_*.npy")):
        x = np.load(f)
        lat = latents(root, f.stem)
        masks = {
            "coupling": (lat["phase"] == 0) & (lat["context"] >= 0),
            "background": (lat["phase"] == 0) & (lat["context"] < 0),
            "action": lat["phase"] > 0,
        }
        for kind, mask in masks.items():
            groups[kind].append(x[mask])
            if kind in labels:
                labels[kind].append(lat["context"][mask])
    x = {k: np.concatenate(v) for k, v in groups.items()}
    y = {k: np.concatenate(v) for k, v in labels.items()}
    dim = 64
    ratios = {}
    for stream, cols in (("rgb", slice(0, dim)), ("flow", slice(dim, 2 * dim)), ("both", slice(0, 2 * dim))):
        background = x["background"][:, cols].mean(axis=0)
        context_effect, action_effect = [], []
        for c in np.unique(y["action"]):
            coupling = x["coupling"][y["coupling"] == c][:, cols].mean(axis=0)
            action = x["action"][y["action"] == c][:, cols].mean(axis=0)
            context_effect.append(((coupling - background) ** 2).sum())
            action_effect.append(((action - coupling) ** 2).sum())
        ratios[stream] = np.mean(context_effect) / np.mean(action_effect)
    # RefactorNet: context dominates the action in the features used (RGB, both); Flow is motion-dominated
    assert ratios["rgb"] > 3 and ratios["both"] > 2, ratios
    assert ratios["flow"] < 1.5 and ratios["flow"] < ratios["rgb"] / 4, ratios


# ------------------------------------------------------------------ building blocks
def test_ar1_equals_the_recursion_and_is_stationary():
    rng = np.random.default_rng(0)
    eta = rng.standard_normal((300, 3))
    rho = 0.8
    expected = np.empty_like(eta)
    expected[0] = eta[0]
    for t in range(1, eta.shape[0]):
        expected[t] = rho * expected[t - 1] + np.sqrt(1 - rho**2) * eta[t]
    np.testing.assert_allclose(ar1(eta, rho), expected, rtol=1e-9, atol=1e-9)
    long = ar1(rng.standard_normal((20000, 4)), rho)
    assert long.var() == pytest.approx(1.0, abs=0.05)
    assert (long[1:] * long[:-1]).mean() == pytest.approx(rho, abs=0.05)


def test_soft_box_is_a_blurred_indicator():
    t = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    w = soft_box(t, np.array([1.0]), np.array([3.0]), 0.01)[:, 0]
    np.testing.assert_allclose(w, [0, 0.5, 1, 0.5, 0], atol=1e-6)
    blurred = soft_box(t, np.array([1.0]), np.array([3.0]), 0.5)[:, 0]
    assert 0 < blurred[0] < 0.2 and 0.5 < blurred[2] < 1


# ------------------------------------------------------------------ configuration and CLI
def test_bad_configuration_names_the_key():
    cfg = synth_cfg("tiny")
    with pytest.raises(ConfigError, match=r"synth\.phases\.onst"):
        parse_config({**cfg, "phases": {**cfg["phases"], "onst": 0.1}})
    with pytest.raises(ConfigError, match=r"synth: .*num_families \(99\) must be <= num_classes \(4\)"):
        parse_config({**cfg, "num_families": 99})
    broken = copy.deepcopy(cfg)
    broken["duration"]["median_s"] = 100.0
    with pytest.raises(ConfigError, match=r"synth\.duration"):
        parse_config(broken)


def test_tiny_profile_through_the_cli(tmp_path):
    out = tmp_path / "cli"
    began = time.perf_counter()
    result = CliRunner().invoke(app, ["synth", "--profile", "tiny", "--out", str(out), "--params", str(PARAMS_FILE)])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - began < 10
    assert "Validation" in result.output and "Test" in result.output
    assert len(list((out / "i3d_features").glob("*.npy"))) == 12
    assert not list(tmp_path.glob(".cli.*")), "temporary folder left behind"


# ------------------------------------------------------------------ premises (issue 15)
def test_two_class_videos_hold_both_classes_of_one_family(smoke):
    root, _ = smoke
    family = json.loads((root / "synth_meta.json").read_text())["family_of_class"]
    classes = [{a["label_id"] for a in video["annotations"]} for video in database(root).values()]
    multi = [c for c in classes if len(c) > 1]
    assert 0.05 <= len(multi) / len(classes) <= 0.3  # THUMOS14: 13.5% (Validation) and 16% (Test)
    assert all(len(c) == 2 and len({family[k] for k in c}) == 1 for c in multi)


def test_a_setting_is_shared_by_several_classes_and_misleads_sometimes(smoke):
    root, _ = smoke
    classes_of_setting: dict[int, set[int]] = {}
    own = []
    for video_id, video in database(root).items():
        (setting,) = set(latents(root, video_id)["context"].tolist()) - {-1}
        labels = [a["label_id"] for a in video["annotations"]]
        classes_of_setting.setdefault(setting, set()).update(labels)
        own += [label == setting for label in labels]
    assert sum(len(c) > 1 for c in classes_of_setting.values()) >= 2
    assert 0.7 < np.mean(own) < 0.97  # context reliability 0.95 per video, less per instance (two-class videos)


# ------------------------------------------------------------------ the ActivityNet-shaped profile
@pytest.fixture(scope="module")
def anet(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "activitynet"
    generate(synth_cfg("activitynet", videos={"train": 40, "test": 40}), root)
    return root


def test_activitynet_profile_is_on_the_real_tsp_grid():
    cfg = resolve(load_params(), "activitynet")
    synth, real = cfg["synth"], cfg["data"]["activitynet"]
    assert synth["layout"] == "activitynet"
    assert 2 * synth["feature_dim"] == real["feature_dim"] == 512
    assert synth["feature_stride"] == real["feature_stride"] == 16 and synth["clip_frames"] == real["clip_frames"] == 16
    assert synth["fps"] == real["feature_fps"] == 15.0
    assert cfg["eval"]["tiou_thresholds"] == pytest.approx(np.linspace(0.5, 0.95, 10).tolist())


def test_activitynet_layout_is_read_by_the_activitynet_loader(anet):
    from talbench.data import open_dataset

    db = json.loads((anet / "annotations" / "anet1.3_tsp_filtered.json").read_text())["database"]
    assert {v["subset"] for v in db.values()} == {"training", "validation"}
    assert sorted(p.stem for p in (anet / "tsp_features").glob("*.npy")) == sorted(f"v_{key}" for key in db)
    cfg = resolve(load_params(), "activitynet")
    cfg["data"].update(source="synthetic", synthetic_root=str(anet.parent), profile="activitynet")
    dataset = open_dataset(cfg)
    assert dataset.name == "synthetic-activitynet" and dataset.streams == ["rgb", "both"]
    assert len(dataset.video_ids("train")) == 40 and len(dataset.video_ids("test")) == 40
    video = dataset.video_ids("test")[0]
    assert video.startswith("v_validation_") and dataset.features(video, "rgb").shape[1] == 512
    centers = dataset.snippet_centers(video)
    np.testing.assert_allclose(centers[:3], [8 / 15, 24 / 15, 40 / 15])
    assert latents(anet, video)["phase"].shape == centers.shape
    assert len(dataset.instances("test")) == sum(len(v["annotations"]) for v in db.values() if v["subset"] == "validation")
    # a profile written on another grid than data.activitynet's is refused
    other = anet.parent / "other"
    generate(synth_cfg("tiny", layout="activitynet"), other)
    cfg["data"]["profile"] = "other"
    with pytest.raises(DataError, match=r"written with feature_dim 32, but data\.activitynet\.feature_dim is 512"):
        open_dataset(cfg)


def test_activitynet_shapes(anet):
    """ActivityNet v1.3 (BMN annotations, both subsets): 1.54 instances a video, 75% of videos with one,
    36% background, one class a video, instance durations median 27 s (5th-95th percentile 2.3-170 s)."""
    db = json.loads((anet / "annotations" / "anet1.3_tsp_filtered.json").read_text())["database"]
    counts = np.array([len(v["annotations"]) for v in db.values()])
    assert 1.3 <= counts.mean() <= 1.8 and 0.65 <= (counts == 1).mean() <= 0.85
    assert all(len({a["label_id"] for a in v["annotations"]}) == 1 for v in db.values())
    durations = np.array([a["segment"][1] - a["segment"][0] for v in db.values() for a in v["annotations"]])
    assert 18 <= np.median(durations) <= 40 and durations.min() >= 2.0 and durations.max() > 100
    phase = np.concatenate([latents(anet, f"v_{key}")["phase"] for key in db])
    assert 0.28 <= (phase == 0).mean() <= 0.48
