"""run.device and run.mixed_precision: auto resolves to the CPU here, CUDA paths run only where a GPU exists."""

from __future__ import annotations

import pytest
import torch

from talbench.errors import ConfigError
from talbench.runners.common.device import autocast, describe, precision, resolve_device, row_device

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


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
