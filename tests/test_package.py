"""The package's shape: every module imports, no import cycle between its packages, and each family's code
hash covers its own code only (adding another family's files changes nothing of it)."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys

import pytest

from talbench.code_scope import PACKAGE_DIR, code_hash, module_closure
from talbench.runners.families import FAMILIES

MODULES = sorted(
    ".".join(("talbench", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)).removesuffix(".__init__")
    for path in PACKAGE_DIR.rglob("*.py")
)


def package_of(module: str) -> str:
    """``talbench.runners.dnet.runner`` -> ``runners``; top-level modules are their own package."""
    return module.split(".")[1] if module.count(".") else module


def package_graph() -> dict[str, set[str]]:
    """Which talbench package imports which (static: every import statement, in functions too)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        source = package_of(".".join(("talbench", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                if name.startswith("talbench.") and package_of(name) != source:
                    graph.setdefault(source, set()).add(package_of(name))
    return graph


def test_every_module_imports():
    for module in MODULES:
        importlib.import_module(module)


def test_no_import_cycle_between_packages():
    graph = package_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail(f"import cycle: {' -> '.join([*path, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # the layering the architecture describes: models never reach up into runners, runners never into the
    # orchestration, evaluation and data never into each other's consumers
    assert not graph.get("models", set()) & {"runners", "benchmark", "tracking", "tune", "leaderboard"}
    assert not graph.get("runners", set()) & {"benchmark", "tracking", "tune", "leaderboard"}
    assert not graph.get("eval", set()) & {"data", "models", "runners", "benchmark"}


def test_family_closures_hold_their_own_code_only():
    for name, family in FAMILIES.items():
        files = {p.relative_to(PACKAGE_DIR).as_posix() for p in module_closure(family.module)}
        assert f"runners/{name}/runner.py" in files
        assert not {f for f in files if f.startswith(("leaderboard/", "tune/", "benchmark/", "tracking/", "cli"))}
        for other in set(FAMILIES) - {name}:
            assert not {f for f in files if f.startswith(f"runners/{other}/")}, (name, other)


def test_new_family_files_leave_the_code_hashes_unchanged(tmp_path):
    """A copy of the package with a new family (model, runner, shared block, a FAMILIES entry) gives every
    existing family the same code hash; editing shared evaluation code changes them."""
    shutil.copytree(PACKAGE_DIR, tmp_path / "talbench", ignore=shutil.ignore_patterns("__pycache__"))
    probe = ("from talbench.runners.families import FAMILIES; "
             "print(' '.join(f.code_hash() for f in sorted(FAMILIES.values(), key=lambda f: f.name)))")

    def hashes() -> list[str]:
        out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
        return out.stdout.split()

    before = hashes()
    assert before == [f.code_hash() for f in sorted(FAMILIES.values(), key=lambda f: f.name)]
    new = tmp_path / "talbench"
    (new / "runners" / "newfamily").mkdir()
    (new / "runners" / "newfamily" / "runner.py").write_text("from talbench.eval.detection import evaluate_detection\n")
    (new / "models" / "newfamily.py").write_text("import torch\n")
    (new / "models" / "blocks" / "new_block.py").write_text("import torch\n")
    families = new / "runners" / "families.py"
    families.write_text(families.read_text().replace(
        "FAMILIES: dict[str, Family] = {",
        'FAMILIES: dict[str, Family] = {\n    "newfamily": Family("newfamily", "talbench.runners.newfamily.runner:run_row", ()),'))
    after = hashes()
    assert len(after) == len(before) + 1
    assert [h for h in after if h in before] == before  # every old family keeps its hash
    (new / "eval" / "tiou.py").write_text((new / "eval" / "tiou.py").read_text() + "\n# edited\n")
    assert not set(hashes()) & set(before)


def test_code_hash_follows_imports_inside_functions():
    closure = {p.name for p in module_closure("talbench.runners.bsn.stage")}
    assert "generate.py" in closure and "eval/proposals.py" in {p.relative_to(PACKAGE_DIR).as_posix() for p in module_closure("talbench.runners.bsn.stage")}  # imported inside a function
    assert code_hash("talbench.runners.bsn.stage") != code_hash("talbench.data.synthetic.generate")
