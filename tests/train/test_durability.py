"""The run directory's promises: damage is detected, a NaN is never checkpointed, one writer at a
time, a full disk is a one-line error, metrics are the deterministic record."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.errors import UsageError, WriteError
from iclreg.train import load_config, load_run, train
from iclreg.train.lock import group_lock, run_lock
from iclreg.train.metrics import read_metrics
from iclreg.train.sweep import resume_sweep, run_sweep


def one_line_error(capsys, *parts: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("iclreg: "), err
    for part in parts:
        assert part in err[0], err[0]
    return err[0]


@pytest.fixture
def run(write_config, tmp_path) -> Path:
    """A finished tiny run: checkpoints at steps 20 and 30."""
    return train(load_config(write_config()), tmp_path / "run")


def last_checkpoint(run_dir: Path) -> Path:
    return sorted((run_dir / "checkpoints").glob("step_*"))[-1]


# --- B3: metrics ----------------------------------------------------------------------------
def test_metrics_hold_no_wall_clock_time_and_timing_carries_across_a_resume(run, capsys):
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [5, 10, 15, 20, 25, 30]
    assert all(set(r) in ({"step", "loss", "lr"}, {"step", "eval"}) for r in records)
    timing = read_metrics(run / "timing.jsonl")
    assert [t["step"] for t in timing] == [5, 10, 15, 20, 25, 30]
    seconds = [t["seconds"] for t in timing]
    assert seconds == sorted(seconds) and seconds[0] > 0
    # resumed from step 20: timing is cut there and counts on from the time recorded at 20
    shutil.rmtree(run / "checkpoints" / "step_00000030")
    (run / "eval.json").unlink()
    assert main(["train", "--resume", str(run)]) == 0
    again = read_metrics(run / "timing.jsonl")
    assert [t["step"] for t in again] == [5, 10, 15, 20, 25, 30]
    assert again[:4] == timing[:4] and again[4]["seconds"] >= timing[3]["seconds"]


@pytest.mark.parametrize("line", ['{"loss": 1.0}', "[1, 2]", '{"step": "5"}', "17"])
def test_a_metrics_line_that_is_not_a_record_is_a_clear_error(run, capsys, line):
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    with pytest.raises(UsageError, match="line 2 is not a metrics record"):
        read_metrics(path)
    shutil.rmtree(last_checkpoint(run))
    assert main(["train", "--resume", str(run)]) == 2
    one_line_error(capsys, "metrics.jsonl' line 2 is not a metrics record")


def test_a_deleted_metrics_file_is_said_on_resume(run, capsys):
    """The checkpoints hold weights, not losses: a resume without metrics.jsonl goes on, and says
    in one line which steps' metrics are lost."""
    shutil.rmtree(run / "checkpoints" / "step_00000030")
    (run / "eval.json").unlink()
    (run / "metrics.jsonl").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"iclreg: warning: {run / 'metrics.jsonl'} is missing, but the run resumes from step "
                   "20: the metrics of steps 1 to 20 are lost (the checkpoints do not hold them); it records "
                   "the steps after 20 only"]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [25, 30, 30]


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every entry under ``directory``: a file's bytes, None for a directory."""
    return {str(p.relative_to(directory)): None if p.is_dir() else p.read_bytes()
            for p in sorted(directory.rglob("*"))}


@pytest.mark.parametrize("damage", ["metrics a directory", "timing unreadable", "checkpoint damaged"])
def test_an_extension_of_a_damaged_run_changes_nothing(run, capsys, damage):
    """--resume RUN train.steps=N reads what the resume will read before it removes eval.json and
    rewrites config.yaml: a damaged run is refused in one line, exactly as it was."""
    if damage == "metrics a directory":
        (run / "metrics.jsonl").unlink()
        (run / "metrics.jsonl").mkdir()
    elif damage == "timing unreadable":
        (run / "timing.jsonl").write_bytes(b"\xff\xfe not text\n{}\n")
    else:
        (last_checkpoint(run) / "model.safetensors").write_bytes(b"\x00" * 17)
    (run / ".lock").unlink(missing_ok=True)
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "train.steps=40"]) == 2
    one_line_error(capsys)
    assert snapshot(run) == before


def test_a_refused_sweep_resume_leaves_nothing_behind(write_config, tmp_path, capsys):
    """A sweep that cannot resume (a member with no config.yaml that sweep.yaml cannot rebuild, or
    one it does not list in its grid) is refused before its lock is taken: no .lock, no file."""
    out = tmp_path / "sweep_broken"
    assert main(["train", str(write_config({"train": {"steps": 10}})), "--sweep", "train.seed=0,1",
                 "--out", str(out), "-q"]) == 0
    shutil.rmtree(out / "train.seed=1")
    spec = (out / "sweep.yaml").read_text()
    (out / "sweep.yaml").write_text(spec.replace("train.seed=1", "train.seed=7"))
    (out / ".lock").unlink()
    before = snapshot(out)
    assert main(["train", "--resume", str(out)]) == 2
    one_line_error(capsys, "lists 'train.seed=7', which is not a point of its grid")
    assert snapshot(out) == before
    (out / "sweep.yaml").write_text("members: [a]\n")  # from an older iclreg: no grid to rebuild from
    assert main(["train", "--resume", str(out)]) == 2
    one_line_error(capsys, "has no config.yaml", "cannot rebuild it")
    assert not (out / ".lock").exists() and not (out / "a").exists()


# --- B4: damage -----------------------------------------------------------------------------
def flip_a_bit_of_tensor_data(path: Path) -> None:
    """Flip one bit inside tensor data (the file stays well-formed): near the end of a
    safetensors file, in the middle of the largest tensor record of torch's zip format."""
    data = bytearray(path.read_bytes())
    if path.suffix == ".pt":
        with zipfile.ZipFile(path) as archive:
            info = max((i for i in archive.infolist() if "/data/" in i.filename),
                       key=lambda i: i.file_size)
        offset = info.header_offset  # local header: 30 bytes, then the name and extra field
        start = offset + 30 + int.from_bytes(data[offset + 26:offset + 28], "little") \
            + int.from_bytes(data[offset + 28:offset + 30], "little")
        i = start + info.file_size // 2
    else:
        i = len(data) - 3
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.safetensors", "state.pt"])
def test_a_flipped_bit_is_detected_by_load_resume_and_eval(run, capsys, name):
    ckpt = last_checkpoint(run)
    flip_a_bit_of_tensor_data(ckpt / name)
    with pytest.raises(UsageError, match=f"{name} does not match its checksum"):
        load_run(run)
    (run / "eval.json").unlink()
    assert main(["train", "--resume", str(run)]) == 2
    one_line_error(capsys, "is damaged", name, "delete it to resume from an earlier checkpoint")
    assert main(["eval", str(run)]) == 2
    one_line_error(capsys, "is damaged")


def test_weights_copied_from_another_run_are_refused(write_config, run, tmp_path, capsys):
    other = train(load_config(write_config({"train": {"seed": 1}}, "other.yaml")), tmp_path / "other")
    shutil.copy(last_checkpoint(other) / "model.safetensors", last_checkpoint(run) / "model.safetensors")
    assert main(["eval", str(run)]) == 2
    one_line_error(capsys, "model.safetensors does not match its checksum")


def test_a_foreign_pickle_with_matching_checksums_is_a_clear_error(run, capsys):
    """state.pt replaced by a pickle of something else (checksums rewritten to match): the
    weights-only unpickler refuses it, as a one-line error rather than a traceback."""
    import hashlib
    import io
    import pickle

    ckpt = last_checkpoint(run)
    (run / "eval.json").unlink()
    buffer = io.BytesIO()
    torch.save({"step": 30, "hook": shutil.copy}, buffer)  # a global: not weights-only
    for name, foreign in [("plain pickle", pickle.dumps({"step": 30})), ("torch", buffer.getvalue())]:
        (ckpt / "state.pt").write_bytes(foreign)
        sums = json.loads((ckpt / "checksums.json").read_text())
        sums["state.pt"] = hashlib.sha256(foreign).hexdigest()
        (ckpt / "checksums.json").write_text(json.dumps(sums))
        assert main(["train", "--resume", str(run)]) == 2, name
        one_line_error(capsys, "is damaged")


def test_a_checkpoint_without_checksums_is_refused(run, capsys):
    (last_checkpoint(run) / "checksums.json").unlink()
    assert main(["eval", str(run)]) == 2
    one_line_error(capsys, "checksums.json is missing")


def test_stray_entries_under_checkpoints_are_ignored(run, capsys):
    model, _ = load_run(run)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    shutil.copytree(last_checkpoint(run), run / "checkpoints" / "step_00000030.bak")
    (run / "checkpoints" / "step_latest").mkdir()
    (run / "checkpoints" / "step_00000099").write_text("not a directory")
    model, _ = load_run(run)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    shutil.rmtree(run / "checkpoints" / "step_00000030")
    (run / "eval.json").unlink()
    assert main(["train", "--resume", str(run)]) == 0  # from step_00000020
    assert (run / "checkpoints" / "step_00000030" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "step_00000030.bak").is_dir()  # left alone


def test_checkpoints_being_a_file_and_an_empty_config_are_clear_errors(run, capsys):
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").write_text("")
    assert main(["eval", str(run)]) == 2
    one_line_error(capsys, "checkpoints' is not a directory")
    assert main(["train", "--resume", str(run)]) == 2
    one_line_error(capsys, "checkpoints' is not a directory")
    (run / "config.yaml").write_text("")
    assert main(["train", "--resume", str(run)]) == 2
    one_line_error(capsys, "config.yaml' is empty or not a mapping")
    assert main(["eval", str(run)]) == 2
    one_line_error(capsys, "config.yaml' is empty or not a mapping")


# --- B5: NaN ---------------------------------------------------------------------------------
NAN = {"model": "gpt2:layers=2,width=32,heads=2,max_n=12", "optimizer": {"name": "adam", "lr": 1e4},
       "train": {"steps": 40}, "run": {"checkpoint_every": 2, "log_every": 5}}


def finite(ckpt: Path) -> bool:
    weights = load_file(str(ckpt / "model.safetensors"))
    state = torch.load(ckpt / "state.pt", weights_only=True)["optimizer"]["state"]
    tensors = [*weights.values(), *(t for s in state.values() for t in s.values())]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def test_non_finite_weights_are_never_checkpointed(write_config, tmp_path, capsys):
    """With Adam at lr = 1e4 the loss at step 2 (before the update) is finite but the weights
    after it are not: the run stops there and writes no checkpoint of them."""
    run = tmp_path / "run"
    assert main(["train", str(write_config(NAN)), "--out", str(run), "-q"]) == 1  # -q: no progress lines
    one_line_error(capsys, "became non-finite by step 2", "no checkpoint was written")
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())
    assert read_metrics(run / "metrics.jsonl")[-1]["diverged"].startswith("weights or optimiser")


def test_a_sweep_with_a_diverged_member_stays_resumable(write_config, tmp_path):
    """One member's weights turn NaN at step 2 and it stops without a checkpoint; the sweep,
    killed later, resumes the other member and leaves the diverged one alone."""
    config = write_config({**NAN, "train": {"steps": 12}})
    out = run_sweep(config, [], ["optimizer.lr=1e-3,1e4"], tmp_path / "s")
    good, bad = out / "optimizer.lr=1e-3", out / "optimizer.lr=1e4"
    assert all(finite(c) for c in (bad / "checkpoints").glob("step_*"))

    def result() -> tuple[bytes, bytes]:
        return ((good / "metrics.jsonl").read_bytes(),
                (last_checkpoint(good) / "model.safetensors").read_bytes())

    expected = result()
    shutil.rmtree(last_checkpoint(good))  # as if killed before the last save
    (good / "eval.json").unlink()
    resume_sweep(out)
    assert result() == expected
    rows = {r["optimizer.lr"]: r for r in json.loads((out / "summary.json").read_text())}
    assert rows["1e4"]["diverged"] and not rows["1e-3"]["diverged"] and rows["1e-3"]["steps"] == 12


# --- B6: one writer ----------------------------------------------------------------------------
def test_a_second_writer_is_refused_and_named(run, capsys):
    (run / "eval.json").unlink()
    with run_lock(run):
        holder = subprocess.run([sys.executable, "-m", "iclreg", "train", "--resume", str(run)],
                                capture_output=True, text=True, timeout=120)
    assert holder.returncode == 2
    err = holder.stderr.strip().splitlines()
    assert len(err) == 1 and f"is being written by process {os.getpid()}" in err[0], err
    assert main(["train", "--resume", str(run)]) == 0  # re-entrant within the process, free after


def test_resume_while_the_run_goes_on_is_refused_and_a_killed_holder_blocks_nothing(write_config, tmp_path,
                                                                                    capsys):
    config = write_config({"train": {"steps": 100000}, "run": {"checkpoint_every": 5}})
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "iclreg", "train", str(config), "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = run / "checkpoints"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (ckpts.is_dir() and any(ckpts.glob("step_*"))):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the test could resume it"
        assert main(["train", "--resume", str(run)]) == 2
        one_line_error(capsys, f"'{run}' is being written by process {proc.pid}", "wait for it")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads((run / ".lock").read_text())["pid"] == proc.pid  # the note stays behind
    with run_lock(run):  # but the kernel released the dead holder's lock: nothing is stale
        assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()


def test_sweep_and_member_writers_exclude_each_other(write_config, tmp_path, capsys):
    out = run_sweep(write_config({"train": {"steps": 10}}), [], ["train.seed=0,1"], tmp_path / "s")
    member = out / "train.seed=1"
    (member / "eval.json").unlink()  # unfinished: resuming a finished run writes nothing, takes no lock
    with group_lock(out):
        proc = subprocess.run([sys.executable, "-m", "iclreg", "train", "--resume", str(member)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"'{out}' is being written by process {os.getpid()}" in proc.stderr
    with run_lock(member):
        proc = subprocess.run([sys.executable, "-m", "iclreg", "train", "--resume", str(out), "-q"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is being written by" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- B7: full disk -----------------------------------------------------------------------------
def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def full_disk_at(nth: int):
    """An ``os.fsync`` that fails with ENOSPC on the first file of the ``nth`` checkpoint
    written (a checkpoint is written in a ``.tmp_*`` directory and flushed file by file)."""
    real, seen = os.fsync, []

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if "/.tmp_" in path:
            tmp = path.rsplit("/", 1)[0]
            seen.extend([tmp] if tmp not in seen else [])
            if len(seen) == nth:
                enospc()
        return real(fd)

    return fsync


def test_a_full_disk_during_a_checkpoint_is_a_one_line_error_and_resumable(write_config, tmp_path,
                                                                          capsys, monkeypatch):
    config = write_config()
    straight = train(load_config(config), tmp_path / "straight")
    run = tmp_path / "run"
    real = os.fsync
    monkeypatch.setattr(os, "fsync", full_disk_at(2))
    assert main(["train", str(config), "--out", str(run), "-q"]) == 1
    one_line_error(capsys, "cannot write", "step_00000020", "No space left on device",
                   f"free some space, then continue with 'iclreg train --resume {run}'")
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000010"]  # no .tmp_
    monkeypatch.setattr(os, "fsync", real)
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "metrics.jsonl").read_bytes() == (straight / "metrics.jsonl").read_bytes()
    assert (last_checkpoint(run) / "model.safetensors").read_bytes() == \
        (last_checkpoint(straight) / "model.safetensors").read_bytes()


def test_a_full_disk_for_metrics_or_a_sweep_member_is_a_one_line_error(write_config, tmp_path, capsys,
                                                                       monkeypatch):
    import iclreg.train.metrics as metrics

    monkeypatch.setattr(metrics, "open", enospc, raising=False)
    assert main(["train", str(write_config()), "--out", str(tmp_path / "run"), "-q"]) == 1
    one_line_error(capsys, "cannot write", "metrics.jsonl", "No space left on device")
    monkeypatch.undo()
    # a sweep whose disk fills while one member's checkpoint is written resumes to the end
    real = os.fsync
    monkeypatch.setattr(os, "fsync", full_disk_at(3))  # the third member's first checkpoint
    config = write_config({"train": {"steps": 20}})
    sweep = ["--sweep", "train.seed=0,1,2", "--out", str(tmp_path / "s")]
    assert main(["train", str(config), *sweep, "-q"]) == 1
    one_line_error(capsys, "cannot write", f"continue with 'iclreg train --resume {tmp_path / 's'}'")
    monkeypatch.setattr(os, "fsync", real)
    assert main(["train", "--resume", str(tmp_path / "s")]) == 0
    rows = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert [r["steps"] for r in rows] == [20, 20, 20]


def test_a_full_disk_while_creating_a_run_says_to_run_it_again(write_config, tmp_path, capsys,
                                                               monkeypatch):
    import iclreg.train.runs as runs

    monkeypatch.setattr(runs, "write_text", enospc)
    config, run = write_config({"train": {"steps": 5}}), tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 1
    one_line_error(capsys, "config.yaml", "No space left on device", "run the command again")
    monkeypatch.undo()
    assert main(["train", str(config), "--out", str(run)]) == 0


def test_write_error_is_the_cli_s_one_line_error():
    assert issubclass(WriteError, RuntimeError) and not issubclass(WriteError, UsageError)
