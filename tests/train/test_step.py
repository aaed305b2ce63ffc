"""The training step strategies (``step.py``): the one chosen from the config, and an eager
step checked against a plain forward/backward/Adam step of the model alone."""

from __future__ import annotations

import copy

import pytest
import torch

from iclreg.models import Ensemble
from iclreg.train import build_model, load_config
from iclreg.train.fused import FAMILIES
from iclreg.train.fused.step import FusedStep
from iclreg.train.optim import build_optimizer
from iclreg.train.step import CompiledStep, EagerStep, GraphedStep, build_step, prompt_losses


def parts(config):
    model = build_model(config)
    net = Ensemble([model])
    return model, net, build_optimizer(config.optimizer, [(model.parameters(), config.optimizer.lr)])


@pytest.mark.parametrize(("run", "kind", "inner"), [
    ({}, FusedStep, None),
    ({"engine": "autograd"}, EagerStep, None),
    ({"compile": True}, CompiledStep, None),
    ({"cuda_graph": True, "device": "cuda"}, GraphedStep, EagerStep),
    ({"cuda_graph": True, "compile": True, "device": "cuda"}, GraphedStep, CompiledStep),
])
def test_the_step_is_chosen_once_from_the_config(write_config, monkeypatch, run, kind, inner):
    monkeypatch.setattr(torch, "compile", lambda net: ("compiled", net))  # no dynamo here
    config = load_config(write_config({"run": run}))
    _, net, optimizer = parts(load_config(write_config()))  # built on the CPU: no capture yet
    step = build_step(config, net, optimizer, torch.device("cpu"), last_only=True)
    assert type(step) is kind
    if kind is FusedStep:
        assert step.net is net and step.family is FAMILIES.get(net.members[0].config)
        return
    if inner is not None:
        assert step.step.set_to_none is False and step.graph is None
        step = step.step
    assert type(step) is (inner or kind) and step.net is net
    assert step.forward == (("compiled", net) if run.get("compile") else net)
    assert step.set_to_none is (not run.get("cuda_graph", False))


def test_prompt_losses_average_every_prefix_or_the_query():
    pred, y = torch.arange(12.0).reshape(2, 2, 3), torch.zeros(2, 2, 3)
    torch.testing.assert_close(prompt_losses(pred, y, "all"),
                               torch.tensor([sum(i * i for i in range(6)) / 6,
                                             sum(i * i for i in range(6, 12)) / 6]))
    torch.testing.assert_close(prompt_losses(pred, y, "query"),
                               torch.tensor([(4 + 25) / 2, (64 + 121) / 2]))


@pytest.mark.parametrize(("loss", "engine"), [("query", "autograd"), ("all", "autograd"), ("query", "auto")])
def test_an_eager_or_fused_step_is_a_plain_step_of_the_model_alone(write_config, loss, engine):
    config = load_config(write_config({"train": {"loss": loss}, "optimizer": {"clip": 0.5},
                                       "run": {"engine": engine}}))
    model, net, optimizer = parts(config)
    alone = copy.deepcopy(model)
    plain = build_optimizer(config.optimizer, [(alone.parameters(), config.optimizer.lr)])
    step = build_step(config, net, optimizer, torch.device("cpu"), last_only=loss == "query")
    assert isinstance(step, FusedStep) is (engine == "auto")
    x, y = torch.randn(1, 8, 12, 3), torch.randn(1, 8, 12)
    for _ in range(3):
        losses = step(x, y)
        err = (alone(x[0], y[0]) - y[0]).square()  # (B, n)
        expected = (err[:, -1] if loss == "query" else err).mean()
        plain.zero_grad()
        expected.backward()
        torch.nn.utils.clip_grad_norm_(alone.parameters(), 0.5)
        plain.step()
        torch.testing.assert_close(losses, expected.detach().reshape(1))
    for (name, p), q in zip(model.named_parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
