"""Tests over the registry of reproductions: every one runs end to end at toy size in both modes,
keeps its runs with --runs, and reports; plus the runner's guarantees (bad input, atomic output).

Whether a paper's claims hold needs its quick sizes: those slow tests live beside each paper's
own tests (tests/experiments/test_<paper>.py).
"""

from __future__ import annotations

import json
import re

import pytest

from iclreg.cli import main
from iclreg.errors import UsageError
from iclreg.experiments import REPRODUCTIONS, runner
from iclreg.train import plan as plan_module

PAPERS = REPRODUCTIONS.names()


def _check_report(out, result) -> None:
    report = (out / "report.md").read_text()
    claims = json.loads((out / "claims.json").read_text())
    assert claims == json.loads(json.dumps(result.to_json()))
    assert report.startswith(f"# {result.title}\n")
    if result.claims:
        assert f"{sum(c.holds for c in result.claims)} of {len(result.claims)} claims hold" in report
    for c in result.claims:
        assert isinstance(c.holds, bool) and c.tolerance and c.statement
        assert (c.reason is None) == c.holds
        assert f"| {c.id} |" in report
        assert c.control and f"_control: {c.control}_" in report  # a listed control, or the marker
    assert not re.search(r"\{'|'\d|\[\(", report), "a Python repr leaked into the report"
    for name in result.figures:
        assert (out / name).stat().st_size > 500 and f"]({name})" in report
    for section in result.sections:
        assert f"## {section.title}" in report


@pytest.mark.parametrize("mode", ["quick", "full"])
@pytest.mark.parametrize("paper", PAPERS)
def test_every_reproduction_runs_at_toy_size(paper, mode, tmp_path, request):
    """The whole pipeline of each mode at toy size: claims computed, report and figures written
    (quick: as ``iclreg demo`` ran it, the session's ``toy_demo``)."""
    kind = REPRODUCTIONS.get(paper)
    if mode == "quick":
        demo, results = request.getfixturevalue("toy_demo")
        out, result = demo / paper, results[paper]
    else:
        out = tmp_path / "out"
        result = runner.reproduce(paper, out, mode=mode, sizes=kind.toy)
    assert result.claims, f"{paper} computed no claim"
    assert result.mode == mode and result.paper == paper
    _check_report(out, result)
    trained = set(kind(mode=mode, sizes=kind.toy).plan(kind.toy))
    for name in trained:
        run = out / "runs" / name
        assert (run / "eval.json").is_file() or (run / "metrics.jsonl").is_file()
    if mode == "quick":
        _check_redraw(out, result)


def _check_redraw(out, result) -> None:
    """``iclreg report OUT`` draws the same report from the saved measurements: tables and PNGs
    byte for byte, after the report files and figures are removed."""
    pdfs = [name.rsplit(".", 1)[0] + ".pdf" for name in result.figures]  # no creation date in them
    kept = ["report.md", "claims.json", "report.html", *result.figures, *pdfs]
    if (out / "results.json").exists():
        kept.append("results.json")
    before = {name: (out / name).read_bytes() for name in kept}
    for name in kept:
        (out / name).unlink()
    assert main(["report", str(out)]) == 0
    for name in kept:
        assert (out / name).read_bytes() == before[name], f"{name} differs when redrawn"


def _interrupt_after_first_run(monkeypatch):
    """train_plan stops (as a time limit would) once the plan's first run has finished."""
    real = plan_module.train_groups

    def first_then_stop(configs, dirs, **kwargs):
        real(configs[:1], dirs[:1], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(plan_module, "train_groups", first_then_stop)


@pytest.mark.parametrize("paper", [p for p in PAPERS
                                   if REPRODUCTIONS.get(p)().plan(REPRODUCTIONS.get(p).toy)])
def test_runs_dir_continues_a_stopped_reproduction(paper, tmp_path, monkeypatch):
    """--runs: a reproduction stopped part way leaves no report; run again, it reuses the finished
    runs, trains the rest bit for bit as an uninterrupted run does, and ends with its claims.

    The claims' floats are compared to 1e-12 relative: the analysis calls LAPACK and BLAS
    kernels, which promise no bits from one call to the next in one process."""
    kind = REPRODUCTIONS.get(paper)
    clean = runner.reproduce(paper, tmp_path / "clean", sizes=kind.toy, runs=str(tmp_path / "whole"))
    runs = tmp_path / "kept"
    with monkeypatch.context() as patch:
        _interrupt_after_first_run(patch)
        with pytest.raises(KeyboardInterrupt):
            runner.reproduce(paper, tmp_path / "out", sizes=kind.toy, runs=str(runs))
    assert not (tmp_path / "out").exists()
    first = next(iter(kind().plan(kind.toy)))
    done = runs / "quick" / first
    stamp = (done / "eval.json").stat().st_mtime_ns, (done / "metrics.jsonl").read_bytes()
    again = runner.reproduce(paper, tmp_path / "out", sizes=kind.toy, runs=str(runs))
    assert ((done / "eval.json").stat().st_mtime_ns, (done / "metrics.jsonl").read_bytes()) == stamp
    trained = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("metrics.jsonl"))
    assert trained == sorted(p.relative_to(runs) for p in runs.rglob("metrics.jsonl")) and trained
    for path in trained:
        assert (runs / path).read_bytes() == (tmp_path / "whole" / path).read_bytes(), path
    _same_to_roundoff(again.to_json(), clean.to_json())
    assert not (tmp_path / "out" / "runs").exists()  # kept outside the report


def _same_to_roundoff(a, b, where="claims"):
    """a == b, except that floats need only agree to 1e-12 relative; names the first difference."""
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-300, nan_ok=True), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), where
        for key in a:
            _same_to_roundoff(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_to_roundoff(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_cli_help_lists_the_registry(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(p in text for p in PAPERS)


def test_unknown_paper_is_a_one_line_error(tmp_path, capsys):
    assert main(["reproduce", "nosuchpaper", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown paper 'nosuchpaper'" in err[0] and "tour" in err[0]
    assert not (tmp_path / "o").exists()


def test_runs_inside_out_is_refused(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["reproduce", "tour", "--quick", "--out", str(out), "--runs", str(out / "r")]) == 2
    assert "inside --out" in capsys.readouterr().err
    assert not out.exists()


def test_a_foreign_output_directory_is_never_replaced(tmp_path, capsys):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["reproduce", "tour", "--quick", "--out", str(precious)]) == 2
    assert "is not an iclreg report directory" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert main(["demo", "--out", str(precious)]) == 2
    assert (precious / "thesis.tex").exists()


def test_sigterm_leaves_no_half_written_report(tmp_path):
    """A reproduction stopped by SIGTERM removes its temporary directory and writes no report."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "iclreg.cli", "reproduce", "tour", "--quick",
                             "--out", str(out)], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and not any(tmp_path.glob(".stopped.*")):
        time.sleep(0.2)
    assert any(tmp_path.glob(".stopped.*")), "the reproduction never started writing"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not out.exists() and not any(tmp_path.glob(".stopped.*"))


@pytest.mark.parametrize("columns", ["60", "80", "123"])
def test_cli_help_never_breaks_a_paper_name(capsys, monkeypatch, columns):
    """argparse wraps at hyphens by default ('softmax-' / 'limit'); the help keeps names whole."""
    monkeypatch.setenv("COLUMNS", columns)
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    words = {w.strip(",") for w in capsys.readouterr().out.split()}
    assert all(p in words for p in PAPERS)


PAPER = "softmax-limit"  # a plan of four tiny runs


def test_a_stopped_reproduction_keeps_its_runs_and_the_same_command_continues_them(tmp_path, monkeypatch,
                                                                                   caplog):
    """Without --runs: a reproduction stopped part way keeps its runs beside --out (.OUT.runs), says
    so in one line, and the same command run again reuses them; on success they move into out/runs."""
    kind = REPRODUCTIONS.get(PAPER)
    clean = runner.reproduce(PAPER, tmp_path / "clean", sizes=kind.toy).to_json()
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _interrupt_after_first_run(patch)
        with pytest.raises(KeyboardInterrupt):
            runner.reproduce(PAPER, out, sizes=kind.toy)
    kept = tmp_path / ".out.runs" / "quick"
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [".out.runs", "clean"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"kept in {kept}: run the same command again" in w and "--runs DIR" in w for w in warnings)
    first = next(iter(kind().plan(kind.toy)))
    stamp = (kept / first / "eval.json").stat().st_mtime_ns
    again = runner.reproduce(PAPER, out, sizes=kind.toy).to_json()
    assert again == clean
    assert (out / "runs" / first / "eval.json").stat().st_mtime_ns == stamp  # reused, not retrained
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "out"]  # nothing left beside it


def test_a_killed_reproduction_s_temporaries_are_removed_by_the_next_run(tmp_path):
    """A reproduction killed (SIGKILL) leaves its temporary output beside --out; the next run of the
    same --out removes it, and leaves a live process's temporary alone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    out = tmp_path / "rep"
    proc = subprocess.Popen([sys.executable, "-m", "iclreg.cli", "reproduce", "tour", "--quick", "--out",
                             str(out), "-q"], cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    deadline = time.time() + 60
    while time.time() < deadline and not any(tmp_path.glob(".rep.tmp-*")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stale = list(tmp_path.glob(".rep.tmp-*"))
    assert len(stale) == 1 and f"-{proc.pid}-" in stale[0].name
    live = stale[0].with_name(stale[0].name.replace(f"-{proc.pid}-", f"-{os.getppid()}-"))
    live.mkdir()  # the temporary of a process still running
    runner.reproduce("tour", out, sizes=REPRODUCTIONS.get("tour").toy)
    assert not stale[0].exists() and live.exists() and (out / "report.md").is_file()


def test_runs_dir_is_checked_as_out_is(tmp_path, capsys):
    """--runs DIR must be absent, empty or a runs directory iclreg wrote (a directory per mode)."""
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["reproduce", PAPER, "--quick", "--out", str(tmp_path / "o"), "--runs", str(precious)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'thesis.tex'" in err[0] and "--runs" in err[0], err
    assert sorted(p.name for p in precious.iterdir()) == ["thesis.tex"] and not (tmp_path / "o").exists()
    (precious / "quick").mkdir()  # a mode's name does not make the rest of it iclreg's
    with pytest.raises(UsageError, match="it holds 'thesis.tex'"):
        runner.check_runs_dir(precious)
    runs = tmp_path / "runs"
    (runs / "quick" / "L10_softmax").mkdir(parents=True)
    (runs / ".lock").write_text("")
    assert runner.check_runs_dir(runs) == runs and runner.check_runs_dir(tmp_path / "new") == tmp_path / "new"


def test_a_full_disk_while_writing_the_report_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import errno
    import os

    import iclreg.experiments.runner as runner_module

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runner_module, "write_report", enospc)
    tour = REPRODUCTIONS.get("tour")
    monkeypatch.setitem(tour.modes, "quick", tour.toy)  # the error path, at toy size
    out = tmp_path / "rep"
    assert main(["reproduce", "tour", "--quick", "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"iclreg: error: cannot write '{out}' (No space left on device); free some space, "
                   "then run the command again"]
    assert list(tmp_path.iterdir()) == []
