"""Every registered model refuses a prompt of another d with one actionable line, and
``build(SPEC, task=task)`` takes d (and the label slots) from the task (models/base.py)."""

from __future__ import annotations

import pytest
import torch

from iclreg.errors import UsageError
from iclreg.models import MODELS, Ensemble, StackedPredictor, build
from iclreg.tasks import build as build_task


def _prompts(d: int, B: int = 2, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(B, n, d, generator=gen), torch.randn(B, n, generator=gen)


@pytest.mark.parametrize("name", MODELS.names())
def test_a_prompt_of_another_d_is_refused_in_one_line(name):
    model = build(name, torch.Generator().manual_seed(0))
    d = model.config.d  # the class default: what a SPEC without d gets
    x, y = _prompts(d + 3)
    message = (rf"^model '{name}' takes prompts of d={d} but x has d={d + 3} \(shape \(2, 6, {d + 3}\)\); "
               rf"build it for this d, '{name}:d={d + 3},\.\.\.', or with "
               r"iclreg\.models\.build\(SPEC, task=task\)$")
    with pytest.raises(UsageError, match=message):
        model(x, y)
    assert model(*_prompts(d)).shape == (2, 6)  # its own d still works
    if isinstance(model, StackedPredictor):
        with pytest.raises(UsageError, match=message):
            model.predict_last(x, y)
        with pytest.raises(UsageError, match=f"takes prompts of d={d} but x has d={d + 3}"):
            Ensemble([model])(x.unsqueeze(0), y.unsqueeze(0))


@pytest.mark.parametrize("name", MODELS.names())
def test_build_with_a_task_takes_its_d(name):
    task = build_task("gaussian:d=7,n=6")
    model = build(name, torch.Generator().manual_seed(0), task=task)
    assert model.config.d == 7
    assert model(*_prompts(7)).shape == (2, 6)


def test_build_with_a_task_fills_label_slots_and_keeps_given_keys():
    task = build_task("multitask:d=4,n=6,subsets=[[0,1],[2,3]]")
    model = build("softmax_attention:heads=3", task=task)
    assert (model.config.d, model.config.labels, model.config.heads) == (4, 2, 3)
    with pytest.raises(UsageError, match=r"^model SPEC 'softmax_attention:d=5' gives d=5 but the task has "
                                         r"d=4; leave d out or give d=4$"):
        build("softmax_attention:d=5", task=task)
    assert build("softmax_attention:d=4", task=task).config.d == 4
