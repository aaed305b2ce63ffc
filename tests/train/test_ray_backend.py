"""The Ray backend of sweeps on a real local Ray cluster (two worker CPUs, one GPU it is told of
that this machine lacks): every member bit for bit the local backend's, resume reusing finished
chunks, a failing chunk reported while the others finish, a killed worker's chunk sent again, a
shape split over the workers, a cuda sweep sent from a driver without a GPU; the one-line errors
when Ray is not installed or its cluster does not answer; a stopped driver stops its tasks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.errors import UsageError
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
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
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
    assert len(err.splitlines()) == 1 and "pip install -e '.[ray]'" in err
    assert not out.exists()  # refused before any file is written
    assert main(["reproduce", "tour", "--quick", "--out", str(tmp_path / "r"), "--backend", "ray"]) == 2
    assert ".[ray]" in capsys.readouterr().err


def test_an_address_needs_the_ray_backend(write_config, tmp_path, capsys):
    argv = ["train", str(write_config()), "--sweep", "train.seed=0,1", "--out", str(tmp_path / "o"),
            "--address", "localhost:6379"]
    assert main(argv) == 2
    assert "--backend ray" in capsys.readouterr().err
    assert main([*argv[:-2], "--retries", "2"]) == 2
    assert "--retries sends failed Ray tasks again; give it with --backend ray" in capsys.readouterr().err
    assert main([*argv[:-2], "--backend", "ray", "--retries", "-1"]) == 2
    assert "--retries must lie in [0, 100], got -1" in capsys.readouterr().err
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


# --- the cluster's address ------------------------------------------------------------------------
@pytest.mark.parametrize(("address", "env"), [("127.0.0.1:1", False), ("localhost:1", False),
                                             ("127.0.0.1:1", True)])
def test_a_cluster_that_does_not_answer_is_a_one_line_error_before_any_file(address, env, write_config,
                                                                            tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    if env:
        monkeypatch.setenv("RAY_ADDRESS", address)
    out = tmp_path / "out"
    start = time.monotonic()
    argv = ["train", str(write_config()), "--sweep", "train.seed=0,1", "--out", str(out), "--backend", "ray"]
    assert main([*argv, *([] if env else ["--address", address]), "-q"]) == 2
    assert time.monotonic() - start < 10  # ray.init alone waits for minutes
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"no Ray cluster answers at {'RAY_ADDRESS' if env else '--address'} '{address}'" in err
    assert not out.exists()  # refused before sweep.yaml or a member directory


def test_a_malformed_address_is_a_one_line_error(write_config, tmp_path, capsys):
    pytest.importorskip("ray")
    argv = ["train", str(write_config()), "--sweep", "train.seed=0,1", "--out", str(tmp_path / "o"),
            "--backend", "ray", "--address", "nohost", "-q"]
    assert main(argv) == 2
    assert "is not HOST:PORT" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def fake_ray(refuse: bool = False):
    """A stand-in for the ray module that records ray.init's arguments."""
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        if refuse:
            raise ConnectionError("Could not connect to the GCS\nsecond line")

    return types.SimpleNamespace(is_initialized=lambda: False, init=init, shutdown=lambda: None), calls


def test_without_an_address_a_new_local_ray_is_started_and_the_log_says_which(caplog, monkeypatch):
    pytest.importorskip("ray")
    from iclreg.train.ray_backend import connected

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    caplog.set_level(logging.INFO, logger="iclreg")
    ray, calls = fake_ray()
    with connected(ray, None):
        pass
    assert calls[-1]["address"] == "local"  # ray.init(address=None) would join a running cluster
    assert "starting a local Ray for this sweep" in caplog.text
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    with connected(ray, None):
        pass
    assert calls[-1]["address"] == "10.0.0.7:6379"
    assert "joining the Ray cluster at 10.0.0.7:6379" in caplog.text


def test_a_refused_connection_is_one_line():
    pytest.importorskip("ray")
    from iclreg.train.ray_backend import connected

    ray, _ = fake_ray(refuse=True)
    with pytest.raises(UsageError) as err, connected(ray, "10.0.0.7:6379"):
        pass
    assert str(err.value) == "cannot join the Ray cluster at '10.0.0.7:6379': Could not connect to the GCS"


# --- a GPU sweep, and chunks split over the workers ----------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a driver without a GPU")
def test_a_cuda_sweep_is_sent_from_a_driver_without_a_gpu(ray_cluster, write_config, tmp_path, capsys,
                                                          monkeypatch):
    argv = ["train", str(write_config()), "run.device=cuda", "--sweep", "train.seed=0,1", "--backend", "ray",
            "-q"]
    with monkeypatch.context() as patched:  # a cluster without a GPU: refused in one line
        patched.setattr(ray_cluster, "cluster_resources", lambda: {"CPU": 2.0})
        assert main([*argv, "--out", str(tmp_path / "none")]) == 2
    assert "the Ray cluster has none" in capsys.readouterr().err
    out = tmp_path / "gpu"
    assert main([*argv, "--out", str(out)]) == 1  # the driver checks no device: the worker does
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "1 of 1 chunks failed" in err and "device 'cuda' is not available" in err
    assert (out / "train.seed=0" / "config.yaml").is_file()
    assert not (out / "train.seed=0" / "eval.json").exists()


def test_spread_covers_the_workers_and_keeps_shapes_whole():
    pytest.importorskip("ray")
    from iclreg.train import resolve
    from iclreg.train.ray_backend import spread

    cpu, gpu = resolve(CONFIG), resolve({**CONFIG, "run": {**CONFIG["run"], "device": "cuda"}})

    def chunk(config, size, tag):
        return [config] * size, [Path(f"{tag}{i}") for i in range(size)]

    sizes = lambda chunks: [len(c) for c, _ in chunks]  # noqa: E731
    assert sizes(spread([chunk(cpu, 8, "a")], {False: 2, True: 0})) == [4, 4]
    assert sizes(spread([chunk(cpu, 5, "a")], {False: 2, True: 0})) == [3, 2]
    assert sizes(spread([chunk(cpu, 2, "a")], {False: 16, True: 0})) == [1, 1]
    assert sizes(spread([chunk(cpu, 4, "a"), chunk(cpu, 4, "b")], {False: 2, True: 0})) == [4, 4]
    assert sizes(spread([chunk(cpu, 4, "a"), chunk(gpu, 4, "b")], {False: 4, True: 1})) == [1, 1, 1, 1, 4]
    parts = spread([chunk(cpu, 5, "a")], {False: 2, True: 0})
    assert [d for _, dirs in parts for d in dirs] == [Path(f"a{i}") for i in range(5)]


def test_a_member_step_is_read_from_the_tail_of_its_metrics(tmp_path):
    pytest.importorskip("ray")
    from iclreg.train.ray_backend import member_step

    assert member_step(tmp_path) == 0  # nothing logged yet
    lines = [json.dumps({"step": s, "loss": 0.5}) for s in range(1, 2001)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 20')  # a line being written
    assert member_step(tmp_path) == 2000


def test_one_shape_is_split_over_the_workers_bit_for_bit(ray_cluster, reference, tmp_path, capsys):
    config, local = reference
    out = tmp_path / "ray"
    argv = ["train", str(config), "model.heads=2", "--sweep", "train.seed=0,1", "--out", str(out),
            "--backend", "ray"]
    assert main(argv) == 0
    assert "2 runs in 2 Ray tasks of at most 1 member" in capsys.readouterr().err  # 2 CPUs
    for seed in (0, 1):
        assert_same_member(out / f"train.seed={seed}", local / f"train.seed={seed},model.heads=2")


def ray_processes(root: int) -> dict[int, str]:
    """pid -> command line of every process below ``root`` whose command line names Ray's
    (``ray::...``: a worker, idle or running a task), from /proc."""
    parents, lines = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":  # a zombie is gone, but for its parent's wait
                parents[int(entry.name)] = int(fields[1])
    below = {root}
    for _ in range(8):  # the tree is a few levels deep
        below |= {pid for pid, parent in parents.items() if parent in below}
    return {pid: lines[pid] for pid in below - {root} if pid in parents and "ray::" in lines[pid]}


def test_a_killed_worker_s_chunk_is_sent_again_and_resumes(ray_cluster, reference, tmp_path, capsys):
    config, local = reference
    killed = []

    def kill_the_first_task():
        end = time.monotonic() + 60
        while not killed and time.monotonic() < end:
            for pid, line in ray_processes(os.getpid()).items():
                if "ray::_ray_task" in line:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_task, daemon=True)
    killer.start()
    out = tmp_path / "ray"
    argv = ["train", str(config), "model.heads=2", "--sweep", "train.seed=0", "--out", str(out),
            "--backend", "ray"]
    assert main(argv) == 0
    killer.join()
    assert killed
    assert "sending it again, from their checkpoints (try 2 of 2)" in capsys.readouterr().err
    assert_same_member(out / "train.seed=0", local / "train.seed=0,model.heads=2")


def alive(processes: dict[int, str]) -> list[int]:
    """Those of ``processes`` (pid -> command line) still running (a zombie is not)."""
    out = []
    for pid, line in processes.items():
        try:
            same = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() == line
                    and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")
        except OSError:
            continue
        if same:
            out.append(pid)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "joined"), [(signal.SIGTERM, False), (signal.SIGHUP, False),
                                               (signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGTERM-joined-cluster"])
def test_stopping_the_driver_stops_its_tasks(signum, joined, request, tmp_path):
    """SIGTERM to a driver whose tasks train: on a Ray it started, or on a cluster it joined (this
    process's, whose workers outlive a driver unless it cancels its tasks)."""
    pytest.importorskip("ray")
    root, address = None, []
    if joined:
        root = os.getpid()
        address = ["--address", request.getfixturevalue("ray_cluster").get_runtime_context().gcs_address]
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 10**6},
                                      "run": {**CONFIG["run"], "checkpoint_every": 10**5}}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # as this process trains
    argv = ["train", str(config), "--sweep", "train.seed=0,1", "--out", str(tmp_path / "out"),
            "--backend", "ray", *address]
    with (tmp_path / "log").open("w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "iclreg", *argv], stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
    try:
        end, tasks = time.monotonic() + 120, {}
        while not tasks and driver.poll() is None and time.monotonic() < end:
            time.sleep(0.5)
            tasks = {p: c for p, c in ray_processes(root or driver.pid).items() if "ray::_ray_task" in c}
        assert tasks, (tmp_path / "log").read_text()[-2000:]
        workers = tasks if joined else ray_processes(driver.pid)  # a Ray it started: every worker
        driver.send_signal(signum)
        stopped = time.monotonic()
        driver.wait(timeout=15)
        while alive(workers) and time.monotonic() - stopped < 15:
            time.sleep(0.2)
        assert not alive(workers), workers
    finally:
        if driver.poll() is None:
            driver.kill()


def test_progress_follows_the_steps_the_running_members_logged(tmp_path):
    pytest.importorskip("ray")
    from iclreg.train import resolve
    from iclreg.train.ray_backend import _Tasks

    sent = []
    task = types.SimpleNamespace(options=lambda **_: types.SimpleNamespace(
        remote=lambda *args: sent.append(args) or len(sent)))
    ray = types.SimpleNamespace(remote=lambda f: task)
    dirs = [tmp_path / "a", tmp_path / "b"]
    tasks = _Tasks(ray, resume=False, tries=2, members=2)
    tasks.send(([resolve(CONFIG)] * 2, dirs), False, 1)
    assert tasks.shown() == 0
    for d, step in zip(dirs, (15, 5), strict=True):
        d.mkdir()
        lines = [json.dumps({"step": s}) + "\n" for s in range(5, step + 1, 5)]
        (d / "metrics.jsonl").write_text("".join(lines))
    assert tasks.shown() == 20  # read from the members' files while their task runs
