"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest
import torch

# One intra-op thread: on the 2-core CI machine several test processes (Ray workers, torchrun
# ranks, subprocess CLIs) share the cores, and two threads per process then make steps about 20x
# slower and let a BLAS call split its work differently from one run to the next, so that two
# runs of the same float computation in one test can differ in their last bits.
torch.set_num_threads(1)
# ... and the same count in every subprocess a test starts (a CLI, a killed run): the autograd
# step's numbers depend on it (iclreg.train.environment), so a subprocess compared with an
# in-process run must compute with the same. Tests of other counts set it explicitly
# (tests/train/conftest.py, thread_env).
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture
def seed() -> int:
    """The random seed of a test (scikit-learn's ``global_random_seed`` contract).

    Returns the integer in the environment variable ``ICLREG_TEST_SEED`` (0 when unset).
    Contract: a test that takes this fixture must pass for *any* seed. Its tolerances are
    statistical margins (several standard errors) or round-off bounds, never tuned to one
    draw; run ``ICLREG_TEST_SEED=123 pytest`` to check. Tests compared with fixed published
    numbers pin their own seed instead and say so.
    """
    return int(os.environ.get("ICLREG_TEST_SEED", "0"))


@pytest.fixture(scope="session")
def toy_demo(tmp_path_factory):
    """``iclreg demo`` with every reproduction at toy size, run once for the session: (out, paper ->
    its Reproduction as written). The tests of the quick pipeline, of the report pages and of the
    reports' math read it; none of them changes what it holds (a redraw restores files byte for byte)."""
    from iclreg.experiments import REPRODUCTIONS, runner

    out = tmp_path_factory.mktemp("html") / "demo"
    results = {}
    real = runner.write_report

    def keep(result, where, **kwargs):
        results[result.paper] = real(result, where, **kwargs)
        return results[result.paper]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "write_report", keep)
        runner.demo(out, sizes={p: REPRODUCTIONS.get(p).toy for p in REPRODUCTIONS.names()})
    return out, results
