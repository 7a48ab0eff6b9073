"""The import graph of src/chatloom reads one way: no cycles, and the lower layers never reach up.

Every import statement counts, the lazy ones inside functions included (they are cycles all the
same, only deferred); imports under ``if TYPE_CHECKING:`` do not. ``python tests/test_layering.py``
prints the graph's size, its cycles and which package imports which.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """``{module: modules of chatloom it imports}``."""
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if "scaffold" not in parts:
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def targets(current: str, node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = current.split(".") if modules[current].name == "__init__.py" else current.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # `from package import submodule` imports the submodule; `from module import name`, the module.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        found = set()
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != current:
                found.add(name)
        return found

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        graph[name] = set().union(
            *(
                targets(name, node)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only
            )
        )
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Which top-level part of chatloom (``models``, ``agents``, ``errors``...) imports which."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imported in graph.items():
        for other in imported:
            a, b = module.split(".")[1:2] or ["chatloom"], other.split(".")[1:2] or ["chatloom"]
            if a != b:
                edges[a[0]].add(b[0])
    return edges


GRAPH = import_graph()
EDGES = package_edges(GRAPH)


def test_the_graph_covers_the_package():
    assert {"chatloom.agents.agent", "chatloom.models.registry", "chatloom.cli.main"} <= set(GRAPH)
    assert "chatloom.agents.graph" in GRAPH["chatloom.agents.agent"]  # imported inside Agent._build only


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_foundations_import_only_errors():
    for base in ("errors", "config", "strict_yaml", "arithmetic", "plugins"):
        assert EDGES.get(base, set()) <= {"errors"}, f"chatloom.{base} imports {sorted(EDGES[base])}"


def test_inference_never_reaches_up():
    """Models run prompts; they know nothing of tools, agents, memory or the surfaces."""
    assert EDGES["models"] <= {"arithmetic", "config", "errors", "plugins"}, sorted(EDGES["models"])


def test_only_the_cli_imports_the_cli_and_the_server():
    for surface in ("cli", "server"):
        users = sorted(k for k, v in EDGES.items() if surface in v and k != "cli")
        assert users == [], f"{users} import chatloom.{surface}"


if __name__ == "__main__":
    print(
        f"{len(GRAPH)} modules, {sum(map(len, GRAPH.values()))} import edges (lazy ones included, TYPE_CHECKING excluded)"
    )
    print(f"cycles: {cycles(GRAPH) or 'none'}")
    for package in sorted(EDGES):
        print(f"  {package} -> {', '.join(sorted(EDGES[package]))}")
    sys.exit(1 if cycles(GRAPH) else 0)
