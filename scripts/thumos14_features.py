"""Install the real THUMOS14 I3D features from ActionFormer's ``thumos.tar.gz`` into ``data.thumos14_root``.

    dvc update datasets.dvc                                   # download the pinned archive (network), then
    python scripts/thumos14_features.py                       # verify md5, unpack, check every feature file
    python scripts/thumos14_features.py --archive ~/thumos.tar.gz   # an archive you already have

The md5 must be the pinned 375f76ffbf7447af1035e694971ec9b2 (ActionFormer's README); the archive is
unpacked atomically into the ActionFormer layout (``annotations/thumos14.json``, ``i3d_features/``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from talbench.config import load_params, resolve
from talbench.data import install_thumos14_archive, open_dataset
from talbench.errors import ConfigError, DataError


def main(argv: list[str] | None = None) -> int:
    params = load_params()
    data = params["data"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=Path(data["thumos14_archive"]), help="thumos.tar.gz")
    parser.add_argument("--root", type=Path, default=Path(data["thumos14_root"]), help="where to unpack")
    parser.add_argument("--skip-validation", action="store_true", help="do not read every feature file")
    args = parser.parse_args(argv)
    console = Console()
    try:
        install_thumos14_archive(args.archive, args.root, md5=data["thumos14_archive_md5"])
        cfg = copy.deepcopy(resolve(params))
        cfg["data"].update(source="thumos14", thumos14_root=str(args.root))
        dataset = open_dataset(cfg)
        if not args.skip_validation:
            dataset.validate_all()
    except (ConfigError, DataError) as err:
        console.print(Text.assemble(("error:", "bold red"), " ", str(err)), soft_wrap=True)
        return 2
    console.print(
        f"THUMOS14 in {args.root}: {len(dataset.video_ids('train'))} training and "
        f"{len(dataset.video_ids('test'))} test videos, checksum {dataset.checksum()}"
    )
    console.print(Text(dataset.report.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
