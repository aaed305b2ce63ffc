"""The README's times are the measured ones: its table is the one benchmarks/times.py prints from
benchmarks/results/times.json, and no command line in the README carries a time of its own."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _times():
    spec = importlib.util.spec_from_file_location("times", ROOT / "benchmarks" / "times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_generated_from_times_json():
    times = _times()
    data = json.loads(times.RESULTS.read_text())
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- times:start -->\n(.*?)\n<!-- times:end -->", readme, re.S)
    assert block, "the README has no times block"
    assert block.group(1) == times.table(data), "regenerate: .venv/bin/python benchmarks/times.py --table"
    rows = data["commands"] + data["reproductions"]
    assert data["machine"]["cores"] and all(r["seconds"] > 0 for r in rows)
    assert ("loaded" in block.group(1)) == data["loaded"]  # the load is stated
    assert {r["command"].split()[2] for r in data["reproductions"]} >= {"tour", "newton", "demystified"}


def test_no_command_line_in_the_readme_states_its_own_time():
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        if line.startswith(".venv/bin/iclreg") and "#" in line:
            comment = line.split("#", 1)[1]
            assert not re.search(r"\d\s*(s|min|minutes|seconds)\b|\bseconds\b|\bminutes\b", comment), line
