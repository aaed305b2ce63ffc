"""``error_curves`` on the first pairs of its prompts, and ``best_curves``."""

from __future__ import annotations

import pytest
import torch

from iclreg import estimators
from iclreg.analysis import best_curves, error_curves
from iclreg.errors import UsageError
from iclreg.tasks import build as build_task

TASK = "gaussian:d=3,n=16,noise_std=0.3"


def _predictors() -> dict[str, estimators.Estimator]:
    task = build_task(TASK)
    return {name: estimators.build(spec, task=task)
            for name, spec in {"gd": "gd:steps=2,lr=0.05", "avg": "averaging", "bayes": "bayes"}.items()}


def test_positions_are_the_first_k_of_a_full_evaluation(seed: int) -> None:
    """The same prompts, cut: the curves at k < positions are a full evaluation's."""
    task = build_task(TASK)
    full = error_curves(task, _predictors(), 300, seed=seed)
    short = error_curves(task, _predictors(), 300, seed=seed, positions=6)
    for name in full:
        assert len(short[name]["mse"]) == len(short[name]["ci95"]) == 6
        torch.testing.assert_close(torch.tensor(short[name]["mse"]), torch.tensor(full[name]["mse"][:6]),
                                   rtol=1e-12, atol=0)


def test_positions_out_of_range_are_refused() -> None:
    for positions in (0, 17):
        with pytest.raises(UsageError, match="positions"):
            error_curves(build_task(TASK), _predictors(), 10, positions=positions)


def test_best_curves_gives_the_whole_curve_of_the_best_only(seed: int) -> None:
    task = build_task(TASK)
    full = error_curves(task, _predictors(), 300, seed=seed)
    chosen, curves = best_curves(task, _predictors(), 300, seed=seed, at=8)
    assert chosen == min(full, key=lambda name: full[name]["mse"][8])
    assert curves[chosen] == full[chosen]["mse"]
    for name in ("gd", "avg"):
        assert len(curves[name]) == 9
        torch.testing.assert_close(torch.tensor(curves[name]), torch.tensor(full[name]["mse"][:9]),
                                   rtol=1e-12, atol=0)
