"""The one GPU check script (``benchmarks/gpu.sh``): its dry run end to end on the CPU, so that
it cannot rot between the sessions that are lent a GPU, and the pieces it judges with."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu.py")
gpu = sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)  # (dataclasses look it up)
spec.loader.exec_module(gpu)


@pytest.fixture(scope="module")
def dry(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("gpu")
    env = {**os.environ, "ICLREG_PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "gpu.json").read_text()), out


def measured_or_skipped(row: dict) -> None:
    assert row["status"] in ("ok", "skipped"), row
    if row["status"] == "skipped":
        assert row["reason"].startswith("skipped: "), row


def test_dry_run_reports_the_gpu_tests(dry):
    report, out = dry
    tests = report["gpu_tests"]
    assert report["mode"] == "dry" and tests["status"] == "ok", tests
    assert tests["failed"] == tests["errors"] == 0
    assert tests["passed"] + tests["skipped"] >= 1  # the suite has GPU tests: each ran or was skipped
    assert (out / "gpu.txt").read_text().startswith("iclreg GPU check (dry, cpu)")


def test_dry_run_has_a_train_step_row_per_batch_and_engine(dry):
    rows = dry[0]["train_step"]
    assert [(r["batch"], r["engine"]) for r in rows] == [
        (b, e) for b in gpu.DRY.batches for e in gpu.ENGINES]
    for row in rows:
        measured_or_skipped(row)
        if row["status"] == "ok":
            ref, ours = row["reference_steps_per_s"], row["engine_steps_per_s"]
            assert ref > 0 and ours > 0 and math.isclose(row["ratio"], ours / ref, rel_tol=1e-12)
            assert row["mfu"] is None and row["mfu_reason"]  # no known peak on the CPU
    assert {r["engine"] for r in rows if r["status"] == "ok"} == {"eager"}


def test_dry_run_has_an_ensemble_row_per_size(dry):
    ens = dry[0]["ensemble"]
    assert ens["status"] == "ok" and ens["cuda_graph"] is False and ens["graph_reason"]
    assert [r["E"] for r in ens["rows"]] == list(gpu.DRY.members)
    for row in ens["rows"]:
        assert row["status"] == "ok", row
        assert math.isclose(row["model_steps_per_s"], row["E"] * row["steps_per_s"], rel_tol=1e-12)
        assert math.isclose(row["ratio"], row["model_steps_per_s"] / ens["single_steps_per_s"],
                            rel_tol=1e-12)
        assert row["bytes_per_member"] > 0


def test_dry_run_slices_one_reproduction_and_names_the_others(dry):
    from iclreg.experiments import REPRODUCTIONS

    report, out = dry
    rows = report["reproductions"]
    assert [r["paper"] for r in rows] == list(REPRODUCTIONS.names())
    assert rows[0]["status"] in ("ok", "timeout"), rows[0]["run"]["tail"]
    assert "--runs" in rows[0]["run"]["cmd"] and str(out / "full-runs") in rows[0]["run"]["cmd"]
    for row in rows[1:]:
        measured_or_skipped(row)
        assert row["status"] == "skipped"
    # the dry sizes are not the targets' sizes: every target says so rather than guessing
    assert [t["verdict"] for t in report["targets"]] == ["not measured"] * 3


def test_targets_take_the_best_engine_and_compare_with_the_bound():
    rows = [{"batch": 64, "engine": "eager", "ratio": 3.0, "mfu": 0.1},
            {"batch": 64, "engine": "bf16", "ratio": 12.5, "mfu": 0.2},
            {"batch": 1024, "engine": "eager", "ratio": 40.0, "mfu": 0.30},
            {"batch": 1024, "engine": "bf16", "ratio": None, "mfu": None}]
    ens = {"cuda_graph": True, "rows": [{"E": 16, "ratio": 15.0}, {"E": 256, "ratio": 499.0}]}
    got = {t["target"]: (t["measured"], t["by"], t["verdict"]) for t in gpu.targets(rows, ens)}
    assert got == {"ratio_b64": (12.5, "bf16", "met"), "mfu_b1024": (0.30, "eager", "not met"),
                   "ensemble_e256": (499.0, "cuda_graph", "not met")}
    none = gpu.targets([], {"cuda_graph": False, "rows": []})
    assert [t["verdict"] for t in none] == ["not measured"] * 3


def test_run_stops_a_command_at_its_limit_and_records_a_timeout():
    res = gpu.run([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], 3)
    assert res["timed_out"] and gpu.outcome(res) == "timeout"
    assert res["seconds"] < 20 and "started" in res["tail"]
    ok = gpu.run([sys.executable, "-c", "raise SystemExit(3)"], 30)
    assert not ok["timed_out"] and ok["rc"] == 3 and gpu.outcome(ok) == "failed"
