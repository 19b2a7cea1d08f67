"""File input and output that never leaves a half-written result and never removes a user's file.

Outputs are written to a temporary sibling and renamed into place, so that a crash never leaves a
half-written result behind. A folder output (:func:`atomic_dir`) replaces only what the command owns: the
target is refused when it is the working directory or one of its ancestors, or a non-empty folder that is not
a previous output of the same command, and entries the command does not own (a user's notes) stay.
:func:`read_json` is the one JSON reader of user files (annotations, predictions): fast, and every problem
a :class:`talbench.errors.DataError` naming the file.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from talbench.errors import ConfigError, DataError


def _default_mode(directory: bool) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask (mkstemp/mkdtemp use 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _default_mode(directory=False))
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_output_dir(path: str | Path, previous_output: Callable[[Path], bool], what: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` may be (re)written by a command producing ``what``.

    Refused: the working directory or any of its ancestors (``--out .`` would empty the repository, ``.git``
    included), a path that is not a folder, and a non-empty folder for which ``previous_output(path)`` is
    false (a folder the command did not make)."""
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ConfigError(f"{path}: refusing to write {what} into the working directory or one of its "
                          "parents; give a new or empty folder")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder; give a new or empty folder for {what}")
    if path.is_dir() and any(path.iterdir()) and not previous_output(path):
        raise ConfigError(f"{path}: not empty and not a previous output of this command; nothing was "
                          f"written or removed: give a new or empty folder for {what}")


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, previous_output: Callable[[Path], bool], what: str,
               owned: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; when the block succeeds it takes ``path``'s place.

    ``path`` is checked first (:func:`check_output_dir`), so a refused target costs no work. The command
    replaces only what it owns: the top-level entries it wrote, or, when given, those for which
    ``owned(name)`` holds (so that stale entries of its previous output go too). Every other entry of an
    existing ``path`` (a user's notes) is moved into the new folder. The swap is two renames; if the process
    dies between them, the previous output waits, complete, in a hidden ``.<name>.*.old`` sibling."""
    path = Path(path)
    check_output_dir(path, previous_output, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        written = {entry.name for entry in tmp.iterdir()}
        is_owned = owned or written.__contains__
        if not all(map(is_owned, written)):
            raise ValueError(f"atomic_dir({path}): wrote entries it does not own: {sorted(written)}")
        os.chmod(tmp, _default_mode(directory=True))
        if not path.exists():
            os.replace(tmp, path)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old)  # onto the empty placeholder
        os.replace(tmp, path)
        for entry in sorted(old.iterdir()):
            if not is_owned(entry.name):
                os.replace(entry, path / entry.name)
        shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_compact_json(path: str | Path, obj) -> None:
    """``obj`` as compact JSON by orjson (a data file: about 10x faster than the indented standard writer;
    floats written shortest round-trip, so reading it back gives the same numbers)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(orjson.dumps(obj))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the garbage collector while a large file becomes Python objects: the hundreds of thousands of
    small containers of a prediction file (dicts, lists) trigger collector passes over all of them, which
    cost more than the parsing itself. Reentrant; the collector runs again afterwards as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_json(path: str | Path, what: str = "file") -> Any:
    """The JSON value in ``path``; :class:`DataError` naming the file when it is missing, a folder, not
    UTF-8 or not JSON. Parsed by orjson (several times faster than the standard parser) with the garbage
    collector paused (:func:`gc_paused`); files that are not strict JSON (``NaN``) by the standard parser."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError.at(path, f"{what} not found") from None
    except IsADirectoryError:
        raise DataError.at(path, f"is a folder, expected a JSON {what}") from None
    except OSError as err:
        raise DataError.at(path, f"cannot read the {what}: {err.strerror}") from None
    with gc_paused():
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # not strict JSON: the standard parser below names the problem (or reads NaN for the validators)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise DataError.at(path, f"not UTF-8 text (byte 0x{raw[bad.start]:02x} at offset {bad.start}); "
                                 f"a JSON {what} must be UTF-8") from None
    try:
        return json.loads(text)  # accepts NaN / Infinity, which Python writes and orjson refuses
    except json.JSONDecodeError as err:
        raise DataError.at(path, f"not valid JSON: {err}") from None
