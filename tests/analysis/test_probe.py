"""Per-layer probes and residual similarity, against direct computations."""

from __future__ import annotations

import json

import torch

from iclreg.analysis.probe import (
    GD_STEPS,
    apply_probes,
    fit_probes,
    gd_predictions,
    newton_predictions,
    probe_model,
    residual_cosine,
)
from iclreg.cli import main
from iclreg.estimators import build as build_estimator
from iclreg.models import build
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


def test_probe_command(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("task: gaussian:d=3,n=8\nmodel: gpt2:layers=2,width=16,heads=2,max_n=8\n"
                      "train: {steps: 3, batch: 8}\neval: {samples: 16}\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["probe", str(tmp_path / "run"), "--samples", "20", "--probe-samples", "64",
                 "--json", "--plot", str(tmp_path / "p.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["newton"]["best"]) == 3
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
