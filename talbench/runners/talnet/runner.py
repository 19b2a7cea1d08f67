"""Runner ``talnet``: one row of TAL-Net's tables (Chao et al., CVPR 2018) with one seed.

Every row trains (or loads) the RGB and the Flow network (tables 1-3 report both streams) and, for
``talnet.fusion: early``, the early-fusion network on the concatenated streams; each network is trained on its
own, both stages jointly (:mod:`talbench.runners.talnet.train`). Late fusion (sec. 4.3) averages the SPN and
classifier logits of an RGB and a Flow network. The paper does not say how that model trains ("conceptually,
this is equivalent to performing the conventional late fusion in both the proposal generation and action
classification stage"): ``talnet.late_fusion: separate`` averages the separately trained RGB and Flow networks at
test time, as conventional two-stream late fusion does; ``joint`` trains one more model, the two networks on
the averaged logits (network ``late``). Inference on ``run.eval_split``
(:mod:`talbench.runners.talnet.inference`) gives, for every output ``<out>``:

* ``<out>/AR_<AN>``: AR@AN of its (at most 300) proposals per video, tIoU ``eval.ar_tiou_thresholds``
  (0.5:0.05:1.0) and AN ``eval.ar_an`` (tables 1-2), with their per-video parts in ``video_stats``;
* ``<out>/mAP_<t>`` and ``<out>/average_mAP`` over ``eval.tiou_thresholds`` (the TAL-Net tables set 0.1:0.1:0.7,
  the columns of tables 3-5);
* ``<out>/ms_per_3000_frames``: wall time (on the row's device) of proposal + classification (networks,
  decoding, both NMS) per 3000 video frames, features given (table 8), and ``<out>/proposals_per_video``;

``<out>`` being ``rgb``, ``flow``, ``fusion`` (rows with ``fusion: early | late``) and ``output``, the row's
own output (``talnet.fusion``: rgb, flow, early or late; table 4). ``time/ms_per_3000_frames`` is the row
output's time; ``params_m`` counts its parameters at the paper's sizes (I3D 1024-d per stream, 20 classes),
``params_m_actual`` at this dataset's.

Checkpoints: ``models/talnet/<hash>/seed<k>/`` per network, the hash covering what trains it (data,
``run.train_split``, ``torch_threads`` and ``mixed_precision``, ``talnet.{grid, model, train, proposals}`` and
the network's name), so that rows differing in ``fusion`` or ``talnet.test`` share their trained networks; the
kind of device (:func:`talbench.runners.common.device.device_key`) is one of the checkpoint's inputs.

Devices (``run.device``, :mod:`talbench.runners.common.device`): every network is built and seeded on the CPU,
then moved to the row's device; grid features are computed with numpy and moved, sampling draws from numpy
generators on the host, and results come back with ``.cpu()`` before numpy.
``report(epoch, value)``, when given, receives the validation mAP@0.5 of the row's output after each epoch of
the last network it trains.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from talbench.errors import ConfigError
from talbench.eval.detection import evaluate_detection
from talbench.eval.proposals import average_recall, recall_by_video
from talbench.io import atomic_write_json
from talbench.models.talnet.network import LateFusionTALNet, TALNet, build_network, parameter_counts
from talbench.models.talnet.spn import ARCHITECTURES, GRIDS, units_per_paper_cell
from talbench.runners.common.checkpoints import (
    checkpoint_dir,
    load_checkpoint,
    save_checkpoint,
    training_code_hash,
)
from talbench.runners.common.device import device_key, precision_name, row_device
from talbench.runners.common.outcome import RowOutcome
from talbench.runners.talnet.anchors import anchor_lengths, make_anchors
from talbench.runners.talnet.inference import detect
from talbench.runners.talnet.train import train_network
from talbench.runners.talnet.videos import VideoFeatures, prepare_training_video

RUNNER = "talnet"
NETWORK_STREAMS = {"rgb": "rgb", "flow": "flow", "early": "both"}  # network -> feature stream
NETWORKS = (*NETWORK_STREAMS, "late")  # "late": the jointly trained late-fusion model (talnet.late_fusion: joint)
FUSIONS = ("rgb", "flow", "early", "late")
LATE_FUSIONS = ("separate", "joint")
TRAINING_KEYS = ("grid", "model", "train", "proposals")


def validate_config(cfg: dict) -> dict:
    """The ``talnet`` section, checked; a bad value is a :class:`ConfigError` naming the key."""
    tc = cfg["talnet"]
    model, train, grid = tc["model"], tc["train"], tc["grid"]
    if tc["fusion"] not in FUSIONS:
        raise ConfigError(f"params.yaml: talnet.fusion must be one of {FUSIONS}, got '{tc['fusion']}'")
    if tc["late_fusion"] not in LATE_FUSIONS:
        raise ConfigError(f"params.yaml: talnet.late_fusion must be one of {LATE_FUSIONS}, got '{tc['late_fusion']}'")
    if grid["mode"] not in GRIDS:
        raise ConfigError(f"params.yaml: talnet.grid.mode must be one of {GRIDS}, got '{grid['mode']}'")
    if not isinstance(grid["cells_per_paper_cell"], int) or grid["cells_per_paper_cell"] < 1:
        raise ConfigError("params.yaml: talnet.grid.cells_per_paper_cell must be a positive integer")
    if model["architecture"] not in ARCHITECTURES:
        raise ConfigError(f"params.yaml: talnet.model.architecture must be one of {ARCHITECTURES}, "
                          f"got '{model['architecture']}'")
    if model["spn_context"] and model["architecture"] != "multi_dilated":
        raise ConfigError("params.yaml: talnet.model.spn_context (table 2) applies to multi_dilated towers only; "
                          f"set it false for '{model['architecture']}' (table 1)")
    scales = model["scales"]
    if not scales or any(not isinstance(s, int) or s < 1 for s in scales):
        raise ConfigError(f"params.yaml: talnet.model.scales must be positive integers, got {scales}")
    if not 0 <= model["dropout"] < 1 or model["soi_bins"] < 1 or model["width"] < 1:
        raise ConfigError("params.yaml: talnet.model needs 0 <= dropout < 1, soi_bins >= 1 and width >= 1")
    for key in ("anchor_positive_fraction", "proposal_foreground_fraction"):
        if not 0 < train[key] <= 1:
            raise ConfigError(f"params.yaml: talnet.train.{key} must lie in (0, 1], got {train[key]}")
    if not 0 <= train["anchor_negative_iou"] <= train["anchor_positive_iou"] <= 1:
        raise ConfigError("params.yaml: talnet.train needs 0 <= anchor_negative_iou <= anchor_positive_iou <= 1")
    for key, least in (("anchor_batch", 1), ("proposal_batch", 1), ("epochs", 0)):
        if not isinstance(train[key], int) or train[key] < least:
            raise ConfigError(f"params.yaml: talnet.train.{key} must be an integer >= {least}, got {train[key]}")
    if train["lr"] <= 0 or train["reg_weight"] < 0:
        raise ConfigError("params.yaml: talnet.train.lr must be positive and reg_weight non-negative")
    return tc


def network_config(cfg: dict, network: str) -> dict:
    """What trains network ``network`` (rgb, flow, early): the checkpoint folder's hash input."""
    tc = cfg["talnet"]
    return {"model": {"runner": RUNNER}, "data": cfg["data"],
            "run": {k: cfg["run"][k] for k in ("train_split", "torch_threads")}
            | {"mixed_precision": precision_name(cfg)},
            "talnet": {key: tc[key] for key in TRAINING_KEYS}, "network": network}


def new_network(cfg: dict, seed: int, dataset, network: str) -> TALNet | LateFusionTALNet:
    """Network ``network`` (rgb, flow, early, late) freshly initialised on the CPU from a seed of its own; ``late``
    is an RGB and a Flow network in one :class:`LateFusionTALNet` (trained jointly)."""
    torch.manual_seed(seed * 1009 + NETWORKS.index(network))
    if network == "late":
        return LateFusionTALNet({s: build_network(cfg["talnet"], dataset.stream_dim(s), len(dataset.classes), s)
                                 for s in ("rgb", "flow")})
    stream = NETWORK_STREAMS[network]
    return build_network(cfg["talnet"], dataset.stream_dim(stream), len(dataset.classes), stream)


def train_or_load(cfg: dict, seed: int, dataset, net: TALNet | LateFusionTALNet, network: str, videos,
                  source: VideoFeatures,
                  lengths: np.ndarray, console=None, after_epoch: Callable[[int], None] | None = None
                  ) -> tuple[dict, bool]:
    """Load ``net`` (on the row's device) from its checkpoint or train it now: its training log and whether it was
    loaded."""
    config = network_config(cfg, network)
    inputs = {"code": training_code_hash(__name__), "data": dataset.checksum(),
              "device": device_key(source.device)}
    folder = checkpoint_dir(config, seed, RUNNER)
    states = load_checkpoint(folder, config, inputs)
    if states is not None:
        net.load_state_dict(states["model"])
        return json.loads((folder / "train_log.json").read_text(encoding="utf-8")), True
    rng = np.random.default_rng([seed, NETWORKS.index(network)])
    log = train_network(net, videos, source, lengths, cfg["talnet"], rng, after_epoch, console,
                        description=f"TAL-Net {network}", run=cfg["run"])
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "train_log.json", log)
    save_checkpoint(folder, {"model": net.state_dict()}, config, seed, inputs)
    return log, False


def predict(model, video_ids: list[str], source: VideoFeatures, lengths: np.ndarray, tc: dict,
            classes: list[str], run: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, float, float]:
    """Detections (``video_id, label, start, end, score``) and proposals (``video_id, start, end, score``) in
    seconds on ``video_ids``, the seconds proposal + classification took and the videos' frames; ``model`` runs
    on the device of ``source``, autocast as ``run`` (the ``run`` section) says."""
    model.eval()
    detections, proposals = [], []
    seconds = frames = 0.0
    with torch.no_grad():
        for vid in video_ids:
            grid = source.geometry(vid)
            features = source.features(vid, model.streams)
            anchors = torch.from_numpy(make_anchors(grid.cells, lengths)).to(source.device, torch.float32)
            out = detect(model, features, anchors, grid.cells, tc, run)
            seconds += out.seconds
            frames += source.frames(vid)
            segments = grid.to_seconds(out.segments)
            detections.append(pd.DataFrame({
                "video_id": vid, "label": np.asarray(classes, dtype=object)[out.labels],
                "start": segments[:, 0], "end": segments[:, 1], "score": out.scores}))
            boxes = grid.to_seconds(out.proposals)
            proposals.append(pd.DataFrame({"video_id": vid, "start": boxes[:, 0], "end": boxes[:, 1],
                                           "score": out.proposal_scores}))
    return pd.concat(detections, ignore_index=True), pd.concat(proposals, ignore_index=True), seconds, frames


def _output_model(fusion: str, nets: dict[str, TALNet | LateFusionTALNet]):
    if fusion == "late" and "late" not in nets:  # separately trained: the RGB and Flow networks, logits averaged
        return LateFusionTALNet({"rgb": nets["rgb"], "flow": nets["flow"]})
    return nets[fusion]


def _evaluate(name: str, detections: pd.DataFrame, proposals: pd.DataFrame, gt: pd.DataFrame, cfg: dict
              ) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics of output ``name`` (mAP, AR@AN) and the per-video parts of its AR@AN."""
    result = evaluate_detection(gt, detections, cfg["eval"]["tiou_thresholds"])
    values = {f"mAP_{float(t):g}": float(v) for t, v in zip(result.tiou, result.map)}
    values["average_mAP"] = float(result.average_map)
    an, tiou = cfg["eval"]["ar_an"], cfg["eval"]["ar_tiou_thresholds"]
    recall = average_recall(gt, proposals, an, tiou)
    values.update({f"AR_{a}": float(v) for a, v in recall["ar"].items()})
    values["proposals_per_video"] = float(recall["proposals_per_video"])
    parts = recall_by_video(gt, proposals, an, tiou)
    stats = pd.DataFrame({"metric": [f"{name}/AR_{a}" for a in parts["an"]], "video_id": parts["video_id"],
                          "numerator": parts["recalled"], "denominator": parts["instances"]})
    return {f"{name}/{k}": v for k, v in values.items()}, stats


def run_row(cfg: dict, seed: int, dataset, console=None, report: Callable[[int, float], None] | None = None
            ) -> RowOutcome:
    """Train (or load) the row's networks, infer on ``run.eval_split``, evaluate (see the module docstring)."""
    tc = validate_config(cfg)
    fusion = tc["fusion"]
    source = VideoFeatures(dataset, tc["grid"]["mode"], tc["grid"]["cells_per_paper_cell"], row_device(cfg))
    lengths = anchor_lengths(tc["model"]["scales"],
                             units_per_paper_cell(tc["grid"]["mode"], tc["grid"]["cells_per_paper_cell"]))
    train_split, eval_split = cfg["run"]["train_split"], cfg["run"]["eval_split"]
    train_ids, eval_ids = dataset.video_ids(train_split), dataset.video_ids(eval_split)
    classes = list(dataset.classes)
    train_gt, gt = dataset.instances(train_split), dataset.instances(eval_split)
    groups = {vid: g for vid, g in train_gt.groupby("video_id", sort=False)}
    train = tc["train"]
    videos = [prepare_training_video(vid, source.geometry(vid), groups.get(vid, train_gt.iloc[0:0]), classes,
                                     lengths, train["anchor_positive_iou"], train["anchor_negative_iou"])
              for vid in train_ids]

    joint = fusion == "late" and tc["late_fusion"] == "joint"
    networks = ["rgb", "flow"] + (["early"] if fusion == "early" else []) + (["late"] if joint else [])
    reporting = {"rgb": "rgb", "flow": "flow", "late": "late" if joint else "flow", "early": "early"}[fusion]
    nets = {network: new_network(cfg, seed, dataset, network).to(source.device) for network in networks}
    logs, loaded = {}, {}

    def after_epoch(epoch: int) -> None:
        detections, _, _, _ = predict(_output_model(fusion, nets), eval_ids, source, lengths, tc, classes,
                                      cfg["run"])
        report(epoch, float(evaluate_detection(gt, detections, [0.5]).map[0]))

    for network in [n for n in networks if n != reporting] + [reporting]:
        hook = after_epoch if report is not None and network == reporting else None
        logs[network], loaded[network] = train_or_load(cfg, seed, dataset, nets[network], network, videos, source,
                                                       lengths, console, hook)

    metrics: dict[str, float] = {}
    predictions: dict[str, pd.DataFrame] = {}
    stats: dict[str, pd.DataFrame] = {}
    infer_seconds = {}
    for name, kind in {"rgb": "rgb", "flow": "flow", "fusion": fusion}.items():
        if name == "fusion" and fusion not in ("early", "late"):
            continue
        start = time.perf_counter()
        detections, proposals, seconds, frames = predict(_output_model(kind, nets), eval_ids, source, lengths, tc,
                                                         classes, cfg["run"])
        infer_seconds[name] = time.perf_counter() - start
        predictions[name] = detections
        values, stats[name] = _evaluate(name, detections, proposals, gt, cfg)
        metrics.update(values)
        metrics[f"{name}/ms_per_3000_frames"] = 1000.0 * seconds * 3000.0 / frames
    own = "fusion" if fusion in ("early", "late") else fusion  # the row's output under the name "output"
    metrics.update({f"output/{k.split('/', 1)[1]}": v for k, v in list(metrics.items()) if k.startswith(f"{own}/")})
    predictions["output"] = predictions[own]
    stats["output"] = stats[own].assign(metric=stats[own]["metric"].str.replace(f"{own}/", "output/", n=1,
                                                                                regex=False))

    paper = parameter_counts(tc)
    actual = parameter_counts(tc, dataset.stream_dim("rgb"), len(classes))
    epoch_seconds = [s for n in networks for s in logs[n]["epoch_seconds"]]
    train_seconds = float(sum(epoch_seconds))
    trained = [n for n in networks if not loaded[n]]
    infer_per_video = infer_seconds[own] / max(len(eval_ids), 1)
    metrics.update({
        "time/ms_per_3000_frames": metrics["output/ms_per_3000_frames"],
        "params_m": paper[fusion] / 1e6,
        "params_m_actual": actual[fusion] / 1e6,
        "train_seconds": train_seconds,
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
        "infer_seconds_per_video": infer_per_video,
        "loaded_from_cache": float(not trained),
    })
    for network in networks:
        if logs[network]["losses"]:
            metrics.update({f"train_{network}/{k}": float(v) for k, v in logs[network]["losses"][-1].items()})
    timings = {"train": train_seconds, "infer": float(sum(infer_seconds.values())),
               "infer_per_video": infer_per_video, "loaded_from_cache": float(not trained)}
    return RowOutcome(
        metrics=metrics, predictions=predictions, video_stats=pd.concat(stats.values(), ignore_index=True),
        param_counts={f"paper_{k}": v for k, v in paper.items()} | {f"actual_{k}": v for k, v in actual.items()},
        timings=timings, checkpoint_dir=checkpoint_dir(network_config(cfg, reporting), seed, RUNNER),
    )
