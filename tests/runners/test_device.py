"""run.device and run.mixed_precision: auto resolves to the CPU here, CUDA paths run only where a GPU exists; tiny
rows of every family (D-Net, RefactorNet, TAL-Net, the one-stage detectors) keep their tensors on the row's device
(the audit of tests/helpers/device_audit.py, which catches a forgotten ``.to(device)`` on a CPU-only machine) and
record where they ran. The tests that need a GPU have ``cuda`` in their names (``pytest -k cuda``,
scripts/device_check.sh)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from helpers.device_audit import DEVICE, DeviceAudit, tag_of
from torch.utils._pytree import tree_flatten

from talbench.config import deep_merge, load_params, resolve
from talbench.errors import ConfigError
from talbench.runners.common.device import autocast, describe, precision, resolve_device, row_device
from talbench.runners.common.execution import execute_row
from talbench.runners.families import run_row

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


class CountingAudit(DeviceAudit):
    """The audit, also counting the operations whose result is on the row's device: a runner that never moved
    anything would pass the audit with no violation, but not a test that asks for device work."""

    on_device: int = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs)
        if any(isinstance(t, torch.Tensor) and tag_of(t) == DEVICE for t in tree_flatten(result)[0]):
            self.on_device += 1
        return result


def test_auto_is_cuda_when_there_is_one_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert row_device({"run": {}}).type == expected
    assert resolve_device("CPU") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_one_line_naming_the_field(spec):
    with pytest.raises(ConfigError, match=r"field 'run.device': 'cuda(:\d)?' asked for, but torch sees no CUDA"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu:0"])
def test_unknown_devices_are_refused(spec):
    with pytest.raises(ConfigError, match="is not auto, cpu, cuda or cuda:<index>"):
        resolve_device(spec)


@needs_cuda
def test_cuda_resolves_and_is_described_with_its_name():
    device = resolve_device("cuda")
    assert device == torch.device("cuda:0")
    assert torch.cuda.get_device_name(0) in describe(device)
    with pytest.raises(ConfigError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_cpu_description_names_torch_and_threads():
    text = describe(torch.device("cpu"))
    assert text.startswith("cpu (") and f"torch {torch.__version__}" in text and "threads" in text


def test_cpu_description_names_the_processor_model(tmp_path, monkeypatch):
    from talbench.runners.common import device

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD  EPYC 9R14 96-Core Processor\n")
    monkeypatch.setattr(device, "CPUINFO", info)
    assert describe(torch.device("cpu")).startswith("cpu (AMD EPYC 9R14 96-Core Processor, torch ")
    monkeypatch.setattr(device, "CPUINFO", tmp_path / "absent")  # no /proc: what platform knows
    monkeypatch.setattr(device.platform, "processor", lambda: "")
    assert describe(torch.device("cpu")).startswith(f"cpu ({device.platform.machine()}, torch ")


def test_mixed_precision_is_off_by_default_and_bf16_on_request():
    assert precision({"run": {}}) is None and precision({"run": {"mixed_precision": None}}) is None
    assert precision({"run": {"mixed_precision": "bf16"}}) is torch.bfloat16
    with pytest.raises(ConfigError, match="run.mixed_precision"):
        precision({"run": {"mixed_precision": "fp8"}})
    layer = torch.nn.Linear(4, 4)
    x = torch.ones(2, 4)
    with autocast({"run": {}}, torch.device("cpu")):
        assert layer(x).dtype == torch.float32
    with autocast({"run": {"mixed_precision": "bf16"}}, torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16


# ------------------------------------------------------------------------------------------ rows and their tags


def test_the_audit_catches_what_a_gpu_would_refuse():
    """The audit (tests/helpers/device_audit.py) can fail: a module or an input left on the host, a moved copy
    left unused, numpy of a device tensor, a CPU generator drawing into a device tensor, host data indexed with
    device indices; the same steps done right pass."""
    device = torch.device("cpu")

    def right():
        model = torch.nn.Linear(3, 2).to(device)
        x = torch.from_numpy(np.ones((4, 3), np.float32)).to(device)
        optimizer = torch.optim.Adam(model.parameters())
        model(x).sum().backward()
        optimizer.step()
        copy.deepcopy(model)(x).detach().cpu().numpy()
        generator = torch.Generator().manual_seed(0)
        x[torch.randperm(4, generator=generator)]
        return torch.rand(4, generator=generator).to(device) < x[:, 0]

    def unused_move():
        x = torch.ones(4, 3)
        x.to(device)
        return torch.nn.Linear(3, 2).to(device)(x)

    def random_into_device():
        with torch.no_grad():
            torch.nn.Linear(3, 2).to(device).weight.normal_(generator=torch.Generator())

    wrong = {
        "module on the host": lambda: torch.nn.Linear(3, 2)(torch.ones(4, 3).to(device)),
        "input on the host": lambda: torch.nn.Linear(3, 2).to(device)(torch.ones(4, 3)),
        "a moved copy left unused": unused_move,
        "numpy of a device tensor": lambda: torch.ones(2).to(device).numpy(),
        "a CPU generator drawing on the device": random_into_device,
        "host data, device indices": lambda: torch.ones(4)[torch.arange(2, device=device)],
    }
    with DeviceAudit() as audit:
        right()
    assert audit.violations == [] and audit.operations > 20
    for what, step in wrong.items():
        with DeviceAudit() as audit:
            step()
        assert len(audit.violations) == 1, (what, audit.violations)


@pytest.fixture(scope="module")
def tiny_rows(tiny_synthetic, tmp_path_factory):
    """The tiny benchmark with its stand-in proposals as BSN CSVs, and short schedules for a D-Net row (random
    removed codes, EMA, clipping, video-level classifier) and a RefactorNet row (BSN on F', video fusion)."""
    from talbench.data.proposals import write_proposals

    _, cfg, dataset, proposals = tiny_synthetic
    folder = tmp_path_factory.mktemp("proposals")
    write_proposals(folder, proposals, dataset.video_ids("train") + dataset.video_ids("test"))
    root = {"data": {"synthetic_root": cfg["data"]["synthetic_root"]},
            "bsn": {"source": "bsn_csv", "external_path": str(folder), "external_normalized": False,
                    "tem_epochs": 2, "pem_epochs": 2},
            "test_time": {"video_cls": "classifier", "video_cls_epochs": 20}}
    dnet = resolve(load_params(), "tiny", root | {
        "detector": {"epochs": 2, "lr_steps": [1], "ema_decay": 0.9, "clip_grad_norm": 1.0},
        "dnet": {"removed_code": "random"}})
    refactornet = resolve(load_params(), "tiny", root | {
        "model": {"runner": "refactornet"}, "detector": {"aggregation": "roi_pool", "head_mlps": 3},
        "refactornet": {"video_fusion_sources": ["synthetic"], "stage1": {"epochs": 1}, "stage2": {"epochs": 1}}})
    data = {"data": root["data"]}
    # TAL-Net: the RGB and Flow networks and the jointly trained late-fusion model (LateFusionTALNet)
    talnet = resolve(load_params(), "tiny", data | {"model": {"runner": "talnet"},
                                                    "talnet": {"late_fusion": "joint"}})
    one_stage = resolve(load_params(), "tiny", data | {"model": {"runner": "one_stage"}})
    return {"dnet": dnet, "refactornet": refactornet, "talnet": talnet,
            # CLTDR-GMG with its EMA snapshots evaluated (the best-test-epoch diagnostic)
            "one_stage": deep_merge(one_stage, {"one_stage": {"train": {"snapshots": True}}}),
            # TemporalMaxer: max-pool encoder, ActionFormer head, least-cost regression targets
            "one_stage_min_cost": deep_merge(one_stage, {"one_stage": {
                "method": "temporalmaxer", "encoder": "maxpool", "decoder": "actionformer"}})}, dataset


@pytest.mark.parametrize("family", ["dnet", "refactornet", "talnet", "one_stage", "one_stage_min_cost"])
def test_rows_keep_every_tensor_on_the_row_device(tiny_rows, family, tmp_path, monkeypatch):
    """Tiny rows under the audit: D-Net, RefactorNet (BSN training and proposals on F', the detector's training
    and inference, the video-level classifier, coupling samples, the probe), TAL-Net (grid features, SPN and
    classifier training with sampled anchors and proposals, joint late fusion, inference) and the one-stage
    detectors (padded batches with input noise, point assignment, CLTDR's and TemporalMaxer's objectives, EMA
    snapshots, decoding): no operation mixes the row's device with the host, and most of the work is on the
    device. The outcome says where it ran; a second run loads the checkpoints onto the device and gives the same
    numbers (D-Net's random removed codes at test time included)."""
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    configs, dataset = tiny_rows
    with CountingAudit() as audit:
        outcome = run_row(configs[family], 0, dataset)
    assert audit.violations == []
    assert audit.operations > 10_000  # the whole row ran under the audit
    assert audit.on_device > audit.operations / 4  # the networks' work happened on the device
    assert outcome.device_tags == {"device": describe(row_device(configs[family])), "mixed_precision": "none"}
    with CountingAudit() as audit:
        loaded = run_row(configs[family], 0, dataset)
    assert audit.violations == [] and audit.on_device > 0
    assert loaded.timings["loaded_from_cache"] == 1.0  # every family: the same numbers from the checkpoints
    assert {k: v for k, v in loaded.metrics.items() if "mAP" in k} == {
        k: v for k, v in outcome.metrics.items() if "mAP" in k}


def test_the_one_stage_complexity_task_times_on_the_row_device(tiny_rows):
    """Table 15's timing (no training): the paper-sized model and its input on the row's device."""
    configs, dataset = tiny_rows
    cfg = deep_merge(configs["one_stage"], {"one_stage": {"task": "complexity"}})
    with CountingAudit() as audit:
        outcome = run_row(cfg, 0, dataset)
    assert audit.violations == [] and audit.on_device > 100
    assert outcome.metrics["inference_ms"] > 0


@pytest.mark.parametrize("family", ["dnet", "talnet", "one_stage_min_cost"])
def test_mixed_precision_runs_a_row_and_is_tagged(tiny_rows, family, tmp_path, monkeypatch):
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    configs, dataset = tiny_rows
    cfg = copy.deepcopy(configs[family])
    cfg["run"]["mixed_precision"] = "bf16"
    outcome = run_row(cfg, 0, dataset)
    assert outcome.device_tags["mixed_precision"] == "bf16"
    maps = {k: v for k, v in outcome.metrics.items() if "mAP" in k}
    assert maps and all(np.isfinite(v) for v in maps.values())


@pytest.mark.parametrize(("key", "value", "error"), [
    ("device", "gpu", "field 'run.device': 'gpu' is not auto, cpu, cuda or cuda:<index>"),
    ("mixed_precision", "fp8", "field 'run.mixed_precision': 'fp8' is not null or bf16"),
])
def test_a_bad_device_or_precision_stops_the_row_before_any_work(key, value, error):
    def runner(*args, **kwargs):
        pytest.fail("the runner ran")

    with pytest.raises(ConfigError, match=re.escape(error)):
        execute_row(runner, "probe", {"run": {key: value}}, 0, dataset=None)


@needs_cuda
@pytest.mark.parametrize("family", ["dnet", "talnet", "one_stage_min_cost"])
def test_rows_on_cuda_are_tagged_and_repeat_themselves(tiny_rows, family, tmp_path, monkeypatch):
    """On a GPU: a D-Net, a TAL-Net and a one-stage row on cuda, tagged with the GPU's name; trained twice from
    scratch with one seed they give the same numbers (deterministic algorithms; docs: same GPU model, driver and
    PyTorch) unless an operation without a deterministic CUDA kernel ran (then named in the
    ``nondeterministic_ops`` tag)."""
    configs, dataset = tiny_rows
    cfg = copy.deepcopy(configs[family])
    cfg["run"]["device"] = "cuda"
    runs = []
    for folder in ("a", "b"):
        monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path / folder))
        runs.append(run_row(cfg, 0, dataset))
    tag = runs[0].device_tags["device"]
    assert tag.startswith("cuda:0 (") and torch.cuda.get_device_name(0) in tag
    maps = [{k: v for k, v in run.metrics.items() if "mAP" in k} for run in runs]
    assert maps[0] and all(np.isfinite(v) for v in maps[0].values())
    if "nondeterministic_ops" not in runs[0].device_tags:
        assert maps[0] == maps[1]
