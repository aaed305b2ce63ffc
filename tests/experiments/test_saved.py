"""The saved measurements (``experiments.saved``): a reproduction written to measurements.json
comes back with the same types and values, so its report is the same text; ``iclreg report``
refuses what it cannot read with a one-line error; paper modules draw nothing themselves."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from iclreg.cli import main
from iclreg.experiments import saved
from iclreg.experiments.base import Reproduction, Section
from iclreg.experiments.claims import (
    AtLeast,
    AtMost,
    Between,
    Check,
    Claim,
    Falls,
    Near,
    Rises,
    fact,
    paired,
    versus_theory,
)
from iclreg.report.markdown import reproduction_report
from iclreg.report.plots import Plot
from iclreg.report.references import HE_2025

EXPERIMENTS = Path(__file__).parents[2] / "src" / "iclreg" / "experiments"


def _reproduction() -> Reproduction:
    """Values of every kind an analysis hands over: tuples, int keys, arrays, tensors, inf/nan."""
    a = [0.1, 0.25, 0.3, 0.2]
    claims = [
        Claim.within("1-near", "near", 0.2413, 0.243, abs=0.02),
        Claim.in_range("2-range", "range", "-1", (-1.01, -0.99), low=-1.2, high=-0.8),
        Claim.falls_with("3-falls", "falls", "falls", {10: 0.1, 100: 0.02}),
        Claim.of("4-of", "general", "theory", {"a": 1.5, "b": math.inf},
                 paired("a - b", a, [0.0, 0.2, 0.1, 0.3], side="at_most", target=0.5),
                 versus_theory("vs", 0.51, 0.01, 0.5, theory_se=0.002, grid=1e-3), fact("minimum", True),
                 Check("rises", [1, 2, 3], Rises()), Check("lo", 2.0, AtLeast(1.0, strict=True)),
                 Check("hi", np.float32(0.5), AtMost(1.0)), Check("between", 0.3, Between(0.0, 1.0)),
                 Check("falls", [3, 2, 1], Falls(0.1)), Check("near", 1.0, Near(1.0, 0.1, 0.0, 0.0, 3.0))),
        Claim.unmeasured("5-gpu", "needs a GPU", 0.1, "a GPU job"),
    ]
    plot = Plot("lines", {"trained": ([1, 2], np.array([0.5, 0.25]))}, "k", "MSE",
                hlines={"floor": 0.1}, bands={"trained": ((0.4, 0.6), (0.2, 0.3))})
    kq = np.random.default_rng(0).normal(size=(2, 3, 3))
    heads = Plot("heads", kq, np.ones((2, 3), np.float32), title="t")
    section = Section("1. A section", ["text with $x^2$", ""], claims, {"a.png": plot, "b.png": heads},
                      {"k": [1, 2], "nan": math.nan})
    return Reproduction("paper", "A title", "quick", [section], ["a.png", "b.png"], 12.5, (HE_2025,))


def _same(a, b) -> bool:
    """Equal in type and value, recursively (NaN equal to NaN; arrays and tensors by dtype and
    values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(((a == b) | (a.isnan() & b.isnan()) if a.is_floating_point() else a == b).all())
    if isinstance(a, Plot):
        return a.kind == b.kind and _same(a.args, b.args) and _same(a.kwargs, b.kwargs)
    if hasattr(a, "__dataclass_fields__"):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


def test_a_reproduction_comes_back_with_its_types_and_report(tmp_path):
    original = _reproduction()
    saved.save(original, tmp_path)
    loaded = saved.load(tmp_path)
    assert _same(original, loaded)
    assert [c.holds for c in loaded.claims] == [c.holds for c in original.claims]
    assert [c.holds for c in original.claims] == [True, True, True, True, False]
    assert reproduction_report(loaded) == reproduction_report(original)
    assert json.dumps(loaded.to_json()) == json.dumps(original.to_json())


def test_the_file_is_strict_json_with_inf_and_nan_tagged(tmp_path):
    """inf, -inf and nan (floats, numpy scalars, array entries) are written as tagged strings, so
    a strict JSON reader takes the file, and come back as the same values."""
    value = {"f": [math.inf, -math.inf, math.nan, 1.5], "s": np.float32(math.inf),
             "a": np.array([math.nan, 2.0]), "t": torch.tensor([-math.inf])}
    text = json.dumps(saved.encode(value), allow_nan=False)  # raises on a bare inf or nan
    assert "Infinity" not in text and "NaN" not in text
    assert _same(saved.decode(json.loads(text)), value)
    saved.save(_reproduction(), tmp_path)
    json.loads((tmp_path / saved.FILE).read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))


def test_tensors_and_numpy_values_keep_their_dtype():
    value = {"t": torch.randn(2, 3, dtype=torch.float32), "s": np.int64(3), (1, 2): [np.float16(0.5)]}
    back = saved.decode(json.loads(json.dumps(saved.encode(value))))
    assert _same(back, value)


def test_the_comparison_of_types_is_not_vacuous():
    """Negative control for the round-trip check: a tuple that came back as a list, an int key as
    a string, a float32 array as float64 are all told apart."""
    assert not _same((1, 2), [1, 2])
    assert not _same({1: 0.5}, {"1": 0.5})
    assert not _same(np.zeros(2, np.float32), np.zeros(2))
    # and a plain json round trip would lose exactly these
    plain = json.loads(json.dumps({"t": (1, 2)}))
    assert not _same(plain, {"t": (1, 2)})


def test_an_object_the_format_does_not_know_is_refused_at_save(tmp_path):
    section = Section("s", data={"model": torch.nn.Linear(1, 1)})
    with pytest.raises(TypeError, match="cannot save a Linear"):
        saved.save(Reproduction("p", "t", "quick", [section]), tmp_path)


def test_report_of_a_directory_without_measurements_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no measurements.json" in err and "\n" not in err
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / saved.FILE).write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a measurements file" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [saved.FILE]  # nothing written


def test_report_redraws_a_saved_reproduction(tmp_path, capsys):
    saved.save(_reproduction(), tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    assert "1 report redrawn" in capsys.readouterr().out
    for name in ("report.md", "report.html", "claims.json", "results.json", "a.png", "a.pdf", "b.png"):
        assert (tmp_path / name).stat().st_size > 0, name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_paper_modules_measure_and_claim_but_never_draw():
    """No module of experiments/ imports matplotlib or a figure module: figures are Plots, drawn
    by the runner from the saved measurements."""
    drawing = {}
    for path in EXPERIMENTS.rglob("*.py"):
        bad = {n for n in _imports(path) if n.startswith("matplotlib") or "report.figures" in n
               or n.endswith("report.style")}
        if bad:
            drawing[path.relative_to(EXPERIMENTS).as_posix()] = sorted(bad)
    assert not drawing, drawing


FRAMEWORK = {"__init__.py", "base.py", "claims.py", "runner.py", "saved.py"}  # not a paper's


def test_every_paper_module_is_at_most_250_lines():
    """A paper's modules (plan, measurement, claims, section text) stay short enough to read."""
    long = {path.relative_to(EXPERIMENTS).as_posix(): n for path in EXPERIMENTS.rglob("*.py")
            if path.name not in FRAMEWORK and (n := len(path.read_text().splitlines())) > 250}
    assert not long, long
