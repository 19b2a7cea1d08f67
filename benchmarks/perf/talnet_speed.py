"""TAL-Net proposal + classification time at the paper's sizes (table 8: "9 ms per 3000 frames" on a CPU).

The networks of params.yaml's ``talnet`` section at the paper's dimensions (I3D 1024-d per stream, THUMOS14's 20
classes, 256 filters), untrained (seeded), on a 3000-frame video (100 s at 30 fps: 750 suite cells of stride
4, i.e. 63 cells of the pooled 0.625 fps grid or 750 of the native one) of random features: SPN, proposal
decoding and NMS (top 300), SoI pooling and classification of the proposals, per-class NMS
(:func:`talbench.runners.talnet.inference.detect`), features given, as the runner times its ``ms_per_3000_frames``.
Untrained weights keep about as many proposals as trained ones (NMS 0.7 of the anchors; every class score is
above the 0 threshold either way). One torch thread (the pipeline's ``run.torch_threads``); best of
``--repeat`` wall times.

    python benchmarks/perf/talnet_speed.py [--repeat 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]  # this checkout's talbench

from talbench.config import load_params
from talbench.models.talnet.network import LateFusionTALNet, build_network
from talbench.models.talnet.spn import units_per_paper_cell
from talbench.runners.talnet.anchors import anchor_lengths, make_anchors
from talbench.runners.talnet.grid import grid_features
from talbench.runners.talnet.inference import detect

FRAMES, FPS, STRIDE, DIM, CLASSES = 3000, 30.0, 4, 1024, 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = load_params(ROOT / "params.yaml")["talnet"]
    cells = FRAMES // STRIDE - 3  # 16-frame clips every 4 frames
    rng = np.random.default_rng(args.seed)
    raw = {s: np.abs(rng.standard_normal((cells, DIM))).astype(np.float32) for s in ("rgb", "flow")}
    print(f"{FRAMES} frames at {FPS:g} fps: {cells} suite cells, {DIM}-d per stream, {CLASSES} classes, "
          f"width {base['model']['width']}; best of {args.repeat}")
    for mode in ("pooled", "native"):
        tc = copy.deepcopy(base)
        tc["grid"]["mode"] = mode
        unit = units_per_paper_cell(mode, tc["grid"]["cells_per_paper_cell"])
        features = {s: torch.from_numpy(np.ascontiguousarray(grid_features(a, mode, tc["grid"]["cells_per_paper_cell"]).T))
                    for s, a in raw.items()}
        steps = features["rgb"].shape[1]
        anchors = torch.from_numpy(make_anchors(steps, anchor_lengths(tc["model"]["scales"], unit))).float()
        torch.manual_seed(args.seed)
        nets = {s: build_network(tc, DIM, CLASSES, s).eval() for s in ("rgb", "flow")}
        for name, model in (("rgb", nets["rgb"]), ("late fusion", LateFusionTALNet(nets))):
            best, kept = np.inf, 0
            with torch.no_grad():
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    out = detect(model, features, anchors, steps, tc)
                    best = min(best, time.perf_counter() - start)
                    kept = len(out.proposals)
            print(f"  {mode:6s} grid ({steps} cells), {name:11s}: {1000 * best:7.1f} ms per {FRAMES} frames "
                  f"({kept} proposals)")


if __name__ == "__main__":
    main()
