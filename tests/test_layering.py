"""The package's layers, read from its imports: no cycle, no import upward (../shared/DESIGN.md).

Every ``import`` under ``attnlab/`` counts, at module level or inside a function (a lazy import
is still a dependency); only those under ``if TYPE_CHECKING:`` do not. Importing
``attnlab.a.b`` also runs the package ``attnlab.a`` (its ``__init__`` and what that re-exports),
so it is an edge to ``attnlab.a`` as well, unless the importer lives inside ``attnlab.a``.
The root package ``attnlab`` (the public facade) is loaded before any module, so only an
explicit ``import attnlab`` is an edge to it.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "attnlab"

# DESIGN.md's layers, bottom first: a module may import its own layer and those below.
# (The issue that asked for this test puts data, inspect and training on one layer;
# DESIGN.md puts training above data and inspect, and this table follows DESIGN.md.)
# A name maps itself and everything under it; the longest name that matches wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", (
        "attnlab.errors", "attnlab.checks", "attnlab.files", "attnlab.device", "attnlab.version",
    )),
    ("nn", ("attnlab.nn",)),
    ("models", ("attnlab.models",)),
    # interop: HF layout, GGUF (and the tokenizer files they carry); inference: generation,
    # decoding, prompting, and the fast paths the commands use (probe, compiled, packed, weight_quant).
    ("interop, inference", ("attnlab.interop", "attnlab.inference")),
    ("data, inspect", ("attnlab.data", "attnlab.inspect", "attnlab.compare", "attnlab.evaluation")),
    # The benchmark suites of attnlab.speed time the training loop and the commands' paths.
    ("training", ("attnlab.training", "attnlab.speed")),
    ("commands", ("attnlab.commands", "attnlab.cli", "attnlab.__main__", "attnlab")),
]


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its __init__)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST, package: str) -> list[tuple[str, int]]:
    """(dotted name, line) of every import in ``tree``, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[tuple[str, int]] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                pending.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                found += [(alias.name, child.lineno) for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from . import x, from ..a import b
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                # `from attnlab.a import b` imports the module attnlab.a.b when there is one.
                found += [(f"{base}.{alias.name}", child.lineno) for alias in child.names]
                found.append((base, child.lineno))
            pending.append(child)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {module it imports within attnlab: line of the first such import}."""
    modules = module_files()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for target, line in _imported_names(ast.parse(path.read_text(encoding="utf-8")), package):
            if target.split(".")[0] != "attnlab":
                continue
            while target not in modules:  # attnlab.a.b.SomeName -> attnlab.a.b
                target = target.rpartition(".")[0]
            # The module itself and the packages Python runs to reach it.
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                step = ".".join(parts[:end])
                if step != name and not name.startswith(step + "."):
                    edges.setdefault(step, line)
            if target == "attnlab" and name != "attnlab":
                edges.setdefault("attnlab", line)
        graph[name] = edges
    return graph


def layer_of(module: str) -> int | None:
    best, layer = "", None
    for index, (_, names) in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, layer = prefix, index
    return layer


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The shortest cycle (a path a -> ... -> a) through each module on one, each cycle once."""
    found, seen = [], set()
    for start in sorted(graph):
        parent: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if start in graph[node]:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                cycle = [*reversed(path), start]
                if frozenset(cycle) not in seen:  # the same cycle from another of its modules
                    seen.add(frozenset(cycle))
                    found.append(cycle)
                break
            for nxt in sorted(graph[node]):
                if nxt not in parent and nxt != start:
                    parent[nxt] = node
                    queue.append(nxt)
    return found


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            low, high = layer_of(module), layer_of(target)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]}), "
                             f"line {line}")
    return found


def test_every_module_has_a_layer():
    unplaced = sorted(name for name in module_files() if layer_of(name) is None)
    assert not unplaced, f"put these modules in a layer of LAYERS: {unplaced}"


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_import_goes_up_a_layer():
    found = upward_imports(import_graph())
    assert not found, f"{len(found)} upward import(s):\n" + "\n".join(found)


def test_the_walk_sees_lazy_imports_and_skips_type_checking():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from attnlab.a import hidden\n"
        "def f():\n    from attnlab.b import lazy\n"
        "from .c import d\n")
    names = {name for name, _ in _imported_names(tree, "attnlab.pkg")}
    assert "attnlab.b.lazy" in names and "attnlab.pkg.c.d" in names
    assert not any(name.startswith("attnlab.a") for name in names)
    assert cycles({"x": {"y": 1}, "y": {"z": 1}, "z": {"x": 1}, "w": {"x": 1}}) == [["x", "y", "z", "x"]]
