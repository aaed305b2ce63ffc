"""The import graph of src/iclreg has no circle: not between modules (imports inside functions
included, which is how a circle hides), and not between packages (``train`` may use ``analysis``,
so nothing in ``analysis`` may load a run through ``train``)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
PACKAGE = SRC / "iclreg"


def _modules() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The longest module of ``modules`` that ``name`` (a module or a name inside one) lies in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the iclreg modules it imports, anywhere in its body (TYPE_CHECKING blocks aside)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        tree = ast.parse(path.read_text())
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.dump(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else node.module or ""
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in targets:
                found = _target(name, modules)
                if found and found != module:
                    graph[module].add(found)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def _packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    out: dict[str, set[str]] = {}
    for m, targets in graph.items():
        out.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    return out


def test_no_module_imports_itself_back():
    assert circles(import_graph()) == []


def test_no_package_imports_itself_back():
    assert circles(_packages(import_graph())) == []


def test_the_check_finds_a_circle():
    """Negative control: a circle through a function-level import, as one hides in practice."""
    graph = import_graph()
    assert "iclreg.train.loop" in graph and "iclreg.analysis.evaluate" in graph["iclreg.train.loop"]
    graph["iclreg.analysis.evaluate"] = graph["iclreg.analysis.evaluate"] | {"iclreg.train.loop"}
    assert any({"iclreg.analysis.evaluate", "iclreg.train.loop"} <= set(c) for c in circles(graph))
    assert ["iclreg.analysis", "iclreg.train"] in circles(_packages(graph))
