"""Pre-flight checks: a run's memory is measured without allocating it and equals a real
forward pass's; what a run would fail on later is refused before its directory exists."""

from __future__ import annotations

import time

import pytest
import torch

from iclreg import resources
from iclreg.analysis.evaluate import eval_seed
from iclreg.errors import UsageError
from iclreg.models import Ensemble, StackedPredictor
from iclreg.tasks import TASKS
from iclreg.train import load_config, train
from iclreg.train.preflight import check_probe, check_training, member_bytes, training_bytes
from iclreg.train.run import build_model


def real_training_bytes(config) -> int:
    """The reference: a real forward pass on the CPU at the full batch, counting the tensors
    autograd saves, plus 4 x the parameters and the prompts (sweep.member_bytes before it
    moved to meta tensors)."""
    model = build_model(config)
    prompts = TASKS.build(config.task).sample(config.train.batch, 0, 0, dtype=torch.float32)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                  lambda t: t):
        if isinstance(model, StackedPredictor):
            Ensemble([model])(prompts.x[None], prompts.y[None], last_only=config.train.loss == "query")
        else:
            model(prompts.x, prompts.y)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(saved) + 4 * params + sum(t.numel() * t.element_size() for t in (prompts.x, prompts.y,
                                                                                  prompts.w))


@pytest.mark.parametrize(("model", "loss"), [("softmax_attention:heads=2", "query"),
                                             ("softmax_attention:heads=2", "all"),
                                             ("linear_attention", "query"),
                                             ("reduced_attention", "all")])
def test_training_bytes_of_ensemble_models_equal_a_real_forward_pass(write_config, model, loss):
    """Exact for the models a sweep stacks into ensembles (whose chunks it plans by this)."""
    config = load_config(write_config({"model": model, "train": {"loss": loss}}))
    assert training_bytes(config) == member_bytes(config) == real_training_bytes(config) > 0


@pytest.mark.parametrize("model", ["gpt2:layers=2,width=16,heads=2,max_n=12", "lstm:hidden=8"])
def test_training_bytes_of_other_models_are_near_a_real_forward_pass(write_config, model):
    """On the CPU, fused kernels (scaled-dot-product attention, the LSTM cell) save other
    tensors than their meta forms: 1.25x the real figure for GPT-2, 0.6x for the LSTM here."""
    config = load_config(write_config({"model": model, "train": {"loss": "all"}}))
    assert 0.5 < training_bytes(config) / real_training_bytes(config) < 2


def test_a_huge_batch_is_measured_without_allocating_it(write_config):
    small = load_config(write_config(), ["train.batch=10"])
    huge = load_config(write_config(), ["train.batch=1000000000"])
    start = time.perf_counter()
    per_prompt = (training_bytes(huge) - training_bytes(small)) / (10**9 - 10)
    assert time.perf_counter() - start < 5
    params = training_bytes(small) - 10 * per_prompt
    assert per_prompt > 0 and params > 0  # linear in the batch: a fixed part and a part per prompt


def test_refusals_come_before_the_run_directory(write_config, tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda device: 2**30)
    gpt2 = {"model": "gpt2:layers=1,width=8,heads=2,max_n=12"}
    cases = [
        ({}, ["train.batch=100000000"], "a training step of .* needs about"),
        (gpt2, ["eval.n=13"], "the prompt has n=13 pairs but the model has positions for max_n=12"),
        (gpt2, ["task=gaussian:d=3,n=20"], "n=20 pairs but the model has positions for max_n=12"),
        ({}, ["eval.n=100000000"], "evaluating model, ols on 64 prompts .* needs about"),
    ]
    for changes, overrides, message in cases:
        config = load_config(write_config(changes), overrides)
        with pytest.raises(UsageError, match=message):
            check_training(config)
        with pytest.raises(UsageError, match=message):
            train(config, tmp_path / "run")
        assert not (tmp_path / "run").exists()


def test_the_evaluation_seed_stays_below_2_63(write_config):
    config = load_config(write_config(), [f"train.seed={2**63 - 1}"])
    assert 0 <= eval_seed(config) < 2**63
    assert eval_seed(load_config(write_config())) == 1_000_003  # unchanged for ordinary seeds


def test_probe_limits(write_config, monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda device: 2**30)
    config = load_config(write_config({"model": "gpt2:layers=1,width=8,heads=2,max_n=12"}))
    check_probe(config, 64, 256, "cpu")
    with pytest.raises(UsageError, match=r"--probe-samples must lie in \[2, 100,000,000\]"):
        check_probe(config, 64, 1, "cpu")
    with pytest.raises(UsageError, match="probing on 10,000,000 \\+ 64 prompts needs about"):
        check_probe(config, 64, 10_000_000, "cpu")
