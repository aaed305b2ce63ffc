"""House rule 1: one concept per module, about 400 lines at most; functions short enough to read
(at most 60 lines). Checked over every module in src/."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "iclreg"
MAX_MODULE, MAX_FUNCTION = 400, 60


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def long_functions(path: Path) -> dict[str, int]:
    """name -> length of every function in ``path`` longer than ``MAX_FUNCTION`` lines."""
    long = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION:
                long[node.name] = length
    return long


def test_no_module_over_400_lines():
    lengths = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in _modules()}
    long = {name: n for name, n in lengths.items() if n > MAX_MODULE}
    assert not long, f"modules over {MAX_MODULE} lines: {long}"


def test_no_function_over_60_lines():
    long = {f"{p.relative_to(SRC)}:{name}": n for p in _modules() for name, n in long_functions(p).items()}
    assert not long, f"functions over {MAX_FUNCTION} lines: {long}"


def test_the_checker_finds_a_long_method_and_spares_one_at_the_limit(tmp_path):
    def body(lines: int) -> str:
        return "\n".join(f"        x{i} = {i}" for i in range(lines - 1))

    path = tmp_path / "module.py"
    path.write_text(f"class A:\n    def short(self):\n{body(MAX_FUNCTION)}\n\n"
                    f"    def long(self):\n{body(MAX_FUNCTION + 1)}\n")
    assert long_functions(path) == {"long": MAX_FUNCTION + 1}
