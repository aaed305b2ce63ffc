"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest


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
