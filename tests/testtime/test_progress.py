"""``iclreg test-time`` reports its decoding as it goes (``logs.Progress`` over the decoded tokens,
prompts x N_max x T): log lines on stderr outside a terminal, with -v too; none with --json, whose
stdout stays one JSON object; the numbers do not depend on it."""

from __future__ import annotations

import json

import torch

from iclreg.cli import main
from iclreg.tasks import build as build_task
from iclreg.testtime import DECODERS, NOISES, TECHNIQUES, evaluate

ARGS = ["test-time", "--task", "gaussian:d=4,n=8,noise_std=0.3", "--decoder", "gd:lr=0.05", "--steps", "6",
        "--noise", "multiplicative:std=0.5", "--samples", "1,4", "--prompts", "300"]
TOTAL = 300 * 4 * 6  # decoded tokens: prompts x N_max x T


def _progress_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "test-time: token" in line]


def test_progress_lines_on_stderr_and_with_verbose(capsys, monkeypatch):
    monkeypatch.setenv("ICLREG_LOG_EVERY", "0")  # a line at every update (two chunks of 6 steps)
    assert main(ARGS) == 0
    out, err = capsys.readouterr()
    lines = _progress_lines(err)
    assert len(lines) >= 6 and not _progress_lines(out)
    assert lines[-1].startswith("iclreg: test-time: token") and f"{TOTAL}/{TOTAL} (100%)" in lines[-1]
    assert "done in" in lines[-1]
    assert main([*ARGS, "-v"]) == 0
    lines = _progress_lines(capsys.readouterr().err)
    assert lines and " INFO iclreg.testtime.evaluate: test-time: token" in lines[-1]  # verbose format


def test_no_progress_with_json_or_quiet(capsys, monkeypatch):
    monkeypatch.setenv("ICLREG_LOG_EVERY", "0")
    assert main([*ARGS, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["N"] == [1, 4] and not _progress_lines(err)
    assert main([*ARGS, "-q"]) == 0
    assert not _progress_lines(capsys.readouterr().err)


def test_progress_does_not_change_the_numbers():
    parts = (build_task("gaussian:d=4,n=8,noise_std=0.3"), DECODERS.build("gd:lr=0.05"),
             NOISES.build("multiplicative:std=0.5"), TECHNIQUES.build("mean"))
    quiet = evaluate(*parts, 6, [1, 4], 300, seed=3)
    shown = evaluate(*parts, 6, [1, 4], 300, seed=3, progress=True)
    assert quiet["results"] == shown["results"]
    assert torch.isfinite(torch.tensor(quiet["results"]["mean"]["mse"])).all()
