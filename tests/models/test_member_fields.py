"""Ensemble members may differ in the fields a model declares in ``member_fields`` (its
initialisation) and must share every other field (``train.loop.group_key``)."""

from __future__ import annotations

import dataclasses

import pytest

from iclreg.models import MODELS
from iclreg.train.config import resolve
from iclreg.train.loop import group_key

TASK = "gaussian:d=3,n=6"


def key(model: str, seed: int = 0, lr: float = 0.01) -> str:
    return group_key(resolve({"task": TASK, "model": model, "train": {"seed": seed},
                              "optimizer": {"lr": lr}}))


def test_declared_fields_are_fields_of_each_model() -> None:
    for name in MODELS.names():
        cls = MODELS.get(name)
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(cls.member_fields) <= names, name
        assert "member_fields" not in names  # a class attribute, not a SPEC key


@pytest.mark.parametrize(("model", "variants"), [
    ("linear_attention", ["init=gd", "init_scale=0.5", "lr=0.3", "init=gd,lr=2.0"]),
    ("softmax_attention", ["init=small_id", "init_scale=0.3", "init=oppo_small_id,init_scale=0.2",
                           "init=aligned_small_id"]),
    ("reduced_attention", ["init_scale=1.5"]),
])
def test_members_may_differ_in_declared_fields_only(model: str, variants: list[str]) -> None:
    base = key(model)
    assert all(key(f"{model}:{v}") == base for v in variants)
    assert key(model, seed=3, lr=0.5) == base  # seed and learning rate are per member too
    others = {"linear_attention": "layers=2", "softmax_attention": "heads=2",
              "reduced_attention": "activation=linear"}
    assert key(f"{model}:{others[model]}") != base


def test_softmax_attention_members_share_labels_and_activation() -> None:
    base = key("softmax_attention")
    assert key("softmax_attention:activation=linear") != base


def test_a_model_that_declares_nothing_groups_identical_configs_only() -> None:
    assert MODELS.get("lstm").member_fields == ()
    base = key("lstm:hidden=8,layers=1")
    assert key("lstm:hidden=8,layers=1", seed=4) == base
    assert key("lstm:hidden=8,layers=2") != base
    assert key("lstm:hidden=9,layers=1") != base
