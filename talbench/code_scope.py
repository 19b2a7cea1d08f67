"""The code a result depends on: a module's static import closure inside talbench, and its hash.

A trained model or a recorded run must come from the same code to be reused, but only from the code that
produced it: a D-Net row depends on the D-Net runner and what it imports (the detector, the evaluator, the data
layer, ...), not on the leaderboard, the tuning code or another paper's model. :func:`module_closure` reads the
``import`` statements of a module (anywhere in the file, so imports inside functions count) with :mod:`ast`,
without importing anything, and follows the ones that name a talbench module (or a module of the same folder
tree as the root module, for runners defined outside the package); :func:`code_hash` hashes the sources of that
closure. Adding a new model family's files or editing the leaderboard leaves the closure of an existing
family's runner, and so its hash, unchanged.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path

PACKAGE = "talbench"
PACKAGE_DIR = Path(__file__).resolve().parent


def _module_file(name: str, local_root: Path | None) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``): a talbench module, or a module under
    ``local_root`` (the folder of a runner defined outside the package); None for anything else (standard
    library, installed packages)."""
    parts = name.split(".")
    if parts[0] == PACKAGE:
        base = PACKAGE_DIR.joinpath(*parts[1:])
    else:
        try:
            spec = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            return None
        if local_root is None or spec is None or not spec.origin or not Path(spec.origin).is_file():
            return None
        top = Path(spec.origin).resolve()
        if not top.is_relative_to(local_root):
            return None
        base = (top.parent if spec.submodule_search_locations else top.with_suffix("")).joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path, module: str) -> set[str]:
    """Dotted names of the modules (and ``from`` targets, which may be submodules) imported by ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.cache
def module_closure(*modules: str) -> tuple[Path, ...]:
    """Source files of ``modules`` and of every project module they import, transitively, with the
    ``__init__.py`` of every package on the way (importing ``a.b`` runs ``a/__init__.py``); sorted."""
    return tuple(sorted({path for module in modules for path in _closure(module)}))


def _closure(module: str) -> set[Path]:
    local_root = None
    if module.split(".")[0] != PACKAGE:
        spec = importlib.util.find_spec(module)
        local_root = Path(spec.origin).resolve().parent if spec is not None and spec.origin else None
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(name, local_root)
        if path is None:
            continue
        seen[name] = path
        pending.extend(_ancestors(name))
        pending.extend(_imported_names(path, name))
    if module not in seen:
        raise ModuleNotFoundError(f"no source file for module '{module}'")
    return set(seen.values())


def relative_paths(root: Path, *modules: str) -> list[str]:
    """:func:`module_closure` as POSIX paths relative to ``root`` (the repository root)."""
    return [path.relative_to(root).as_posix() for path in module_closure(*modules)]


@functools.cache
def code_hash(*modules: str) -> str:
    """sha1 over the sources of the closure of ``modules`` (file names relative to their tree, then bytes)."""
    digest = hashlib.sha1()
    for path in module_closure(*modules):
        name = path.relative_to(PACKAGE_DIR.parent) if path.is_relative_to(PACKAGE_DIR.parent) else path.name
        digest.update(Path(name).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
