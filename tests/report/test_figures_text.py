"""Figure text is mathtext, not ASCII math: no "sigma^2", "K^T Q / sqrt(d+1)" or "E||w||^2" in
the titles, axis labels and legends handed to the figure functions of iclreg (report/figures.py,
the reproductions' figure code, the CLI's plots). Before, tour/he_estimators.png was titled
"sigma^2=0.1" and demystified/heads_H8.png "KQ = K^T Q / sqrt(d+1)".
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "iclreg"
FIGURE_CALLS = {"error_curves_figure", "lines_figure", "heads_figure", "bars_figure", "similarity_figure",
                "loss_figure", "set_title", "set_xlabel", "set_ylabel", "suptitle", "set", "annotate", "text"}
# a name not preceded by a backslash (``\sigma^2`` is mathtext), a plain-T transpose, ``||``
ASCII_MATH = re.compile(r"(?<!\\)\b(sigma|Sigma)\^|\^T\b|(?<!\\)\b(sqrt\(|omega_|mu_|sum_h)|\|\|")
FILES = sorted([*SRC.glob("experiments/*.py"), SRC / "report" / "figures.py", SRC / "cli.py"])


def _strings(node: ast.AST) -> list[str]:
    """The literal text of a call's arguments (f-string parts included; nested calls too)."""
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.append(sub.value)
    return out


def _figure_text(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in FIGURE_CALLS:
                args = [*node.args, *(k.value for k in node.keywords)]
                found += [(node.lineno, s) for a in args for s in _strings(a)]
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_ascii_math_in_figure_text(path):
    bad = [(line, s) for line, s in _figure_text(path) if ASCII_MATH.search(s)]
    assert not bad, f"{path.name}: write math as mathtext ($\\sigma^2$, $K^\\top Q$): {bad}"


def test_the_check_sees_the_old_titles():
    code = 'lines_figure(s, "D", "excess risk (risk - sigma^2)")\nfig.suptitle(f"KQ = K^T Q / sqrt(d+1)")\n'
    tmp = [s for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) for s in _strings(n)]
    assert sum(bool(ASCII_MATH.search(s)) for s in tmp) == 2
