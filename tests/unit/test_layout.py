"""The package's shape: no import circle, sans-IO modules free of Twisted, small modules.

These read the source with `ast` rather than importing it, so a circle hidden
behind a function-level import counts too; only imports under
`if TYPE_CHECKING:` are left out, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gateway"

# Past this a module usually holds two jobs; the issue that set it said "~500".
MAX_LINES = 600

# Modules that turn bytes or records into records or bytes and nothing else:
# they must load without Twisted or pyOpenSSL so that they stay testable and
# reusable by the next route or store.
SANS_IO = (
    "gateway.records",
    "gateway.addresses",
    "gateway.mt.submission",
    "gateway.mt.vendor",
    "gateway.intake.receipts",
    "gateway.intake.reports",
    "gateway.intake.mo",
    "gateway.connectors.common.mapping",
    "gateway.connectors.common.results",
    "gateway.connectors.common.mo",
    "gateway.connectors.common.payloads",
    "gateway.connectors.linksmpp.mapping",
    "gateway.connectors.pace",
    "gateway.http.answers",
    "gateway.http.chunked",
    "gateway.http.parser",
    "gateway.store.schema",
    "gateway.store.rows",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, here: str, is_package: bool) -> Iterator[str]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (name for child in node.orelse for name in _imports(child, here, is_package))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from gateway.x import y` may name the submodule gateway.x.y.
            yield from (f"{base}.{alias.name}" for alias in node.names)
        yield from _imports(node, here, is_package)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set(_imports(tree, name, path.name == "__init__.py"))
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_circle_in_gateway() -> None:
    graph = _graph()
    assert len(graph) > 50  # the walk really saw the package
    assert _cycles(graph) == []


def _parents(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


# Packages whose __init__ is their public face on purpose: every layer reads the
# config, and the split into one module per group of tables is its own business.
FACADES = {"gateway.config"}


def test_package_inits_do_not_import_their_children() -> None:
    """A package __init__ that imports its modules drags them into every import of a sibling."""
    graph = _graph()
    for name in graph:
        for parent in _parents(name):
            if parent in FACADES:
                continue
            assert name not in graph.get(parent, set()), (parent, name)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_is_small(name: str) -> None:
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it along its jobs"


SCRIPT = textwrap.dedent(
    """
    import importlib
    import sys

    for name in sys.argv[1:]:
        importlib.import_module(name)
    leaked = sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("twisted", "OpenSSL", "treq", "prometheus_client")
    )
    assert not leaked, leaked[:10]
    """
)


@pytest.mark.parametrize("name", SANS_IO)
def test_sans_io_module_loads_no_twisted(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
