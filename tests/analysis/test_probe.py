"""Per-layer probes and residual similarity, against direct computations."""

from __future__ import annotations

import json

import pytest
import torch

from iclreg.analysis.probe import (
    GD_STEPS,
    apply_probes,
    fit_probes,
    gd_predictions,
    layer_hidden,
    newton_predictions,
    probe_model,
    residual_cosine,
)
from iclreg.cli import main
from iclreg.estimators import build as build_estimator
from iclreg.models import build
from iclreg.models.gpt2 import GPT2Config, GPT2Regressor
from iclreg.tasks import build as build_task


def test_probes_recover_a_linear_read_out():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 50, 7, 4, generator=gen, dtype=torch.float64)  # (L, B, n, w)
    true = torch.randn(3, 5, generator=gen, dtype=torch.float64)  # (L, w + 1)
    y = hidden[1] @ true[1, :4] + true[1, 4]  # layer 1 reads y exactly
    weights = fit_probes(hidden, y, lam=1e-12)
    torch.testing.assert_close(weights[1], true[1], rtol=1e-6, atol=1e-6)
    preds = apply_probes(hidden, weights)
    assert (preds[1] - y).abs().max() < 1e-6 and (preds[0] - y).abs().max() > 0.1


def test_probes_stay_on_the_hidden_states_device():
    """The ridge term is built on the features' device (meta stands in for cuda here)."""
    hidden, y = torch.empty(3, 4, 5, 6, device="meta"), torch.empty(4, 5, device="meta")
    weights = fit_probes(hidden, y)
    assert weights.device.type == "meta" and weights.shape == (3, 7)
    assert apply_probes(hidden, weights).shape == (3, 4, 5)


def test_residual_cosine_matches_a_loop():
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    a = torch.randn(2, 6, 9, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 6, 9, generator=gen, dtype=torch.float64)
    sim = residual_cosine(a, b, y)
    for i in range(2):
        for j in range(3):
            cos = torch.nn.functional.cosine_similarity(a[i] - y, b[j] - y, dim=-1).mean()
            assert torch.isclose(sim[i, j], cos)
    assert torch.allclose(residual_cosine(b, b, y).diagonal(), torch.ones(3, dtype=torch.float64))


def test_algorithm_trajectories_equal_the_estimators():
    p = build_task("gaussian:d=4,n=10").sample(5, 0, 0, dtype=torch.float64)
    traj = gd_predictions(p.x, p.y, [0, 3, 17], lr=0.02)
    for i, steps in enumerate([0, 3, 17]):
        ref = build_estimator(f"gd:steps={steps},lr=0.02")(p.x, p.y)
        torch.testing.assert_close(traj[i], ref, rtol=1e-12, atol=1e-12)
    newton = newton_predictions(p.x, p.y, [1, 5])
    torch.testing.assert_close(newton[1], build_estimator("newton:steps=5")(p.x, p.y), rtol=1e-12, atol=1e-12)


def test_probe_model_shapes_and_floor():
    torch.manual_seed(0)
    model = build("gpt2:d=3,layers=2,width=16,heads=2,max_n=8").eval()
    out = probe_model(model, build_task("gaussian:d=3,n=8"), samples=40, probe_samples=200)
    assert out["layers"] == [0, 1, 2] and len(out["probe_mse"]) == 3 and len(out["probe_mse"][0]) == 8
    assert len(out["newton"]["similarity"]) == 3 and len(out["newton"]["similarity"][0]) == 23
    assert 0 < out["floor"] < 1 and all(s in out["gd"]["steps"] for s in out["gd"]["best"])
    # least squares is exact for k > d in the noiseless task
    assert max(out["ols_mse"][5:]) < 1e-8


def test_probes_read_fu_et_al_hidden_states():
    """Fu et al.'s read-out: the raw residual below the top, ln_f of it only at the last layer."""
    gen = torch.Generator().manual_seed(3)
    config = GPT2Config(d=3, layers=2, width=16, heads=2, max_n=8)
    model = GPT2Regressor(config, generator=gen).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))  # ln_f gain and bias off 1, 0
    p = build_task("gaussian:d=3,n=8").sample(64, 0, 0, dtype=torch.float64)
    with torch.no_grad():
        raw = [model.residual(p.x, p.y, stop_at_layer=l)[:, ::2] for l in range(3)]  # (B, n, w) each
        hidden = layer_hidden(model, p.x, p.y)
        torch.testing.assert_close(hidden[:2], torch.stack(raw[:2]), rtol=0, atol=1e-12)
        torch.testing.assert_close(hidden[2], model.ln_f(raw[2]), rtol=0, atol=1e-12)
        assert (hidden[2] - raw[2]).abs().max() > 0.1
        every = layer_hidden(model, p.x, p.y, ln_f="every")
        torch.testing.assert_close(every, model.ln_f(torch.stack(raw)), rtol=0, atol=1e-12)
        none = layer_hidden(model, p.x, p.y, ln_f="none")
        torch.testing.assert_close(none, torch.stack(raw), rtol=0, atol=0)
    task = build_task("gaussian:d=3,n=8")
    fu = probe_model(model, task, samples=40, probe_samples=200)
    none = probe_model(model, task, samples=40, probe_samples=200, ln_f="none")
    assert fu["ln_f"] == "last" and none["ln_f"] == "none"
    assert fu["probe_mse"][:2] == none["probe_mse"][:2] and fu["probe_mse"][2] != none["probe_mse"][2]
    # the last layer's probe is the ridge (lam = 1e-4 per row) fit on ln_f(h): lstsq on the augmented
    # system [F; sqrt(lam N) I] w = [y; 0]
    fit = task.sample(200, 0, 0, dtype=torch.float64)
    test = task.sample(40, 0, 1, dtype=torch.float64)
    with torch.no_grad():
        feats = model.ln_f(model.residual(fit.x, fit.y)[:, ::2]).reshape(-1, 16)
        feats = torch.cat([feats, torch.ones(len(feats), 1, dtype=feats.dtype)], 1)  # (N, 17)
        rows = torch.cat([feats, (1e-4 * len(feats)) ** 0.5 * torch.eye(17, dtype=feats.dtype)])
        target = torch.cat([fit.y.reshape(-1, 1), torch.zeros(17, 1, dtype=feats.dtype)])
        w = torch.linalg.lstsq(rows, target).solution
        h = model.ln_f(model.residual(test.x, test.y)[:, ::2])
        mse = ((h @ w[:-1, 0] + w[-1, 0]) - test.y).square().mean(0)
    last = torch.tensor(fu["probe_mse"][2], dtype=torch.float64)
    torch.testing.assert_close(last, mse, rtol=1e-8, atol=1e-12)


def test_probe_command(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("task: gaussian:d=3,n=8\nmodel: gpt2:layers=2,width=16,heads=2,max_n=8\n"
                      "train: {steps: 3, batch: 8}\neval: {samples: 16}\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["probe", str(tmp_path / "run"), "--samples", "20", "--probe-samples", "64",
                 "--json", "--plot", str(tmp_path / "p.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["newton"]["best"]) == 3 and out["ln_f"] == "last"
    assert main(["probe", str(tmp_path / "run"), "--samples", "20", "--probe-samples", "64", "--json",
                 "--ln-f", "every"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert every["ln_f"] == "every" and every["probe_mse"][0] != out["probe_mse"][0]
    assert every["probe_mse"][-1] == out["probe_mse"][-1]  # the same read-out at the last layer
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", str(tmp_path / "run"), "--ln-f", "all"])
    assert exit_info.value.code == 2 and "argument --ln-f: invalid choice: 'all'" in capsys.readouterr().err
    for name in ("p.png", "p_newton.png", "p_gd.png"):
        assert (tmp_path / name).stat().st_size > 1000
    he = tmp_path / "he.yaml"
    he.write_text("task: gaussian:d=3,n=8\nmodel: softmax_attention\ntrain: {steps: 2, batch: 4}\n"
                  "eval: {samples: 16}\n")
    assert main(["train", str(he), "--out", str(tmp_path / "he")]) == 0
    capsys.readouterr()
    assert main(["probe", str(tmp_path / "he")]) == 2
    assert "probe needs a gpt2 model" in capsys.readouterr().err


def test_the_best_gd_step_is_not_tied_to_a_grid():
    """A predictor that is GD after 37 steps matches GD-37, not a neighbouring power of two."""
    p = build_task("gaussian:d=4,n=12").sample(64, 0, 0, dtype=torch.float64)
    gd37 = build_estimator("gd:steps=37,lr=0.01")(p.x, p.y)
    sim = residual_cosine(gd37[None], gd_predictions(p.x, p.y, GD_STEPS), p.y)
    assert GD_STEPS[int(sim.argmax())] == 37 and GD_STEPS[-1] >= 1300
