"""BSN proposals of a list of videos (Lin et al., ECCV 2018, sec. 3.5, eq. 9): TEM curves -> PGM candidates ->
PEM confidence -> score ``p_start x p_end x p_conf`` -> Gaussian Soft-NMS, times in seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from talbench.progress import task_progress
from talbench.runners.bsn.pgm import cells_to_seconds, tem_curves, video_candidates, window_stride
from talbench.runners.bsn.train import BSN
from talbench.runners.common.device import autocast, module_device


@torch.no_grad()
def generate_proposals(model: BSN, dataset, video_ids: list[str], console: Console | None = None) -> pd.DataFrame:
    """BSN proposals of ``video_ids``: ``video_id, start, end, score, xmin_score, xmax_score, iou_score``
    (seconds). Scores ``p_start x p_end x p_conf`` (eq. 9) are Soft-NMS'ed (Gaussian) per video, all videos
    in one vectorized :func:`talbench.ops.nms.batched_nms` call, keeping ``max_proposals`` each."""
    from talbench.ops.nms import batched_nms

    settings = model.settings
    with task_progress(console, disable=console is None) as progress:
        frames = [
            _video_candidates_scored(model, dataset, video_id)
            for video_id in progress.track(video_ids, description="BSN proposals")
        ]
    candidates = pd.concat(frames, ignore_index=True)
    keep, scores = batched_nms(
        candidates[["start", "end"]].to_numpy(np.float64),
        candidates["score"].to_numpy(np.float64),
        candidates["video_id"].to_numpy(),
        method="gaussian",
        sigma=settings["soft_nms_sigma"],
        top_k=settings["max_proposals"],
    )
    kept = candidates.iloc[keep].assign(score=scores)
    order = np.lexsort((-kept["score"].to_numpy(), pd.factorize(kept["video_id"])[0]))
    return kept.iloc[order].reset_index(drop=True)


def _video_candidates_scored(model: BSN, dataset, video_id: str) -> pd.DataFrame:
    """TEM curves -> PGM candidates -> PEM confidence -> score (eq. 9), for one video, before Soft-NMS."""
    settings = model.settings
    features = dataset.features(video_id, settings["stream"])
    centers = np.asarray(dataset.snippet_centers(video_id), dtype=np.float64)
    curves = tem_curves(model.tem, features, settings["window"], window_stride(settings), model.run)
    cells, start_score, end_score, bsp = video_candidates(curves, settings, settings["pem_top_k_infer"])
    device = module_device(model.pem)
    with autocast({"run": model.run}, device):
        conf = model.pem(torch.from_numpy(bsp).to(device))
    conf = conf.float().cpu().numpy().astype(np.float64)
    segments = cells_to_seconds(cells, centers).reshape(-1, 2)
    return pd.DataFrame(
        {
            "video_id": video_id,
            "start": segments[:, 0],
            "end": segments[:, 1],
            "score": start_score * end_score * conf,
            "xmin_score": start_score,
            "xmax_score": end_score,
            "iou_score": conf,
        }
    )
