"""Negative controls of the test-time claims: each claim, built from measurements on a few prompts
of the quick settings, holds; under a perturbation that breaks its mechanism (a wrong decoder
step in the theory, shuffled labels, the theory's effect reversed) it does not."""

from __future__ import annotations

import pytest
import torch

from iclreg.experiments import testtime as tt
from iclreg.experiments import testtime_claims as build
from iclreg.experiments import testtime_measure as measure
from iclreg.experiments import testtime_regime as regime
from iclreg.testtime import GDDecoder
from iclreg.theory import testtime as theory

PER = measure.PER_PROMPT
EXP = tt.TestTime(mode="quick")


def _prompts(setting: tt.Setting, prompts: int = 128, seed: int = 0):
    return EXP.prompts(setting, prompts, seed)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def averaging():
    s = tt.QUICK.avg
    x, y, w = _prompts(s)
    args = (x, y, w, 100, 1.0, [1, 2, 4, 8, 16, 64], _gen())
    return (measure.averaging(GDDecoder(lr=s.eta), *args),
            measure.averaging(GDDecoder(lr=s.eta), *args, theory_decoder=GDDecoder(lr=2 * s.eta)))


def test_claim_2_fails_with_a_wrong_step_in_the_theory(averaging):
    good, wrong = averaging
    assert build.averaging("", "GD", good, [1, 2, 4, 8, 16, 64]).holds
    assert not build.averaging("", "GD", wrong, [1, 2, 4, 8, 16, 64]).holds


def test_claim_8_fails_when_the_largest_n_is_one_sample(averaging):
    good = averaging[0]
    assert build.extrapolate("", "GD", good, [1, 2, 4, 8, 16, 64]).holds
    bad = {**good, PER: {**good[PER], "error": {**good[PER]["error"], 64: good[PER]["error"][1]}}}
    assert not build.extrapolate("", "GD", bad, [1, 2, 4, 8, 16, 64]).holds


@pytest.mark.parametrize("claim", ["noise", "split"])
def test_claims_6_and_7_fail_with_a_wrong_step_in_the_theory(claim: str):
    s = tt.QUICK.over
    x, y, w = _prompts(s)
    dec, wrong = GDDecoder(lr=s.eta), GDDecoder(lr=1.5 * s.eta)
    if claim == "noise":
        sig = [0.0, 0.5, 1.0, 1.5, 2.5]
        make = [build.noise_level("", "GD", measure.noise_levels(dec, x, y, w, 800, sig, 4, _gen(),
                                                                 theory_decoder=t), sig, 800, 4)
                for t in (None, wrong)]
    else:
        splits = [1, 2, 4, 8, 16]
        make = [build.compute_split("", "GD", measure.compute_split(dec, x, y, w, 1024, 1.0, splits, _gen(),
                                                                   theory_decoder=t), splits, 1024)
                for t in (None, wrong)]
    assert make[0].holds, make[0].reason
    assert not make[1].holds


def test_claim_5_fails_against_shuffled_labels():
    s = tt.QUICK.vote
    x, y, w = _prompts(s, 64)
    ns = [1, 4, 16, 64]
    r = measure.votes(GDDecoder(lr=s.eta), x, y, w, 4, 50, ns, (_gen(1), _gen(2)), 64)
    good = build.vote("", "GD", r, ns)
    exact = [c for c in good.checks if "vote - exact rate" in c.what]
    assert len(exact) == len(ns) and all(c.holds for c in exact), good.reason
    est = measure.chains(x, y, GDDecoder(lr=s.eta), "support:k=4", [50], 256, _gen(3))[50]
    shuffled, _ = measure.support_vote_theory(est, w.roll(1, 0), ns)  # each prompt's theory for another w*
    bad = {**r, PER: {**r[PER], "theory": shuffled}}
    assert not all(c.holds for c in build.vote("", "GD", bad, ns).checks if "vote - exact rate" in c.what)


def test_claim_4_fails_with_the_selection_reversed_in_the_theory():
    s = tt.QUICK.best
    x, y, w = _prompts(s, 256)
    ns = [1, 4, 16, 64]
    r = measure.best_of_n(GDDecoder(lr=s.eta), x, y, w, 200, 1.0, ns, _gen())
    assert build.best_of_n("", "GD", r, ns).holds, build.best_of_n("", "GD", r, ns).reason
    per = {k: {**r[PER][k], "theory": {n_: 2 * r[PER][k]["theory"][1] - v
                                       for n_, v in r[PER][k]["theory"].items()}}
           for k in ("multiplicative", "additive")}
    assert not build.best_of_n("", "GD", {**r, PER: per}, ns).holds


def test_claim_2b_fails_against_shuffled_labels():
    sizes = tt.Sizes(**{**vars(tt.QUICK), "prompts": 128, "thoughts": (25, 400)})
    exp = tt.TestTime(mode="quick", sizes=sizes)
    good = build.where_averaging_helps(regime.points(exp, sizes, 1.0))
    assert good.holds, good.reason
    assert [p["regime"] for p in good.published["theory (ours)"].values()] == ["hurts", "hurts", "helps"]
    assert not build.where_averaging_helps(regime.points(exp, sizes, 1.0, shuffle=True)).holds


class _Misstep(GDDecoder):
    """Claims the step ``lr`` but takes 1.1 lr: a decoder that does not emit GD with its step."""

    def bind(self, x, y):
        return GDDecoder(lr=1.1 * self.lr, mean=self.mean).bind(x, y)


def test_claim_1_fails_for_a_decoder_off_gd_s_step():
    s = tt.QUICK.avg
    x, y, _ = _prompts(s, 32)
    worst = {key: max(measure.gd_fidelity(dec(lr=s.eta), x, y, 100)) for key, dec in
             (("gd", GDDecoder), ("misstep", _Misstep))}
    assert build.cot_emits_gd({"avg": worst["gd"]}, 100).holds  # GD itself: error 0
    assert not build.cot_emits_gd({"avg": worst["misstep"]}, 100).holds


def _noiseless(setting: tt.Setting) -> tt.Setting:
    spec = ",".join(p for p in setting.task.split(",") if not p.startswith("noise_std="))
    return tt.Setting(spec + ",noise_std=0", setting.eta)


@pytest.mark.parametrize("labels", ["noisy", "noiseless"])
def test_claim_3_fails_without_label_noise(labels: str):
    """GD (exact risk, and greedy decodes) overfits label noise; without noise nothing rises."""
    s = tt.QUICK.over if labels == "noisy" else _noiseless(tt.QUICK.over)
    x, y, w = _prompts(s, 64)
    ts = list(tt.QUICK.thoughts)
    exact = [theory.gd_weight_risk(x, t, s.eta, 0.0, s.tau, s.noise).mean().item() for t in ts]
    r = measure.thoughts(GDDecoder(lr=s.eta), x, y, w, ts, tt.SIGMA, 16, _gen())
    claims = [build.exact_gd_overfits(exact), build.more_thoughts("", "GD", 16, exact, exact, r)]
    assert all(c.holds == (labels == "noisy") for c in claims), [(c.id, c.measured) for c in claims]
