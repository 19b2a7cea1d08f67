"""A CPU-only check for a forgotten ``.to(device)``: every tensor a row makes is labelled *host* or *device*
while the row runs, and an operation that would mix a CUDA tensor with a CPU tensor is recorded.

PyTorch offers no second real device on a CPU-only build (``meta`` tensors hold no data, so a row cannot run on
them, and FakeTensor cannot run the row's ``.item()`` / ``.numpy()`` either). So the row runs on the CPU under a
:class:`torch.overrides.TorchFunctionMode` that follows where each tensor *would* be if ``run.device`` were a GPU:

* made from numpy or by a factory without ``device=`` (``torch.from_numpy``, ``torch.zeros(n)``, a module's
  initial weights): **host**; ``.cpu()``: host;
* ``.to(<the row's device>)`` (also through ``module.to``) or a factory with ``device=``: **device** (``.to`` gives
  back a new tensor, so that a moved copy left unused leaves the original on the host, as on a GPU);
* any other operation: device if one of its tensors is on the device, else host (``zeros_like`` follows its
  input; a parameter deep-copied from a device parameter stays on the device);
* tensors the mode never saw (gradients, loaded checkpoints): unknown, never counted.

Recorded as violations, each with the talbench line that made it: an operation with a device tensor and a host
tensor of one or more dimensions (PyTorch, too, only lets 0-dim CPU tensors mix with CUDA tensors), except
``copy_`` / ``.to`` and indexing a device tensor with host indices (both allowed on CUDA); indexing a host tensor
with device indices; ``.numpy()`` of a device tensor (CUDA needs ``.cpu()`` first); a random draw *into* a device
tensor from an explicit generator (the runners' generators live on the CPU).

What it cannot catch: ``device=x.device`` of a host ``x`` counts as the device (on the CPU both are ``cpu``);
code that moves data with ``.to("cpu")`` instead of ``.cpu()`` (it reads as the row's device); an operation the
mode does not see (inside C++ autograd, in numpy); the numerics of another device (kernels, precision);
CUDA-only failures such as an operation without a deterministic CUDA kernel or running out of GPU memory.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

HOST, DEVICE = "host", "device"
TAG = "_device_audit"
ALLOWED_MIX = {torch.Tensor.copy_, torch.Tensor.to, torch.Tensor.cpu}  # cross-device by design
INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
TO_NUMPY = {torch.Tensor.numpy, torch.Tensor.__array__}
FROM_DATA = {torch.as_tensor, torch.tensor}


def tag_of(tensor: torch.Tensor) -> str | None:
    return getattr(tensor, TAG, None)


def set_tag(tensor: torch.Tensor, tag: str | None) -> None:
    if tag is not None:
        setattr(tensor, TAG, tag)


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


def _where() -> str:
    """The innermost talbench line of the current stack (the code that asked for the operation)."""
    for frame in reversed(traceback.extract_stack()):
        if "/talbench/" in frame.filename:
            return f"{frame.filename.rsplit('/talbench/', 1)[1]}:{frame.lineno} ({frame.line})"
    return "outside talbench"


def _moved_to(args, kwargs) -> str | None:
    """Where ``tensor.to(...)`` sends its tensor: the device (a device or its name), another tensor's place,
    or ``None`` for a dtype-only conversion."""
    if kwargs.get("device") is not None:
        return DEVICE
    for arg in args[1:]:
        if isinstance(arg, (torch.device, str)):
            return DEVICE
        if isinstance(arg, torch.Tensor):
            return tag_of(arg)
    return None


@dataclass
class DeviceAudit(TorchFunctionMode):
    """``with DeviceAudit() as audit: <run a row on the CPU>``; then ``audit.violations`` (empty when every
    tensor an operation combines would sit on one device) and ``audit.operations`` (how many it saw)."""

    violations: list[str] = field(default_factory=list)
    operations: int = 0

    def __post_init__(self):
        super().__init__()

    def __enter__(self):
        # a parameter made from a tensor (a module's constructor, a deep copy) is where that tensor is
        self._parameter_new = torch.nn.Parameter.__new__
        original = self._parameter_new

        def parameter_new(cls, data=None, requires_grad=True):
            param = original(cls, data, requires_grad)
            if data is not None:
                set_tag(param, tag_of(data) or HOST)
            return param

        # torch.from_numpy is the one factory a TorchFunctionMode does not see: it makes host tensors
        self._from_numpy = torch.from_numpy
        from_numpy = self._from_numpy

        def from_numpy_on_host(array):
            tensor = from_numpy(array)
            set_tag(tensor, HOST)
            return tensor

        torch.nn.Parameter.__new__ = parameter_new
        torch.from_numpy = from_numpy_on_host
        return super().__enter__()

    def __exit__(self, *exc):
        torch.nn.Parameter.__new__ = self._parameter_new
        torch.from_numpy = self._from_numpy
        return super().__exit__(*exc)

    def _record(self, func, why: str) -> None:
        self.violations.append(f"{_name(func)}: {why} at {_where()}")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.operations += 1
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        tags = [tag_of(t) for t in inputs]
        self._check(func, kwargs, inputs, tags)
        result = func(*args, **kwargs)
        if getattr(func, "__name__", "") == "__set__" and len(args) == 2:  # param.data = <moved tensor>
            set_tag(args[0], tag_of(args[1]))
            return result
        if func is torch.Tensor.to and _moved_to(args, kwargs) is not None:
            out_tag = _moved_to(args, kwargs)
        elif func is torch.Tensor.cpu:
            out_tag = HOST
        elif func in FROM_DATA or not inputs:  # a factory
            out_tag = DEVICE if kwargs.get("device") is not None else HOST
        else:  # an operation: where its tensors are
            out_tag = DEVICE if DEVICE in tags else HOST if HOST in tags else None
        if func in (torch.Tensor.to, torch.Tensor.cpu) and result is args[0] and out_tag != tags[0] \
                and not isinstance(result, torch.nn.Parameter):
            result = result.view_as(result)  # on a GPU the move gives a new tensor; the original stays put
        for out in tree_flatten(result)[0]:
            in_place = bool(inputs) and out is inputs[0] and tags[0] is not None
            if isinstance(out, torch.Tensor) and out_tag is not None and not in_place:
                set_tag(out, out_tag)
            elif isinstance(out, torch.Tensor) and in_place and func in (torch.Tensor.to, torch.Tensor.cpu):
                set_tag(out, out_tag)  # a parameter moved by module.to() (it keeps its identity)
        return result

    def _check(self, func, kwargs, inputs, tags) -> None:
        if func in TO_NUMPY:
            if tags and tags[0] == DEVICE:
                self._record(func, "numpy() of a device tensor (needs .cpu() first)")
        elif func in INDEXING:
            if tags and tags[0] == HOST and DEVICE in tags[1:]:
                self._record(func, "a host tensor indexed with device indices")
        elif func not in ALLOWED_MIX and DEVICE in tags and any(
                tag == HOST and t.dim() > 0 for t, tag in zip(inputs, tags)):
            shapes = [f"{tag}{tuple(t.shape)}" for t, tag in zip(inputs, tags) if tag]
            self._record(func, f"mixes device and host tensors {shapes}")
        if kwargs.get("generator") is not None and (DEVICE in tags or kwargs.get("device") is not None):
            self._record(func, "a random draw on the device from a CPU generator")
