"""House rule 1: one concept per module, about 400 lines at most; functions short enough to read
(at most 60 lines). Checked over every module in src/."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "iclreg"
MAX_MODULE, MAX_FUNCTION = 400, 60


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_module_over_400_lines():
    lengths = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in _modules()}
    long = {name: n for name, n in lengths.items() if n > MAX_MODULE}
    assert not long, f"modules over {MAX_MODULE} lines: {long}"


def test_no_function_over_60_lines():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION:
                    long[f"{path.relative_to(SRC)}:{node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION} lines: {long}"


def test_the_checker_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION))
    tree = ast.parse(f"def f():\n{body}\n")
    node = tree.body[0]
    assert node.end_lineno - node.lineno + 1 == MAX_FUNCTION + 1
