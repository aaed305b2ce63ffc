"""What a battery of hostile invocations found: every one is a one-line error through the real entry
point, with nothing half-written left behind (a full disk under a command's --plot, a YAML alias
bomb in a config, values whose results no float can hold)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from tests.train.test_durability import one_line_error

from iclreg.cli import main
from iclreg.errors import UsageError
from iclreg.train import resolve, train


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    config = resolve({"task": "gaussian:d=3,n=8,noise_std=0.1", "model": "softmax_attention:heads=1",
                      "train": {"steps": 4, "batch": 8}, "eval": {"samples": 16, "estimators": ["ols"]},
                      "run": {"checkpoint_every": 4, "figures": False}})
    return train(config, tmp_path_factory.mktemp("run") / "run")


@pytest.mark.parametrize("command", ["compare", "eval", "test-time"])
def test_a_full_disk_under_plot_is_a_one_line_error(command, run, tmp_path, capsys, monkeypatch):
    import iclreg.report.files as files

    argv = {"compare": ["compare", "--task", "gaussian:d=3,n=6", "--estimator", "ols", "--samples", "16"],
            "eval": ["eval", str(run), "--samples", "16"],
            "test-time": ["test-time", "--task", "gaussian:d=3,n=6", "--decoder", "gd:lr=0.1", "--steps",
                          "2", "--samples", "1,2", "--prompts", "8"]}[command]
    plot = tmp_path / "out" / "figure.png"
    plot.parent.mkdir()
    monkeypatch.setattr(files, "write_bytes", enospc)
    assert main([*argv, "--plot", str(plot), "-q"]) == 1
    one_line_error(capsys, f"cannot write '{plot}' (No space left on device)", "run the command again")
    assert list(plot.parent.iterdir()) == []


def alias_bomb(levels: int = 9) -> str:
    """A config whose eval.estimators, through ``levels`` nested aliases of nine, stands for 9^levels
    estimators (the "billion laughs")."""
    lines = ["task: gaussian:d=3,n=8", "model: softmax_attention:heads=1",
             "x0: &a0 [ols, ols, ols, ols, ols, ols, ols, ols, ols]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"eval: {{estimators: *a{levels - 1}}}"]) + "\n"


@pytest.mark.parametrize("text, message", [
    (alias_bomb(), "stands for 926,177,121 values through its YAML aliases"),
    ("task: gaussian:d=3,n=8\nmodel: softmax_attention:heads=1\neval: &e {estimators: [*e]}\n",
     "holds an alias (*name) inside the value it names"),
    ("task: " + "[" * 50_000 + "]" * 50_000 + "\n", "is nested too deeply to read"),
])
def test_a_config_that_expands_without_bound_is_a_one_line_error(text, message, tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text(text)
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, f"config file '{config}'", message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]


def test_aliases_that_expand_to_a_config_s_size_still_load(tmp_path):
    from iclreg.train import load_config

    config = tmp_path / "aliases.yaml"
    config.write_text("task: gaussian:d=3,n=8\nmodel: softmax_attention:heads=1\n"
                      "x: &e [ols, bayes]\neval: {estimators: *e}\n")
    with pytest.raises(UsageError, match="unknown key 'config.x'"):  # read through; x is no section
        load_config(config)
    config.write_text(config.read_text().replace("x: &e [ols, bayes]\neval: {estimators: *e}",
                                                 "eval: {estimators: &e [ols, bayes], n: 8}"))
    assert load_config(config).eval.estimators == ("ols", "bayes")


@pytest.mark.parametrize("argv", [
    ["compare", "--task", "gaussian:d=3,n=5,noise_std=1e200", "--samples", "16"],
    ["compare", "--task", "gaussian:d=3,n=5,w_std=1e200", "--samples", "16", "--json"],
    ["train", "CONFIG", "task=gaussian:d=3,n=8,noise_std=1e200", "--out", "RUN"],
])
def test_values_whose_results_overflow_are_a_one_line_error(argv, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("task: gaussian:d=3,n=8\nmodel: softmax_attention:heads=1\n")
    argv = [str(config) if a == "CONFIG" else str(tmp_path / "run") if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    one_line_error(capsys, "would have a second moment of about inf", "scale the task down")
    assert capsys.readouterr().out == "" and not (tmp_path / "run").exists()
