"""demystified.mechanism: the debiasing coefficient, and claim 4-Hge2 holding for He et al.'s
two-head kernel and failing for plain GD (its negative control), one head, and tied heads."""

from __future__ import annotations

import pytest
import torch

from iclreg.estimators import build as build_estimator
from iclreg.experiments.demystified import HE_LR, TASK, TOY, L
from iclreg.experiments.demystified.mechanism import (
    SHORT,
    debiased_claim,
    debiased_measures,
    debiasing_coefficient,
    single_head_claim,
    theory_h2_claim,
)
from iclreg.tasks import build as build_task

PUBLISHED_HEADS = "kernel:omega=[0.13,-0.13],mu=[3.45,-3.45]"


@pytest.fixture(scope="module")
def prompts():
    return build_task(TASK).sample(TOY.eval_samples, seed=13, step=0)


def _measures(spec: str, prompts) -> dict[str, float]:
    return debiased_measures(build_estimator(spec), HE_LR, prompts.x, prompts.y, L)


def test_debiasing_coefficient_is_minus_one_for_debiased_gd_and_zero_for_gd(prompts):
    for spec, expected in ((f"debiased_gd:lr={HE_LR}", -1.0), (f"gd:steps=1,lr={HE_LR},mean=true", 0.0)):
        f = build_estimator(spec)(prompts.x, prompts.y)[:, SHORT]
        assert debiasing_coefficient(f, prompts.x, prompts.y, SHORT) == pytest.approx(expected, abs=1e-5)


def test_the_two_head_kernel_passes_and_plain_gd_fails(prompts):
    """The negative control: plain GD's predictions pass the L = 40 agreement (0.4% apart) but
    not the checks at L = 10 nor the debiasing coefficient."""
    kernel = _measures(PUBLISHED_HEADS, prompts)
    assert kernel[f"b/a, L = {SHORT}"] == pytest.approx(-1, abs=0.1)
    assert debiased_claim({"kernel": kernel}, L).holds
    gd = _measures(f"gd:steps=1,lr={HE_LR},mean=true", prompts)
    assert gd[f"vs debiased GD, L = {L}"] < 0.05 and gd[f"vs GD, L = {SHORT}"] == pytest.approx(0, abs=1e-10)
    control = debiased_claim({"GD": gd}, L)
    assert not control.holds
    assert f"b/a, L = {SHORT}" in control.reason
    assert f"at L = {SHORT}: vs debiased GD / vs GD" in control.reason
    assert not debiased_claim({"kernel": kernel, "GD": gd}, L).holds  # one run is enough to miss


def test_one_head_and_tied_heads_fail(prompts):
    single = _measures("kernel:omega=0.5178,mu=1.5", prompts)  # H = 1: debiased too, but a poor fit
    assert not debiased_claim({"H=1": single}, L).holds
    tied = _measures("kernel:omega=[0.13,0.13],mu=[3.45,-3.45]", prompts)  # the heads cancel: f = 0
    assert not debiased_claim({"tied": tied}, L).holds
    assert not debiased_claim({}, L).holds  # nothing measured is a miss


def test_single_head_and_theory_h2_controls(prompts):
    """4-H1 misses for debiased GD's predictions; 4-theory-H2 misses with mu* shifted past 15%."""
    x, y = prompts.x, prompts.y
    single = build_estimator("kernel:omega=0.5178,mu=1.5")(x, y)[:, L]
    dgd = build_estimator(f"debiased_gd:lr={HE_LR}")(x, y)[:, L]
    h1 = float((single - dgd).square().mean() / dgd.square().mean())
    assert single_head_claim([0.005], L).holds and not single_head_claim([h1], L).holds
    pair = {"seed 0": {"mu": [2.66, -2.63], "mu*(omega)": [2.64, -2.64]}}
    assert theory_h2_claim(pair).holds
    shifted = {"seed 0": {"mu": [2.66, -2.63], "mu*(omega)": [2.64 * 1.2, -2.64 * 1.2]}}
    assert not theory_h2_claim(shifted).holds
    assert torch.isfinite(torch.tensor(h1)) and h1 > 0.1
