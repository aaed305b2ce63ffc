"""The projection script (``benchmarks/project.py``): on the test-time reproduction's toy plan,
every run is counted in exactly one training loop, and each loop's projection is its seconds
per step times its steps."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

from iclreg.experiments import REPRODUCTIONS

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("project_script", ROOT / "benchmarks" / "project.py")
project = sys.modules["project_script"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(project)


def test_toy_plan_is_grouped_once_and_projected_per_loop():
    kind = REPRODUCTIONS.get("test-time")
    plan = kind(mode="quick", sizes=kind.toy).plan(kind.toy)
    seen = []
    result = project.project("test-time", mode="toy", steps=1, seconds=5.0,
                             report=lambda index, row: seen.append(index))
    loops = result["loops"]
    assert seen == list(range(1, len(loops) + 1))
    counted = [name for row in loops for name in row["runs"]]
    assert sorted(counted) == sorted(plan)  # every run of the plan in exactly one loop
    assert result["runs"] == len(plan)
    for row in loops:
        assert row["measured"], row.get("reason")
        assert row["members"] == len(row["runs"]) >= 1
        assert row["steps_shared"] and row["steps"] == plan[row["runs"][0]].train.steps
        assert row["seconds_per_step"] > 0 and row["projected_s"] > 0
        assert math.isclose(row["projected_s"], row["seconds_per_step"] * row["steps"])
    assert math.isclose(result["total_s"], sum(row["projected_s"] for row in loops))
    assert result["fits"] and not result["lower_bound"]
