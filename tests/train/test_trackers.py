"""Trackers: TensorBoard and W&B receive exactly what metrics.jsonl holds, for runs, sweeps and
resumed runs; a tracker whose package is missing is refused before anything is written."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from iclreg.cli import main
from iclreg.errors import UsageError
from iclreg.train import Trainer, load_config, resume, train
from iclreg.train.metrics import read_metrics
from iclreg.train.sweep import run_sweep
from iclreg.train.trackers import EVENTS, TRACKERS

QUICK = {"train": {"steps": 20}, "eval": {"every": 10, "samples": 32}, "run": {"checkpoint_every": 10}}


def scalars(run: Path) -> tuple[dict[str, list[tuple[int, float]]], list[int]]:
    """tag -> [(step, value)] of a run's TensorBoard events, and the steps of ``eval_curve``."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"),
                                             size_guidance={"scalars": 0, "images": 0})  # 0: keep all
    acc.Reload()
    tags = acc.Tags()
    curves = [e.step for e in acc.Images("eval_curve")] if "eval_curve" in tags["images"] else []
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}, curves


def expected(run: Path) -> dict[str, list[tuple[int, float]]]:
    """The same tags as TensorBoard should show them, from metrics.jsonl."""
    records = read_metrics(run / "metrics.jsonl")
    out = {tag: [(r["step"], r[tag]) for r in records if tag in r] for tag in ("loss", "lr")}
    for r in (r for r in records if "eval" in r):
        for predictor, curve in r["eval"].items():
            out.setdefault(f"eval/{predictor}", []).append((r["step"], curve[-1]))
    return out


def check_events(run: Path) -> None:
    got, curves = scalars(run)
    want = expected(run)
    assert sorted(got) == sorted(want) == ["eval/model", "eval/ols", "loss", "lr"]
    for tag, points in want.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag  # each step once
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag  # float32
    assert curves == [s for s, _ in want["eval/model"]] == [10, 20]


def test_tensorboard_events_hold_the_metrics_and_eval_curves(write_config, tmp_path):
    pytest.importorskip("tensorboard")
    run = train(load_config(write_config(QUICK), ["run.trackers=[tensorboard]"]), tmp_path / "run")
    assert [p.name for p in (run / "tensorboard").iterdir()] == [EVENTS]
    check_events(run)
    assert len(expected(run)["loss"]) == 4  # log_every 5: steps 5, 10, 15, 20


def test_tensorboard_after_a_resume_shows_each_step_once(write_config, tmp_path, monkeypatch):
    """Stopped at step 15 (checkpoint at 10) with a record torn by the kill: the resumed run's
    events drop what followed the checkpoint, as metrics.jsonl does, and append the rest."""
    pytest.importorskip("tensorboard")
    step = Trainer.train_step

    def stop_at_15(self, i):
        if i == 15:
            raise KeyboardInterrupt
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", stop_at_15)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(write_config(QUICK), ["run.trackers=[tensorboard]"]), tmp_path / "run")
    monkeypatch.setattr(Trainer, "train_step", step)
    events = tmp_path / "run" / "tensorboard" / EVENTS
    assert [s for s, _ in scalars(tmp_path / "run")[0]["loss"]] == [5, 10, 15]
    with open(events, "ab") as fh:
        fh.write(struct.pack("<Q", 1000) + b"torn")  # a kill in the middle of a record
    resume(tmp_path / "run")
    check_events(tmp_path / "run")


def test_curves_false_logs_the_scalars_without_figures(tmp_path):
    pytest.importorskip("tensorboard")
    tracker = TRACKERS.build("tensorboard:curves=false").open(tmp_path, {}, None)
    tracker.log({"step": 7, "eval": {"model": [2.0, 0.5], "ols": [2.0, 1e-14]}})
    tracker.close()
    got, curves = scalars(tmp_path)
    assert got == {"eval/model": [(7, 0.5)], "eval/ols": [(7, pytest.approx(1e-14, rel=1e-6))]}
    assert curves == []


def test_sweep_members_each_get_their_own_events(write_config, tmp_path):
    pytest.importorskip("tensorboard")
    out = run_sweep(write_config(QUICK), ["run.trackers=[tensorboard]"], ["optimizer.lr=0.01,0.03"],
                    tmp_path / "s")
    members = [out / "optimizer.lr=0.01", out / "optimizer.lr=0.03"]
    for member in members:
        check_events(member)
    losses = [[v for _, v in scalars(m)[0]["loss"]] for m in members]
    assert losses[0] != losses[1]  # each member's own, not one shared stream


def wandb_file(path: Path) -> tuple[list[dict], dict, str, str]:
    """The history rows, config, display name and id in one offline ``.wandb`` file.

    The file is a LevelDB-style log (wandb's ``datastore``): a 7-byte header, then records in
    32 KiB blocks, each ``crc (4) length (2) type (1) data``, split FIRST/MIDDLE/LAST across blocks;
    a record's data is a ``wandb_internal_pb2.Record``."""
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")
    rows, config, name, run_id = [], {}, "", ""
    data, pos, buf = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf, pos = buf + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record.FromString(buf)
            buf = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                             for i in record.history.item})
            elif record.WhichOneof("record_type") == "run":
                name, run_id = record.run.display_name, record.run.run_id
                config |= {u.key: json.loads(u.value_json) for u in record.run.config.update}
    return rows, config, name, run_id


def test_wandb_offline_run_logs_the_metrics_and_config_and_resumes(write_config, tmp_path, monkeypatch):
    """Stopped at step 15 (checkpoint at 10) and resumed: two offline parts of one W&B run (one
    id) whose history holds metrics.jsonl's values exactly."""
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    step = Trainer.train_step

    def stop_at_15(self, i):
        if i == 15:
            raise KeyboardInterrupt
        return step(self, i)

    config = load_config(write_config(QUICK), ["run.trackers=[wandb]"])
    monkeypatch.setattr(Trainer, "train_step", stop_at_15)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run")
    monkeypatch.setattr(Trainer, "train_step", step)
    run = resume(tmp_path / "run")
    offline = sorted(run.glob("wandb/offline-run-*"), key=lambda p: (p.name[12:27], len(p.name), p.name))
    assert len(offline) == 2  # offline by default: nothing was sent
    parts = [wandb_file(next(d.glob("run-*.wandb"))) for d in offline]
    assert [(name, run_id) for _, _, name, run_id in parts] == [("run", parts[0][3])] * 2  # one run
    assert parts[1][1]["train"] == config.to_dict()["train"]
    (first, *_), (second, *_) = parts
    assert [r["step"] for r in first if "loss" in r] == [5, 10, 15]
    assert [r["step"] for r in second if "loss" in r] == [15, 20]  # from the checkpoint at 10
    records = read_metrics(run / "metrics.jsonl")
    assert {r["step"]: (r["loss"], r["lr"]) for r in first + second if "loss" in r} == {
        r["step"]: (r["loss"], r["lr"]) for r in records if "loss" in r}  # JSON doubles: exact
    evals = [r for r in records if "eval" in r]
    assert [(r["step"], r["eval/model"], r["eval/ols"]) for r in first + second if "eval/model" in r] == [
        (r["step"], r["eval"]["model"][-1], r["eval"]["ols"][-1]) for r in evals]
    table = json.loads(next(offline[1].glob("files/media/table/eval_curve_table_*.json")).read_text())
    model = [row for row in table["data"] if "model" in row]  # [k, key, mse] rows of the chart
    assert [row[-1] for row in model] == pytest.approx(evals[-1]["eval"]["model"])


def missing(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``import package`` (and its submodules) fail as if it were not installed."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("package", ["tensorboard", "wandb"])
def test_a_missing_tracker_package_is_refused_before_the_run_starts(write_config, tmp_path, monkeypatch,
                                                                    capsys, package):
    missing(monkeypatch, package)
    out = tmp_path / "run"
    assert main(["train", str(write_config(QUICK)), f"run.trackers=[{package}]", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"not installed: .venv/bin/pip install -e '.[{package}]' in iclreg's checkout "
                            f"(or remove {package} from run.trackers)")
    assert not out.exists()  # refused before the run directory was made
    with pytest.raises(UsageError, match=rf"pip install -e '\.\[{package}\]'"):  # resume: before a step
        Trainer([load_config(write_config(QUICK), [f"run.trackers=[{package}]"])], [tmp_path], False)


@pytest.mark.parametrize(("override", "message"), [
    ("run.trackers=[tensorbord]",
     "run.trackers: unknown tracker 'tensorbord'; choose one of: tensorboard, wandb"),
    ("run.trackers=[wandb:mode=shared]", "run.trackers: tracker 'wandb': mode must be one of"),
    ("run.trackers=[wandb,wandb:mode=online]", "run.trackers names a tracker twice"),
])
def test_bad_tracker_lists(write_config, override, message):
    with pytest.raises(UsageError, match=message):
        load_config(write_config(), [override])


def test_tracker_overrides_parse_and_an_empty_list_leaves_the_stored_config_as_it_was(write_config):
    cfg = load_config(write_config(), ["run.trackers=[tensorboard,wandb:mode=online]"])
    assert cfg.run.trackers == ("tensorboard", "wandb:mode=online")
    assert load_config(write_config(), ["run.trackers=tensorboard"]).run.trackers == ("tensorboard",)
    assert "trackers" not in load_config(write_config()).to_dict()["run"]  # old runs' checkpoints match
