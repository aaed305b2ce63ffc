"""The negative control of every claim of ``iclreg reproduce softmax-limit``, at toy size: under its
control (``softmax_limit_controls.CONTROLS``) each claim must miss, and the same builders on unperturbed
inputs hold. Concentration runs for real at small sizes (the control mis-states the limit or swaps
the tokens); the training claims are built from trajectories around the real infinite-L flow (no
training: a substituted trajectory is what breaks the mechanism)."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from iclreg.analysis import concentration
from iclreg.experiments import softmax_limit as sl
from iclreg.experiments import softmax_limit_claims as slc
from iclreg.experiments import softmax_limit_measure as measure
from iclreg.experiments.claims import Claim
from iclreg.tasks import build as build_task
from iclreg.theory import softmax_attention

DEMO = Path(__file__).parents[2] / "docs" / "demo" / "softmax-limit" / "claims.json"
SIZES = replace(sl.QUICK, lengths=(16, 64, 256, 1024, 4096), draws=6, reps=6, rademacher=(64, 1024, 16384),
                steps=200)  # flow horizon 200: the end point is Bayes within 1e-6
SIGMA = build_task(sl.TRAIN_TASK.format(n=2)).covariance.double()
STEPS = list(range(0, SIZES.steps + 1, SIZES.steps // 20))


def _concentration() -> dict[str, Claim]:
    return {c.id: c for c in sl.concentration_section(SIZES).claims}


@functools.cache
def _wrong_limit() -> dict[str, Claim]:
    """Section 1-2 against the Gaussian limit V m + V G K^T Q z with G scaled by 1.2."""
    limit = concentration.gaussian_softmax_limit
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(concentration, "gaussian_softmax_limit",
                   lambda V, K, Q, m, G, z: limit(V, K, Q, m, 1.2 * G, z))
        return _concentration()


def _gaussian_gap(lengths: list[int], p: int = sl.P, reps: int = 64, seed: int = 0) -> dict[str, list[float]]:
    """``rademacher_limit_gap`` with Gaussian tokens N(0, I) in place of Rademacher ones."""
    gen = torch.Generator().manual_seed(seed)
    V, K, Q = (torch.randn(p, p, generator=gen, dtype=torch.float64) * (2 / math.sqrt(p)) for _ in range(3))
    gap: dict[str, list[float]] = {"L": list(lengths), "vs_linear": [], "vs_tanh": []}
    for L in lengths:
        Z = torch.randn(reps, L, p, generator=gen, dtype=torch.float64)  # (reps, L, p)
        z = torch.randn(reps, p, generator=gen, dtype=torch.float64)  # (reps, p)
        finite, a = softmax_attention(V, K, Q, Z, z), z @ (K.T @ Q).T
        for key, limit in (("vs_linear", a @ V.T), ("vs_tanh", torch.tanh(a) @ V.T)):
            gap[key].append(float((finite - limit).square().sum() / limit.square().sum()))
    return gap


def _gaussian_tokens() -> Claim:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(measure, "rademacher_limit_gap", _gaussian_gap)
        return slc.rademacher_claim(measure.rademacher(SIZES))


def _starts() -> list[dict]:
    """Seed records at the reduced-attention initialisation (A ~ N(0, 0.25 / d), b = 0.5)."""
    gen = torch.Generator().manual_seed(0)
    A0 = torch.randn(sl.D, sl.D, generator=gen, dtype=torch.float64) * 0.5 / math.sqrt(sl.D)
    return [{"A": [A0], "b": [0.5]}]


def _horizon() -> float:
    return 20 * SIZES.lr * STEPS[-1]


@functools.cache
def _flows() -> list[dict]:
    return measure.flows(_starts(), [SIZES.lr * s for s in STEPS] + [_horizon()], SIGMA)


def _traj(softmax_gap, linear_gap, growth: float = 1.0) -> dict:
    """Trajectories whose softmax risk is the flow's + ``softmax_gap(L)`` and linear's the softmax
    risk + ``linear_gap(L)``; finite/infinite-L gaps grow by ``growth`` along training."""
    flow = sl.mean([f["risk"] for f in _flows()])
    (start,) = _starts()
    n = len(STEPS)
    gaps = [0.01 * growth ** (i / (n - 1)) for i in range(n)]
    traj = {}
    for L in SIZES.train_lengths:
        soft = [r + softmax_gap(L) for r in flow]
        for activation, risk in (("softmax", soft), ("linear", [r + linear_gap(L) for r in soft])):
            traj[(L, activation)] = [{"step": STEPS, "risk": risk, "A": start["A"] * n, "b": start["b"] * n,
                                      "output": gaps, "gradient": gaps}]
    return traj


def _training(traj: dict) -> dict[str, Claim]:
    claims = [*sl.training_section(SIZES, traj, SIGMA).claims, *sl.stability_section(SIZES, traj).claims]
    return {c.id: c for c in claims}


def _frozen_b() -> Claim:
    """b frozen at its initial value: ||A||_F^2 - b_0^2 in place of the flow's ||A||_F^2 - b^2."""
    flows = [{**f, "conserved": [a - 0.5**2 for a in f["A_norm2"]]} for f in _flows()]
    return {c.id: c for c in slc.flow_claims(measure.flow_end(flows, SIGMA), _horizon())}["3-conservation"]


def _early_end() -> Claim:
    """The flow's end point at the training time (a twentieth of the horizon)."""
    flows = measure.flows(_starts(), [0.0, SIZES.lr * STEPS[-1]], SIGMA)
    return {c.id: c for c in slc.flow_claims(measure.flow_end(flows, SIGMA), _horizon())}["3-bayes-end"]


TRACKS = (lambda L: 1 / L, lambda L: 3 / L)  # unperturbed gaps: to the flow, softmax - linear
CASES = {
    "1-gaussian-limit": lambda: _wrong_limit()["1-gaussian-limit"],
    "2-slopes": lambda: _wrong_limit()["2-slopes"],
    "1-rademacher": _gaussian_tokens,
    "3-tracks-flow": lambda: _training(_traj(lambda L: 0.05, TRACKS[1]))["3-tracks-flow"],
    "3-softmax-vs-linear": lambda: _training(_traj(TRACKS[0], lambda L: 0.05))["3-softmax-vs-linear"],
    "3-conservation": _frozen_b,
    "3-bayes-end": _early_end,
    "4-stability": lambda: _training(_traj(*TRACKS, growth=10.0))["4-stability"],
}


@pytest.mark.parametrize("cid", sorted(CASES))
def test_every_claim_misses_under_its_negative_control(cid):
    claim = CASES[cid]()
    assert claim.id == cid
    assert not claim.holds, f"{cid} holds under its control ({sl.CONTROLS[cid]}): {claim.measured}"


def test_the_unperturbed_twins_hold():
    claims = {**_concentration(), **_training(_traj(*TRACKS))}
    assert set(claims) == set(sl.CONTROLS)
    assert all(c.holds for c in claims.values()), {c.id: c.reason for c in claims.values() if not c.holds}


def test_every_claim_has_a_control_and_a_case():
    assert set(CASES) == set(sl.CONTROLS) and sl.SoftmaxLimit.controls is sl.CONTROLS
    if DEMO.exists():
        assert {c["id"] for c in json.loads(DEMO.read_text())["claims"]} <= set(sl.CONTROLS)
