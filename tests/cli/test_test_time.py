"""``iclreg test-time`` through the real entry point: its numbers against independent GD loops
on the same prompts, and its bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iclreg.cli import main
from iclreg.tasks import build as build_task

TASK = "gaussian:d=4,n=8,noise_std=0.3"


def _prompts(task_spec: str, prompts: int, seed: int):
    """The prompts evaluate draws: chunks of 256 from (seed, chunk), n + 1 pairs, the last the query."""
    task = build_task(task_spec)
    out = []
    for chunk in range(-(-prompts // 256)):
        batch = min(256, prompts - 256 * chunk)
        out.append(task.sample(batch, seed, chunk, n=task.n + 1, dtype=torch.float64))
    x = np.concatenate([p.x.numpy() for p in out])
    y = np.concatenate([p.y.numpy() for p in out])
    return x[:, :-1], y[:, :-1], x[:, -1], y[:, -1]


def _gd_errors(x, y, x_q, y_q, lr: float, steps: int, lam: float = 0.0) -> np.ndarray:
    """Squared query errors of GD (ridge-GD with ``lam``) from w = 0, one prompt at a time."""
    errors = []
    for xi, yi, xq, yq in zip(x, y, x_q, y_q, strict=True):
        w = np.zeros(xi.shape[1])
        for _ in range(steps):
            w = w - lr * (xi.T @ (xi @ w - yi) + lam * w)
        errors.append((w @ xq - yq) ** 2)
    return np.array(errors)


def _run(capsys, *args: str) -> dict:
    assert main(["test-time", "--task", TASK, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_greedy_decoding_is_gradient_descent(capsys):
    result = _run(capsys, "--decoder", "gd:lr=0.05", "--steps", "12", "--samples", "1,4",
                  "--prompts", "300", "--seed", "3")
    assert result["N"] == [1, 4] and result["metric"] == "mse" and result["compute"] == [12, 48]
    (curve,) = result["results"].values()
    expected = _gd_errors(*_prompts(TASK, 300, 3), lr=0.05, steps=12).mean()
    assert curve["mse"] == pytest.approx([expected, expected], rel=1e-9)  # greedy: N changes nothing
    low, high = curve["ci95"][0]
    assert low < expected < high


def test_the_average_of_multiplicative_noise_decodes_tends_to_ridge_gd(capsys):
    """sigma = 0.7: E zeta = sigma^2 w, so the N-average follows ridge-GD with lambda = 0.49."""
    result = _run(capsys, "--decoder", "gd:lr=0.05", "--steps", "20", "--noise", "multiplicative:std=0.7",
                  "--samples", "1,256", "--prompts", "400", "--seed", "1")
    (curve,) = result["results"].values()
    data = _prompts(TASK, 400, 1)
    ridge = _gd_errors(*data, lr=0.05, steps=20, lam=0.49).mean()
    gd = _gd_errors(*data, lr=0.05, steps=20).mean()
    one, many = curve["mse"]
    assert abs(many - ridge) < 0.2 * abs(one - ridge) and abs(many - ridge) < 0.25 * abs(gd - ridge)


@pytest.mark.parametrize("task", ["sparse:d=4,n=8,s=2", "binary:d=4,n=8"])
def test_vote_and_support_are_refused_on_every_continuous_task(capsys, task):
    for args in (["--technique", "vote"], ["--noise", "support:k=2"]):
        assert main(["test-time", "--task", task, "--decoder", "gd:lr=0.01", "--steps", "3", *args]) == 2
        assert "binary01 coefficients" in capsys.readouterr().err


def test_vote_and_support_run_on_binary01(capsys):
    args = ["test-time", "--task", "binary01:d=6,n=6,k=2", "--decoder", "gd:lr=0.1", "--steps", "5",
            "--noise", "support:k=2", "--technique", "vote", "--samples", "1,4", "--prompts", "8", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["metric"] == "recovery"


@pytest.mark.parametrize(("args", "message"), [
    (["--decoder", "gd:lr=0.01", "--samples", "0"], "--samples values must lie in [1,"),
    (["--decoder", "gd:lr=0.01", "--samples", "1,x"], "comma-separated list of integers"),
    (["--decoder", "gd:lr=0.01", "--steps", "0"], "--steps must lie in [1,"),
    (["--run", "somewhere"], "run directory 'somewhere' does not exist"),
    (["--decoder", "gd:lr=0.01", "--noise", "bogus"], "unknown noise 'bogus'"),
    (["--decoder", "gd:lr=0.01", "--technique", "best:reward=l3"], "reward"),
    (["--decoder", "gd:lr=0.01", "--samples", "100000000"], "of memory"),
    (["--decoder", "gd:lr=0.01", "--prompts", "1"], "--prompts must lie in [2,"),
    (["--decoder", "gd:lr=0.01", "--technique", "vote"], "--technique vote needs a task with binary01"),
    (["--decoder", "gd:lr=0.01", "--noise", "support:k=3"], "--noise support needs a task with binary01"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    plot = tmp_path / "fig.png"
    steps = [] if "--steps" in args else ["--steps", "5"]
    assert main(["test-time", "--task", TASK, *steps, *args, "--plot", str(plot)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not plot.exists()


@pytest.fixture(scope="module")
def cot_run(tmp_path_factory):
    """A short real chain-of-thought run on TASK's dimension (mean-gradient lr 0.4 at n = 8)."""
    from iclreg.train.config import resolve
    from iclreg.train.plan import train_plan

    config = resolve({"task": TASK, "model": "cot:d=4,lr=0.4,steps=5",
                      "optimizer": {"name": "adam", "lr": 0.01, "clip": 1.0}, "schedule": {"name": "cosine"},
                      "train": {"steps": 500, "batch": 256, "loss": "chain"}, "eval": {"samples": 64}})
    return train_plan({"cot": config}, tmp_path_factory.mktemp("runs"))["cot"]


def test_a_trained_run_decodes_like_gradient_descent(capsys, cot_run):
    """The run emits mean-gradient GD with lr 0.4, i.e. sum-form GD with lr 0.05 at n = 8: its
    greedy decode 4x beyond its chain matches an explicit GD loop on the same prompts."""
    result = _run(capsys, "--run", str(cot_run), "--steps", "20", "--samples", "1", "--prompts", "300")
    assert result["decoder"]["name"] == "cot" and result["decoder"]["lr"] == pytest.approx(0.05)
    (curve,) = result["results"].values()
    expected = _gd_errors(*_prompts(TASK, 300, 0), lr=0.05, steps=20).mean()
    assert curve["mse"][0] == pytest.approx(expected, rel=1e-4)


def test_a_run_of_another_dimension_or_model_is_refused(tmp_path, capsys, cot_run):
    args = ["--run", str(cot_run), "--steps", "5"]
    assert main(["test-time", "--task", "gaussian:d=3,n=8", *args]) == 2
    assert "the task has d=3 but the decoder emits d=4" in capsys.readouterr().err
    from iclreg.train.config import resolve
    from iclreg.train.plan import train_plan

    other = resolve({"task": TASK, "model": "linear_attention:d=4", "train": {"steps": 2, "batch": 8},
                     "eval": {"samples": 8}})
    run = train_plan({"lsa": other}, tmp_path)["lsa"]
    assert main(["test-time", "--task", TASK, "--run", str(run), "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained a linear_attention model, not a chain-of-thought" in err[0], err
