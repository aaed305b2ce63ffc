"""The per-member cost benchmark (``benchmarks/per_member.py``): it times the two products on
every family, and leaves the family modules' ``per_member`` as it found them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from iclreg.train.fused import cot, reduced_attention, softmax_attention
from iclreg.train.fused.base import per_member

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("per_member_script", ROOT / "benchmarks" / "per_member.py")
script = sys.modules["per_member_script"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def test_every_family_is_timed_both_ways_and_restored():
    for shape in ("he_H1", "boursier", "cot"):
        row = script.measure(shape, members=2, trials=1)
        assert row["per_member_ms"] > 0 and row["bmm_ms"] > 0
        assert row["per_member_over_bmm"] == row["per_member_ms"] / row["bmm_ms"]
    assert all(m.per_member is per_member for m in (cot, reduced_attention, softmax_attention))
