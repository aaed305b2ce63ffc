"""What a battery of hostile invocations found: every one is a one-line error through the real entry
point, with nothing half-written left behind (a full disk under a command's --plot, a YAML alias
bomb in a config, values whose results no float can hold)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from iclreg.cli import main
from iclreg.train import resolve, train


def one_line_error(capsys, *parts: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("iclreg: "), err
    for part in parts:
        assert part in err[0], err[0]
    return err[0]


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
