"""resources: peak memory measured on meta tensors equals what the real code allocates, costs
no memory itself, and a working set beyond the free memory is refused in one line."""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path

import pytest
import torch

from iclreg import resources
from iclreg.errors import UsageError
from iclreg.estimators import build as build_estimator
from iclreg.resources import PeakMemory, check_fits, dry, evaluation_bytes, peak_bytes
from iclreg.tasks import build as build_task


def test_peak_counts_live_tensors_only():
    """Views and in-place results share storage; freed tensors stop counting."""

    def fn():
        a = torch.empty(1000, 1000, dtype=torch.float64)  # 8,000,000 bytes
        b = torch.empty(500)  # 2,000 bytes (float32)
        a.t()[0].view(-1)[:10].add_(1.0)  # views and an in-place op: nothing new
        del a
        c = torch.empty(100, 100, dtype=torch.float64)  # 80,000 bytes, after a is freed
        return b, c

    assert peak_bytes(fn) == 8_000_000 + 2_000


@pytest.mark.parametrize("spec", ["ols", "ridge:lam=0.5", "gd:steps=3", "newton:steps=2", "kernel",
                                  "knn:k=2", "bayes", "pgd:steps=2", "single_head", "averaging"])
def test_a_dry_run_measures_what_the_real_run_allocates(spec):
    task = build_task("gaussian:d=4,n=9,noise_std=0.5,cov=toeplitz")
    prompts = task.sample(16, 0, 0, dtype=torch.float64)
    estimator = build_estimator(spec, task=task)
    fresh = build_estimator(spec, task=dataclasses.replace(task))  # builds its covariance anew, as dry's
    with torch.no_grad(), PeakMemory() as real:  # real CPU tensors, counted as they are created
        fresh(prompts.x, prompts.y)
    x, y = (t.to("meta") for t in (prompts.x, prompts.y))
    with torch.no_grad():
        measured = peak_bytes(lambda: dry(estimator)(x, y))
    assert measured == real.peak > 0
    assert task.covariance.device.type == "cpu"  # the dry run left the real task alone


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_measuring_a_huge_evaluation_allocates_nothing():
    task = build_task("gaussian:d=100000,n=41")
    estimators = {"ols": build_estimator("ols", task=task), "gd": build_estimator("gd:steps=2")}
    before, start = _max_rss(), time.perf_counter()
    need = evaluation_bytes(task, estimators, 1024, task.n, torch.float64)
    assert time.perf_counter() - start < 10
    # the prompts alone: 1024 * 41 * (100000 + 1) float64; gd's prefix moments are (B, n, d, d)
    assert need >= 1024 * 41 * 100000 * 100000 * 8
    assert _max_rss() - before < 2**30


def test_a_working_set_beyond_the_free_memory_is_refused(monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda device: 2**30)
    check_fits(2**30, "cpu", "this", "do that")  # exactly what is free: fine
    with pytest.raises(UsageError, match=r"^this needs about 3.0 GiB of memory but 1.0 GiB is free "
                                         r"on cpu; do that$"):
        check_fits(3 * 2**30, "cpu", "this", "do that")


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="needs /proc/meminfo")
def test_free_memory_is_memavailable():
    line = next(s for s in Path("/proc/meminfo").read_text().splitlines() if s.startswith("MemAvailable"))
    expected = int(line.split()[1]) * 1024
    assert abs(resources.available_bytes("cpu") - expected) < 2**30  # it moves a little meanwhile
