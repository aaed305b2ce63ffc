"""Experiment configs: files, overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from iclreg.errors import UsageError
from iclreg.train import load_config
from iclreg.train.config import ScheduleConfig, save_config
from iclreg.train.curriculum import Ramp
from iclreg.train.optim import lr_factor


def test_yaml_and_toml_give_the_same_config(write_config, tmp_path):
    toml = tmp_path / "tiny.toml"
    toml.write_text(
        'task = "gaussian:d=3,n=12,noise_std=0.1"\nmodel = "softmax_attention:heads=2"\n'
        '[optimizer]\nname = "adam"\nlr = 0.01\n'
        '[train]\nsteps = 30\nbatch = 32\nloss = "query"\nseed = 0\n'
        '[eval]\nsamples = 64\nestimators = ["ols"]\n'
        '[run]\ncheckpoint_every = 10\nlog_every = 5\n'
    )
    assert load_config(toml) == load_config(write_config())


def test_model_takes_the_task_dimension_and_overrides_apply(write_config):
    cfg = load_config(write_config(), ["model.heads=4", "optimizer.lr=3e-3", "train.steps=7",
                                       "task.noise_std=0.5"])
    assert cfg.model == "softmax_attention:heads=4,d=3"
    assert cfg.optimizer.lr == 3e-3 and cfg.train.steps == 7
    assert cfg.task == "gaussian:d=3,n=12,noise_std=0.5"
    assert load_config(write_config(), ["task=gaussian:d=4,n=5"]).model.endswith("d=4")


def test_saved_config_round_trips(write_config, tmp_path):
    cfg = load_config(write_config({"curriculum": {"n": {"start": 4, "end": 12, "inc": 2, "every": 5}}}))
    path = tmp_path / "again.yaml"
    path.write_text(save_config(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("changes", "overrides", "message"),
    [
        ({"optimizer": {"lr": -1}}, [], "optimizer.lr must be positive"),
        ({"optimizer": {"name": "lion"}}, [], "config.optimizer.name must be one of"),
        ({"train": {"stepz": 3}}, [], "unknown key 'config.train.stepz'"),
        ({"train": {"batch": 0}}, [], "train.batch must be at least 1"),
        ({"schedule": {"decay": 0}}, [], "schedule.decay must lie in"),
        ({}, ["train.loss=mean"], "config.train.loss must be one of"),
        ({}, ["model.heads=0"], "heads must be at least 1"),
        ({}, ["model=softmax_attention:d=7"], "model d=7 does not match task d=3"),
        ({}, ["nonsense"], "is not key=value"),
        ({"curriculum": {"n": {"start": 4, "end": 50}}}, [], "curriculum.n.end=50 exceeds"),
        ({"run": {"cuda_graph": True}}, [], "run.cuda_graph needs run.device=cuda"),
        ({"model": "nosuch"}, [], "unknown model 'nosuch'"),
        ({"task": "gaussian:d=0"}, [], "d must be at least 1"),
        # finite numbers only, from the file and from overrides
        ({"optimizer": {"lr": float("inf")}}, [], "config.optimizer.lr must be a finite number"),
        ({}, ["optimizer.lr=1e999"], "config.optimizer.lr must be a finite number"),
        ({}, ["optimizer.betas=[0.9,nan]"], "config.optimizer.betas must be a list of a finite number"),
        ({}, ["task.noise_std=1e999"], "noise_std must be a finite number"),
        # one range for seeds everywhere
        ({}, ["train.seed=-1"], r"train.seed must be an integer in \[0, 2\*\*63\)"),
        ({}, ["train.seed=9223372036854775808"], "train.seed must be an integer in"),
        ({}, ["task.cov_seed=-2"], "cov_seed must be an integer in"),
        # eval.* is checked with the config, not at the first evaluation
        ({}, ["eval.estimators=[ols,magic]"], "eval.estimators: unknown estimator 'magic'"),
        ({}, ["eval.estimators=[ridge:lam=-1]"], "eval.estimators: ridge: lam must be >= 0"),
        ({}, ["eval.estimators=[ols,ols]"], "names an estimator twice"),
        ({}, ["eval.n=0"], "eval.n must be at least 1"),
        ({}, ["eval.samples=1000000000000"], "eval.samples must be at most 100,000,000"),
        ({}, ["curriculum.n.start=2"], "config.curriculum.n needs end"),
    ],
)
def test_bad_configs_name_the_problem(write_config, changes, overrides, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        load_config(write_config(changes), overrides)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(UsageError, match="is malformed"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UsageError, match="must hold a mapping"):
        load_config(bad)
    bad.write_bytes(bytes(range(256)))
    with pytest.raises(UsageError, match=r"is not text \(UTF-8\)"):
        load_config(bad)


def test_the_largest_seed_and_bare_word_lists_are_accepted(write_config):
    cfg = load_config(write_config(), [f"train.seed={2**63 - 1}", "eval.estimators=[ols,ridge:lam=0.5]"])
    assert cfg.train.seed == 2**63 - 1 and cfg.eval.estimators == ("ols", "ridge:lam=0.5")


def test_ramp_and_schedule_values():
    ramp = Ramp(start=5, end=20, inc=1, every=2000)
    assert [ramp.at(s) for s in (0, 1999, 2000, 29_999, 30_000, 10**6)] == [5, 5, 6, 19, 20, 20]
    points = Ramp(start=11, end=41, inc=2, every=2000)
    assert points.at(4000) == 15 and points.at(10**6) == 41
    warm = ScheduleConfig(name="cosine", warmup=10, min_lr_ratio=0.1)
    assert lr_factor(warm, 0, 110) == pytest.approx(0.1)
    assert lr_factor(warm, 9, 110) == pytest.approx(1.0)
    assert lr_factor(warm, 60, 110) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos = 0
    assert lr_factor(ScheduleConfig(name="linear"), 50, 100) == pytest.approx(0.5)
    # warm-up, stable, decay: 10 warm-up steps, then 90 at the peak, then a linear fall over 100
    wsd = ScheduleConfig(name="linear", warmup=10, decay=0.5)
    assert [lr_factor(wsd, s, 210) for s in (4, 10, 109, 110)] == pytest.approx([0.5, 1, 1, 1])
    assert lr_factor(wsd, 160, 210) == pytest.approx(0.5)
    assert lr_factor(wsd, 209, 210) == pytest.approx(0.01)


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[2].glob("configs/*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.model.split(":")[0] in ("gpt2", "softmax_attention", "linear_attention", "lstm", "cot")
