"""The shape of ``src/``: small modules, no import cycles, a config module that imports nothing heavy."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / "restengine").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not inside functions, classes or ``if TYPE_CHECKING:``."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            pending += [*node.body, *node.orelse, *node.finalbody, *(s for h in node.handlers for s in h.body)]


def _package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``restengine`` modules it imports at import time (a name from a package is its ``__init__``)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in MODULES}
                continue
            base = node.module or ""
            if node.level:
                anchor = _package(module).split(".")
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    edges.add(f"{base}.{alias.name}")  # a submodule
                elif base in MODULES:
                    edges.add(base)
        edges.discard(module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_src_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_600_lines(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines: split it by concern"


@pytest.mark.parametrize("module", ["restengine.config", "restengine.ops.settings"])
def test_importing_the_settings_loads_neither_the_app_nor_the_driver(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "heavy = {'flask', 'pymongo', 'mongoengine', 'restengine.app', 'restengine.api'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def _documented_tree() -> set[str]:
    """The paths the tree in docs/architecture.md names, rebuilt from its indentation."""
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    block = text.split("## The tree", 1)[1].split("```", 2)[1]
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        name = line.split()[0]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = "".join(part for _, part in stack) + name
        paths.add(path.rstrip("/"))
        if name.endswith("/"):
            stack.append((depth, name))
    return paths


def test_the_architecture_document_matches_the_tree() -> None:
    documented = _documented_tree()
    root = SRC.parent
    actual = {
        str(path.relative_to(root))
        for top in (SRC / "restengine", root / "bench")
        for path in top.rglob("*.py")
        if path.name != "__init__.py" and "peers" not in path.parts
    }
    assert sorted(actual - documented) == [], "modules docs/architecture.md does not list"
    named_files = {p for p in documented if p.endswith(".py")}
    missing = sorted(p for p in named_files if not (root / p).exists())
    assert missing == [], "docs/architecture.md lists modules that do not exist"


def test_no_test_module_imports_another() -> None:
    tests = SRC.parent / "tests"
    offenders = [
        str(path.relative_to(tests))
        for path in tests.rglob("test_*.py")
        if re.search(r"^\s*from tests\.(?:\w+\.)*test_\w+ import", path.read_text(), re.MULTILINE)
    ]
    assert offenders == [], "shared test code goes in a helpers module"
