#!/usr/bin/env bash
# The GPU check of run.device / run.mixed_precision (issue #19), for a machine with a CUDA device: sized for
# under 8 min on one H200 (not yet run on a GPU; without one, its CPU part takes 41 s on 2 cores), no network. Run from anywhere: `bash scripts/device_check.sh` (PYTHON= the interpreter with the
# project's dependencies and a CUDA build of torch; default python3).
#   1. torch / CUDA / GPU information;
#   2. the CUDA tests: `pytest -k cuda tests/runners/test_device.py` (a tiny D-Net, TAL-Net and one-stage row on
#      cuda, tagged with the GPU and repeating themselves; skipped on a machine without a GPU);
#   3. one smoke-profile row of each family the tests do not time (TAL-Net: talnet.table4 "RGB", which trains
#      the RGB and Flow networks; one-stage: cltdr_gmg.table6 "instant"), seed 0, run.device=cpu, cuda, and
#      cuda with run.mixed_precision=bf16, through `talbench run` into throw-away stores under /tmp (MLflow, models, results: nothing of the
#      repository's is read or written besides the code, params.yaml and benchmarks/).
# Writes $OUT/device_check.json (OUT: the device tool's output folder; ./device_out when unset): per row and
# device the wall seconds of the table run, the run's train / inference seconds, its device tag and metrics,
# and the pytest summary; $OUT/pytest_cuda.log holds the tests' output. CPU and CUDA numbers differ (other
# kernels); the CUDA tests check that CUDA repeats itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-./device_out}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/device_check.XXXXXX)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MLFLOW_TRACKING_URI="sqlite:///$WORK/mlflow.db" TALBENCH_MODELS_DIR="$WORK/models" \
    TALBENCH_CACHE_DIR="$WORK/cache"

echo "== torch and CUDA"
"$PYTHON" -c '
import torch
print("torch", torch.__version__, "| CUDA build", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv

echo "== CUDA tests (pytest -k cuda)"
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider -k cuda tests/runners/test_device.py 2>&1 | tee "$OUT/pytest_cuda.log"
PYTEST_RC=${PIPESTATUS[0]}
set -e

echo "== smoke rows, cpu vs cuda"
"$PYTHON" - "$WORK" "$OUT/device_check.json" "$PYTEST_RC" <<'EOF'
import json
import sys
import time
from pathlib import Path

import torch
import yaml
from mlflow import MlflowClient

from talbench.benchmark.run import run_table
from talbench.config import load_params, resolve
from talbench.data.synthetic.generate import generate

work, summary_path, pytest_rc = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
ROWS = {"talnet": ("talnet.table4", "0"), "one_stage": ("cltdr_gmg.table6", "0")}
TIMES = ("train_seconds", "seconds_per_epoch", "infer_seconds", "infer_seconds_per_video",
         "time/ms_per_3000_frames")
params = load_params("params.yaml")
params["data"]["synthetic_root"] = str(work / "synthetic")
generate(resolve(params, "smoke")["synth"], work / "synthetic" / "smoke")
log = Path(summary_path).with_name("pytest_cuda.log").read_text(encoding="utf-8").strip().splitlines()
summary = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "pytest_cuda": {"exit_code": pytest_rc, "summary": log[-1] if log else ""}, "rows": {}}
VARIANTS = {"cpu": ("cpu", None), "cuda": ("cuda", None), "cuda_bf16": ("cuda", "bf16")}
variants = list(VARIANTS) if torch.cuda.is_available() else ["cpu"]
client = MlflowClient()
for family, (table, row) in ROWS.items():
    for variant in variants:
        params["run"]["device"], params["run"]["mixed_precision"] = VARIANTS[variant]
        path = work / f"params_{variant}.yaml"
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        started = time.perf_counter()
        results = run_table(table, rows=row, seeds=1, first_seed=0, workers=1, profile="smoke",
                            params_path=path, results_dir=work / f"results_{variant}")
        wall = time.perf_counter() - started
        entry = results["rows"][0]
        run = client.get_run(entry["runs"][0]["run_id"])
        summary["rows"].setdefault(family, {"table": table, "row": entry["name"]})[variant] = {
            "wall_seconds": round(wall, 2), "device_tag": run.data.tags.get("device"),
            "nondeterministic_ops": run.data.tags.get("nondeterministic_ops", ""),
            "times": {k: run.data.metrics[k] for k in TIMES if k in run.data.metrics},
            "metrics": entry["runs"][0]["metrics"]}
        print(f"{family} {table} [{entry['name']}] {variant}: {wall:.1f} s wall, "
              f"train {run.data.metrics.get('train_seconds', float('nan')):.1f} s, metrics {entry['runs'][0]['metrics']}")
Path(summary_path).write_text(json.dumps(summary, indent=2), encoding="utf-8")
print(f"summary: {summary_path}")
EOF
exit "$PYTEST_RC"
