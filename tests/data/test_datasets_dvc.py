"""datasets.dvc and activitynet.dvc: pin ActionFormer's THUMOS14 and ActivityNet archives and never enter the
default pipeline."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml
from helpers.paths import REPO

from talbench.config import load_params

DVC = [sys.executable, "-m", "dvc"]
PINNED_MD5 = "375f76ffbf7447af1035e694971ec9b2"
ANET_MD5 = "c415f50120b9425ee1ede9ac3ce11203"  # ActionFormer README, ../shared/data/README.md


def test_pin_matches_params():
    pin = yaml.safe_load((REPO / "datasets.dvc").read_text())
    data = load_params()["data"]
    assert pin["frozen"] is True
    assert pin["outs"] == [{"md5": PINNED_MD5, "hash": "md5", "path": data["thumos14_archive"]}]
    assert data["thumos14_archive_md5"] == PINNED_MD5
    assert "1zt2eoldshf99vJMDuu8jqxda55dCyhZP" in pin["deps"][0]["path"]  # ActionFormer's Google Drive file
    assert "data/archives" not in (REPO / "dvc.yaml").read_text()  # no stage of the pipeline reads it


def test_activitynet_pin_matches_params():
    pin = yaml.safe_load((REPO / "activitynet.dvc").read_text())
    anet = load_params()["data"]["activitynet"]
    assert pin["frozen"] is True
    assert pin["outs"] == [{"md5": ANET_MD5, "hash": "md5", "path": anet["archive"]}]
    assert anet["archive_md5"] == ANET_MD5 and anet["archive"].endswith("anet_1.3.tar.gz")
    assert "1VW8px1Nz9A17i0wMVUfxh6YsPCLVqL-S" in pin["deps"][0]["path"]  # ActionFormer's Google Drive file
    assert "data/archives" not in (REPO / "dvc.yaml").read_text()


@pytest.fixture
def dvc_repo(tmp_path):
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(tmp_path / "site"))
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    repo = tmp_path / "repo"
    repo.mkdir()

    def run(*args):
        return subprocess.run(
            args, check=False, cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )

    assert run("git", "init", "-q").returncode == 0
    assert run(*DVC, "init", "-q").returncode == 0
    shutil.copy(REPO / "datasets.dvc", repo / "datasets.dvc")
    shutil.copy(REPO / "activitynet.dvc", repo / "activitynet.dvc")
    (repo / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    return repo, run


def test_status_and_default_repro_without_the_archive(dvc_repo):
    repo, run = dvc_repo
    status = run(*DVC, "status", "datasets.dvc", "activitynet.dvc")
    assert status.returncode == 0, status.stderr
    # only the (expected) missing archives; the hand-written stage hashes are the ones DVC computes
    assert "not in cache:       data/archives/thumos.tar.gz" in status.stdout
    assert "not in cache:       data/archives/anet_1.3.tar.gz" in status.stdout
    assert "changed checksum" not in status.stdout
    repro = run(*DVC, "repro")
    assert repro.returncode == 0, repro.stderr
    assert (repo / "out.txt").read_text() == "hi\n" and not (repo / "data").exists()


def test_update_fetches_the_source_then_installs(dvc_repo, tmp_path):
    """`dvc update datasets.dvc` downloads from the pinned source (here a local stand-in archive)."""
    repo, run = dvc_repo
    source = tmp_path / "release" / "thumos"
    (source / "annotations").mkdir(parents=True)
    (source / "i3d_features").mkdir()
    (source / "annotations" / "thumos14.json").write_text('{"database": {}}')
    archive = tmp_path / "thumos.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="thumos")
    pin = (repo / "datasets.dvc").read_text()
    url = yaml.safe_load(pin)["deps"][0]["path"]
    (repo / "datasets.dvc").write_text(pin.replace(url, str(archive)))
    update = run(*DVC, "update", "datasets.dvc")
    assert update.returncode == 0, update.stderr
    fetched = repo / "data" / "archives" / "thumos.tar.gz"
    md5 = hashlib.md5(fetched.read_bytes()).hexdigest()
    assert md5 == hashlib.md5(archive.read_bytes()).hexdigest()
    assert (
        yaml.safe_load((repo / "datasets.dvc").read_text())["outs"][0]["md5"] == md5
    )  # drift shows in git diff

    from talbench.data import install_thumos14_archive

    root = install_thumos14_archive(fetched, repo / "data" / "thumos14", md5=md5, progress=False)
    assert (root / "annotations" / "thumos14.json").read_text() == '{"database": {}}'
    assert (root / "i3d_features").is_dir()
