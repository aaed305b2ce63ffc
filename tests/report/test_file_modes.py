"""Outputs get the modes of ordinary files and directories under the user's umask.

``tempfile`` creates 0600 files and 0700 directories; before this test's fix every atomic
write, report directory and checkpoint kept those owner-only modes, so a report could not be
served or shared with a group.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from iclreg.experiments import runner
from iclreg.experiments.tour import Tour
from iclreg.report.files import atomic_output_dir, umask, write_text
from iclreg.train import load_config, train


@pytest.fixture(params=[0o022, 0o027, 0o002])
def mask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` and everything below it (lock files excepted: their mode is
    the lock's own, 0644 less the umask)."""
    paths = [root, *root.rglob("*")]
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in paths if p.name != ".lock"}


def _expect(root: Path, mask: int) -> None:
    modes = _modes(root)
    assert len(modes) > 3
    for name, mode in modes.items():
        want = (0o777 if (root / name).is_dir() else 0o666) & ~mask
        assert mode == want, f"{name}: {oct(mode)} under umask {oct(mask)}, expected {oct(want)}"


def test_umask_is_read_without_changing_it(mask):
    assert umask() == mask
    assert umask() == mask


def test_atomic_writes_follow_the_umask(tmp_path, mask):
    with atomic_output_dir(tmp_path / "report") as out:
        write_text(out / "report.md", "# r\n")
        (out / "sub").mkdir()
        write_text(out / "sub" / "a.json", "{}")
    write_text(tmp_path / "report" / "late.txt", "x")
    _expect(tmp_path / "report", mask)


TINY = """
task: gaussian:d=3,n=8
model: softmax_attention:heads=1
optimizer: {name: adam, lr: 0.01}
train: {steps: 10, batch: 16, loss: query, seed: 0}
eval: {samples: 32, estimators: [ols]}
run: {checkpoint_every: 5, log_every: 5}
"""


def test_a_training_run_follows_the_umask(tmp_path, mask):
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = train(load_config(tmp_path / "tiny.yaml"), tmp_path / "run")
    assert (run / "checkpoints").is_dir() and (run / "eval.json").is_file()
    _expect(run, mask)


def test_a_reproduction_report_follows_the_umask(tmp_path, mask):
    out = tmp_path / "tour"
    runner.reproduce("tour", out, sizes=Tour.toy)
    assert (out / "report.md").is_file()
    _expect(out, mask)
