"""The Ray backend of sweeps on a real local Ray cluster (two worker CPUs): every member bit for
bit the local backend's, resume reusing finished chunks, a failing chunk reported while the others
finish, and the one-line error when Ray is not installed."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import yaml
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.train.metrics import read_metrics
from iclreg.train.sweep import run_sweep

from .conftest import TINY

# two shapes (heads) x two seeds: two ensembles of two members, so two chunks, two Ray tasks
SWEEP = ["train.seed=0,1", "model.heads=1,2"]
CONFIG = {**TINY, "train": {**TINY["train"], "steps": 20},
          "run": {"dtype": "float64", "checkpoint_every": 10, "log_every": 5, "keep": 2}}
MEMBERS = [f"train.seed={s},model.heads={h}" for s in (0, 1) for h in (1, 2)]
SECOND = [m for m in MEMBERS if m.endswith("heads=2")]  # the members of one chunk


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The config file and the sweep trained by the local backend."""
    root = tmp_path_factory.mktemp("ray")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    return config, run_sweep(config, [], SWEEP, root / "local")


def final(run_dir):
    """(the last checkpoint's weights, the metrics, eval.json) of a finished member."""
    last = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return (last.name, load_file(str(last / "model.safetensors")), read_metrics(run_dir / "metrics.jsonl"),
            json.loads((run_dir / "eval.json").read_text()))


def assert_same_member(a, b):
    (step_a, weights_a, metrics_a, eval_a), (step_b, weights_b, metrics_b, eval_b) = final(a), final(b)
    assert step_a == step_b == "step_00000020"
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert weights_a[key].dtype == weights_b[key].dtype
        assert weights_a[key].equal(weights_b[key]), key  # bit for bit
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in m] for m in (metrics_a, metrics_b)]
    assert strip[0] == strip[1]
    assert eval_a == eval_b


def kill_after_step_10(sweep, names):
    """What a kill between steps 10 and 20 leaves: no final checkpoint, no eval.json, no summary."""
    for name in names:
        member = sweep / name
        shutil.rmtree(member / "checkpoints" / "step_00000020")
        for file in ("eval.json", "eval.png", "loss.png"):
            (member / file).unlink()
    for file in ("summary.csv", "summary.json"):
        (sweep / file).unlink()


def test_ray_sweep_is_bit_identical_to_the_local_one(ray_cluster, reference, tmp_path, capsys):
    config, local = reference
    out = tmp_path / "ray"
    argv = ["train", str(config), "--out", str(out), "--backend", "ray"]
    assert main([*argv, *(a for s in SWEEP for a in ("--sweep", s))]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(MEMBERS)
    for name in MEMBERS:
        assert_same_member(out / name, local / name)
    assert json.loads((out / "summary.json").read_text()) == json.loads((local / "summary.json").read_text())
    assert (out / "summary.csv").read_text() == (local / "summary.csv").read_text()


def test_a_killed_ray_sweep_resumes_reusing_finished_chunks(ray_cluster, reference, tmp_path):
    _, local = reference
    out = shutil.copytree(local, tmp_path / "sweep")
    kill_after_step_10(out, SECOND)
    finished = {name: (out / name / "eval.json").stat().st_mtime_ns for name in MEMBERS if name not in SECOND}
    assert main(["train", "--resume", str(out), "--backend", "ray"]) == 0
    for name, stamp in finished.items():
        assert (out / name / "eval.json").stat().st_mtime_ns == stamp  # reused, not trained again
    for name in MEMBERS:
        assert_same_member(out / name, local / name)
    assert json.loads((out / "summary.json").read_text()) == json.loads((local / "summary.json").read_text())


def test_a_failing_chunk_is_reported_and_the_others_finish(ray_cluster, reference, tmp_path, capsys):
    _, local = reference
    out = shutil.copytree(local, tmp_path / "sweep")
    kill_after_step_10(out, MEMBERS)
    for name in SECOND:  # damage the checkpoint this chunk must resume from
        (out / name / "checkpoints" / "step_00000010" / "model.safetensors").write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--backend", "ray", "-q"]) == 1  # -q: the error alone
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "1 of 2 chunks failed" in err and "damaged" in err.lower()
    assert all(name in err for name in SECOND)
    assert not any(name in err for name in MEMBERS if name not in SECOND)
    for name in MEMBERS:
        if name in SECOND:
            assert not (out / name / "eval.json").exists()
        else:
            assert_same_member(out / name, local / name)


def test_ray_not_installed_is_a_one_line_error_naming_the_extra(monkeypatch, tmp_path, capsys,
                                                               write_config):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "out"
    argv = ["train", str(write_config()), "--sweep", "train.seed=0,1", "--out", str(out), "--backend", "ray"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'iclreg[ray]'" in err
    assert not out.exists()  # refused before any file is written
    assert main(["reproduce", "tour", "--quick", "--out", str(tmp_path / "r"), "--backend", "ray"]) == 2
    assert "iclreg[ray]" in capsys.readouterr().err


def test_an_address_needs_the_ray_backend(write_config, tmp_path, capsys):
    argv = ["train", str(write_config()), "--sweep", "train.seed=0,1", "--out", str(tmp_path / "o"),
            "--address", "localhost:6379"]
    assert main(argv) == 2
    assert "--backend ray" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_train_plan_on_ray_matches_the_local_backend(ray_cluster, tmp_path):
    """Reproductions train through train_plan: runs in subdirectories, two shapes, two tasks."""
    from iclreg.train import resolve, train_plan

    plan = {f"{where}/s{seed}": resolve({**CONFIG, "model": f"softmax_attention:heads={seed + 1}",
                                         "train": {**CONFIG["train"], "seed": seed}})
            for where, seed in (("a", 0), ("b", 1))}
    local = train_plan(plan, tmp_path / "local")
    remote = train_plan(plan, tmp_path / "ray", backend="ray")
    for name in plan:
        assert_same_member(remote[name], local[name])
