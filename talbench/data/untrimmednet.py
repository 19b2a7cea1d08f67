"""UntrimmedNet (Wang et al., CVPR'17) video-level class scores on THUMOS14 test.

The scores D-Net, P-GCN and G-TAD fuse with their detections: ``uNet_test.npy`` is float32 ``(1574, 101)``,
row ``int(video_test_XXXXXXX) - 1``, column ``UCF101 class id - 1``. The 20 THUMOS14 detection classes are a
subset of UCF101; their ids are those of the official THUMOS14 class list (and G-TAD's mapping). The values
are raw network outputs, not probabilities (some exceed 1): they are returned unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from talbench.errors import DataError

# THUMOS14 detection class -> UCF101 class id (1-based), from THUMOS14's Class Index / detclasslist.
THUMOS14_UCF101_IDS: dict[str, int] = {
    "BaseballPitch": 7, "BasketballDunk": 9, "Billiards": 12, "CleanAndJerk": 21, "CliffDiving": 22,
    "CricketBowling": 23, "CricketShot": 24, "Diving": 26, "FrisbeeCatch": 31, "GolfSwing": 33,
    "HammerThrow": 36, "HighJump": 40, "JavelinThrow": 45, "LongJump": 51, "PoleVault": 68, "Shotput": 79,
    "SoccerPenalty": 85, "TennisSwing": 92, "ThrowDiscus": 93, "VolleyballSpiking": 97,
}  # fmt: skip
UCF101_CLASSES = 101
TEST_PREFIX = "video_test_"


def load_untrimmednet_scores(
    path: str | Path, video_ids: Iterable[str], classes: list[str] | None = None
) -> pd.DataFrame:
    """Scores ``video_id x class`` (columns in ``classes`` order, default the 20 THUMOS14 classes)."""
    path = Path(path)
    classes = list(classes or THUMOS14_UCF101_IDS)
    try:
        scores = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError.at(path, "UntrimmedNet score file not found", field="scores") from None
    if scores.ndim != 2 or scores.shape[1] != UCF101_CLASSES:
        raise DataError.at(
            path, f"expected shape (videos, {UCF101_CLASSES}), got {scores.shape}", field="scores"
        )
    unknown = [c for c in classes if c not in THUMOS14_UCF101_IDS]
    if unknown:
        raise DataError.at(path, f"no UCF101 id for class(es) {unknown}", field="classes")
    video_ids = list(video_ids)
    rows = []
    for video_id in video_ids:
        number = video_id.removeprefix(TEST_PREFIX)
        if not video_id.startswith(TEST_PREFIX) or not number.isdigit():
            raise DataError.at(
                path, f"expected a '{TEST_PREFIX}NNNNNNN' id", video=video_id, field="video_id"
            )
        if not 1 <= int(number) <= scores.shape[0]:
            raise DataError.at(
                path,
                f"row {int(number) - 1} is outside the {scores.shape[0]} rows",
                video=video_id,
                field="row",
            )
        rows.append(int(number) - 1)
    columns = [THUMOS14_UCF101_IDS[c] - 1 for c in classes]
    table = scores[np.asarray(rows, dtype=np.int64)][:, columns]
    if not np.isfinite(table).all():
        bad = video_ids[int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0])]
        raise DataError.at(path, "NaN/Inf scores", video=bad, field="scores")
    frame = pd.DataFrame(
        table.astype(np.float32), index=pd.Index(video_ids, name="video_id"), columns=classes
    )
    return frame
