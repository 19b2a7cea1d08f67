"""What the families share: checkpoints keyed by training configuration and inputs, the row execution."""

from __future__ import annotations

import torch
from helpers.linear_runner import RUNNER

from talbench.runners.common import checkpoints


def test_checkpoint_folder_ignores_test_time_and_checks_the_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("TALBENCH_MODELS_DIR", str(tmp_path))
    cfg = {"model": {"runner": RUNNER}, "baseline": {"lr": 0.1}, "test_time": {"baseline_flow_weight": 1.0}}
    variant = {**cfg, "test_time": {"baseline_flow_weight": 2.0}}
    retrained = {**cfg, "baseline": {"lr": 0.2}}
    inputs = {"code": "c0de", "data": "da7a", "proposals": "9909"}
    folder = checkpoints.checkpoint_dir(cfg, 1)
    assert folder == checkpoints.checkpoint_dir(variant, 1) != checkpoints.checkpoint_dir(retrained, 1)
    assert folder.parent.parent.name == "helpers.linear_runner_run_row" and folder.name == "seed1"
    assert checkpoints.load_checkpoint(folder, cfg, inputs) is None
    state = {"weight": torch.arange(6.0).reshape(2, 3)}
    checkpoints.save_checkpoint(folder, {"head": state}, cfg, 1, inputs)
    loaded = checkpoints.load_checkpoint(folder, variant, dict(reversed(inputs.items())))
    assert torch.equal(loaded["head"]["weight"], state["weight"])
    assert checkpoints.load_checkpoint(folder, retrained, inputs) is None  # other training config
    for name in inputs:  # other code, other data, other proposals: not this model
        assert checkpoints.load_checkpoint(folder, cfg, {**inputs, name: "other"}) is None


def test_training_code_hash_covers_the_execution_and_the_runner():
    from talbench.code_scope import module_closure

    files = {p.name for p in module_closure(checkpoints.EXECUTION_MODULE, "talbench.runners.dnet.runner")}
    assert {"execution.py", "runner.py", "proposal_detector.py", "detection.py"} <= files
    assert checkpoints.training_code_hash("talbench.runners.dnet.runner") != checkpoints.training_code_hash(
        "talbench.runners.refactornet.runner")


def test_seed_everything_is_deterministic_without_filling_new_tensors():
    """Deterministic algorithms on, uninitialised memory left as it is, one thread: in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import torch; from talbench.runners.common.execution import seed_everything; seed_everything(3); "
            "print(torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,"
            " torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "1"]
