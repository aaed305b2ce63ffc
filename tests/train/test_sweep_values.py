"""``--sweep KEY=V1,V2``: a SPEC value with its own key=value pairs stays whole."""

from __future__ import annotations

import pytest

from iclreg.errors import UsageError
from iclreg.train.sweep import expand, parse_sweep


@pytest.mark.parametrize(("text", "values"), [
    ("task=gaussian:d=5,n=41", ["gaussian:d=5,n=41"]),
    ("task=gaussian:d=5,n=41,gaussian:d=10,n=41", ["gaussian:d=5,n=41", "gaussian:d=10,n=41"]),
    ("model.layers=1,2", ["1", "2"]),
    ("optimizer.lr=1e-3, 3e-3", ["1e-3", "3e-3"]),
    ("model=softmax_attention:heads=2,linear_attention", ["softmax_attention:heads=2", "linear_attention"]),
    ("task=gaussian:d=2,w_mean=[1,2],sparse:d=2,s=1", ["gaussian:d=2,w_mean=[1,2]", "sparse:d=2,s=1"]),
    ("eval.estimators=[ols,ridge:lam=0.1],[ols]", ["[ols,ridge:lam=0.1]", "[ols]"]),
])
def test_values_split_between_values_not_inside_a_spec(text, values):
    assert parse_sweep(text) == (text.partition("=")[0], values)


def test_a_repeated_spec_is_still_refused():
    with pytest.raises(UsageError, match="repeats a value"):
        parse_sweep("task=gaussian:d=5,n=41,gaussian:d=5,n=41")


def test_a_spec_sweep_builds_one_member_per_task(write_config):
    path = write_config()
    one = expand(path, [], ["task=gaussian:d=3,n=12,noise_std=0.2"])
    assert len(one) == 1 and one[0][1].task == "gaussian:d=3,n=12,noise_std=0.2"
    two = expand(path, [], ["task=gaussian:d=3,n=12,noise_std=0.2,gaussian:d=4,n=12"])
    assert [c.task for _, c in two] == ["gaussian:d=3,n=12,noise_std=0.2", "gaussian:d=4,n=12"]
    assert [c.model for _, c in two] == ["softmax_attention:heads=2,d=3", "softmax_attention:heads=2,d=4"]
    assert len({name for name, _ in two}) == 2
