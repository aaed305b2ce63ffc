"""GPU options of the engine: CUDA-graph capture and bf16 autocast (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from iclreg.train import load_config
from iclreg.train.loop import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def run_steps(config, tmp_path, name, steps=20):
    (tmp_path / name).mkdir(exist_ok=True)
    trainer = Trainer([config], [tmp_path / name], resume=False)
    losses = [trainer.train_step(s).item() for s in range(steps)]
    trainer.close()
    return trainer.members[0].model.state_dict(), losses


@pytest.mark.parametrize("model", ["softmax_attention:heads=2", "gpt2:preset=tiny,max_n=12"])
def test_cuda_graph_follows_the_eager_trajectory(write_config, tmp_path, model):
    base = {"model": model, "run": {"device": "cuda"}, "schedule": {"name": "cosine", "warmup": 5}}
    eager = load_config(write_config(base))
    graphed = load_config(write_config(base), ["run.cuda_graph=true"])
    w_eager, l_eager = run_steps(eager, tmp_path, "eager")
    w_graph, l_graph = run_steps(graphed, tmp_path, "graph")
    assert l_graph == pytest.approx(l_eager, rel=1e-4, abs=1e-6)
    for key in w_eager:
        torch.testing.assert_close(w_graph[key], w_eager[key], rtol=1e-4, atol=1e-5)


def test_bf16_autocast_trains(write_config, tmp_path):
    config = load_config(write_config({"model": "gpt2:preset=tiny,max_n=12",
                                       "run": {"device": "cuda", "amp": "bf16"}}))
    _, losses = run_steps(config, tmp_path, "amp", steps=60)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
