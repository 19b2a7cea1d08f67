"""Atomic outputs: complete or absent, never half-written, with ordinary permissions, never at the cost of a
user's file; the JSON reader's errors."""

import os
import stat

import pytest

from talbench.errors import ConfigError, DataError
from talbench.io import atomic_dir, atomic_write_json, atomic_write_text, read_json


def _marked(folder):
    return (folder / "meta.json").is_file()


def _output(path, **options):
    return atomic_dir(path, previous_output=_marked, what="test output", **options)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), _output(tmp_path / "folder") as tmp:
        (tmp / "a.txt").write_text("partial")
        raise RuntimeError("crash")
    assert not (tmp_path / "folder").exists()
    atomic_write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left over


def test_outputs_get_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with _output(tmp_path / "d") as tmp:
            (tmp / "inner.txt").write_text("y")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert (tmp_path / "d" / "inner.txt").read_text() == "y"


def test_a_users_folder_is_refused_and_left_alone(tmp_path, monkeypatch):
    """`talbench synth --out DIR` used to rmtree DIR, and `--out .` the working directory."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes: not empty and not a previous output of this command"), \
            _output(notes) as tmp:
        (tmp / "meta.json").write_text("{}")
    assert [p.name for p in notes.iterdir()] == ["todo.txt"] and (notes / "todo.txt").read_text() == "mine"
    work = tmp_path / "repo" / "sub"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    for target in (".", work, tmp_path / "repo", tmp_path, "/"):
        with pytest.raises(ConfigError, match="working directory or one of its parents"), _output(target):
            pass
    (tmp_path / "file").write_text("a file")
    with pytest.raises(ConfigError, match="exists and is not a folder"), _output(tmp_path / "file"):
        pass
    assert (work / "keep.txt").read_text() == "x" and (tmp_path / "file").read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes", "repo"]  # no temporary left


def test_previous_output_replaced_only_where_owned(tmp_path):
    """Replacing a previous output keeps what the user added to it; `owned` also removes stale own entries."""
    out = tmp_path / "out"
    with _output(out) as tmp:
        (tmp / "meta.json").write_text("1")
        (tmp / "data_a.txt").write_text("old a")
        (tmp / "data_b.txt").write_text("old b")
    (out / "my_notes.md").write_text("mine")
    with _output(out) as tmp:
        (tmp / "meta.json").write_text("2")
        (tmp / "data_a.txt").write_text("new a")
    assert sorted(p.name for p in out.iterdir()) == ["data_a.txt", "data_b.txt", "meta.json", "my_notes.md"]
    assert (out / "data_a.txt").read_text() == "new a" and (out / "my_notes.md").read_text() == "mine"
    with _output(out, owned=lambda name: name.startswith(("data_", "meta"))) as tmp:
        (tmp / "meta.json").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "my_notes.md"]
    with pytest.raises(ValueError, match="wrote entries it does not own"), \
            _output(out, owned=lambda name: name == "meta.json") as tmp:
        (tmp / "meta.json").write_text("4")
        (tmp / "other.txt").write_text("?")
    assert (out / "meta.json").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_read_json_errors_name_the_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes('{"label": "Caf\xe9"}'.encode("latin-1"))
    with pytest.raises(DataError, match=r"a.json: not UTF-8 text \(byte 0xe9 at offset 14\)"):
        read_json(path)
    path.write_text('{"a": [1, 2,]}')
    with pytest.raises(DataError, match="a.json: not valid JSON: Expecting value: line 1 column 13"):
        read_json(path)
    with pytest.raises(DataError, match="b.json: annotation file not found"):
        read_json(tmp_path / "b.json", "annotation file")
    with pytest.raises(DataError, match="is a folder, expected a JSON file"):
        read_json(tmp_path)
    path.write_text('{"a": NaN, "b": [1.5]}')  # not strict JSON, but what Python writes: the validators judge it
    value = read_json(path)
    assert value["b"] == [1.5] and value["a"] != value["a"]
