"""The one GPU check: everything GPU-bound, in one run of a few minutes, into one JSON.

Runs, each as its own subprocess under a time limit (a hung or failed part is recorded and the
others still run):

1. the GPU tests, ``pytest -q -m gpu`` (passed / failed / skipped counts);
2. ``benchmarks/train_step.py`` at batch 64 and 1024 with each engine option (eager, bf16,
   compile, CUDA graph, and all three together) against the Hugging Face reference: ratio, MFU;
3. ``benchmarks/ensemble.py`` for E in {1, 16, 64, 256, 1024}: aggregate model-steps/s against
   one eager model, peak memory per member;
4. a slice of each reproduction's full mode, ``iclreg reproduce PAPER --device cuda --runs
   OUT/full-runs``, stopped at its share of the time left: the next run continues from the
   checkpoints in ``--runs`` (a stopped slice is recorded as ``timeout``, not as a failure).

Writes ``OUT/gpu.json`` and ``OUT/gpu.txt`` (the summary, with the issue's targets: >= 10x the
reference at batch 64, >= 35% MFU at batch 1024, >= 500x aggregate at E = 256). ``--dry`` runs
the same pipeline on the CPU at toy sizes (GPU-only options recorded as skipped, with the
reason) so that the script is exercised by the tests on machines without a GPU.

    python benchmarks/gpu.py [--dry] [--out runs/gpu] [--budget 520] [--papers newton ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEEDS_CUDA = "skipped: needs CUDA (dry mode on the CPU)"
ENGINES = {  # name -> (train_step.py flags, runs on the CPU in dry mode)
    "eager": ([], True),
    "bf16": (["--amp", "bf16"], False),
    "compile": (["--compile"], False),
    "cuda_graph": (["--cuda-graph"], False),
    "bf16+compile+cuda_graph": (["--amp", "bf16", "--compile", "--cuda-graph"], False),
}
TARGETS = (  # (key, what, bound)
    ("ratio_b64", "train step vs the HF reference at batch 64 (best engine)", 10.0),
    ("mfu_b1024", "MFU at batch 1024 (best engine)", 0.35),
    ("ensemble_e256", "ensemble aggregate model-steps/s vs one eager model at E = 256", 500.0),
)


@dataclass(frozen=True)
class Sizes:
    """What one mode runs; ``gpu`` is the issue's plan, ``dry`` a toy on the CPU."""

    device: str
    batches: tuple[int, ...]
    train_step: tuple[str, ...]  # extra train_step.py flags
    members: tuple[int, ...]
    ensemble: tuple[str, ...]  # extra ensemble.py flags
    caps: dict  # time limits (s): per subprocess, and "reproductions" kept back for the slices


GPU = Sizes("cuda", (64, 1024), ("--steps", "30"), (1, 16, 64, 256, 1024),
            ("--cuda-graph", "--steps", "200"),
            {"tests": 90, "train_step": 90, "ensemble": 100, "reproductions": 90, "paper_min": 10})
DRY = Sizes("cpu", (4, 8), ("--preset", "tiny", "--d", "5", "--n", "11", "--steps", "1", "--warmup", "0"),
            (1, 2), ("--batch", "8", "--seconds-per-point", "0.05"),
            {"tests": 60, "train_step": 60, "ensemble": 60, "reproductions": 8, "paper_min": 8})


class Clock:
    """The run's time budget: each part gets its cap, less what the later parts need."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.monotonic(), budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def allow(self, cap: float, reserve: float = 0.0) -> float:
        return max(0.0, min(cap, self.left() - reserve))


def run(cmd: list[str], limit: float, cwd: Path | None = None) -> dict:
    """Run ``cmd`` for at most ``limit`` seconds: rc, seconds, timed_out, the output's tail.

    The command runs in its own process group; at the limit the group gets SIGTERM, then
    SIGKILL 10 s later (the reproductions' checkpoints are written atomically)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    return {"cmd": " ".join(cmd), "rc": proc.returncode, "timed_out": timed_out,
            "seconds": round(time.monotonic() - start, 1), "tail": (out or "")[-1500:]}


def outcome(result: dict) -> str:
    return "timeout" if result["timed_out"] else ("ok" if result["rc"] == 0 else "failed")


def gpu_tests(sizes: Sizes, clock: Clock, reserve: float) -> dict:
    """``pytest -q -m gpu``: the counts of its last line."""
    limit = clock.allow(sizes.caps["tests"], reserve)
    if limit < 5:
        return {"status": "skipped", "reason": "skipped: out of the time budget"}
    res = run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"], limit,
              cwd=HERE.parent)
    counts = {k: 0 for k in ("passed", "failed", "skipped", "errors", "deselected")}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", res["tail"]):
        counts["errors" if word.startswith("error") else word] = int(number)
    # pytest exits 1 when a test fails and 5 when none is selected; anything else is a crash
    status = outcome(res) if res["rc"] in (0, 1, 5) or res["timed_out"] else "failed"
    if status == "ok" and (counts["failed"] or counts["errors"]):
        status = "failed"
    return {"status": status, **counts, "run": res}


def train_step_row(sizes: Sizes, batch: int, engine: str, limit: float, dry: bool) -> dict:
    flags, on_cpu = ENGINES[engine]
    row = {"batch": batch, "engine": engine}
    if dry and not on_cpu:
        return {**row, "status": "skipped", "reason": NEEDS_CUDA}
    if limit < 5:
        return {**row, "status": "skipped", "reason": "skipped: out of the time budget"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        res = run([sys.executable, str(HERE / "train_step.py"), "--device", sizes.device,
                   "--batch", str(batch), *sizes.train_step, *flags, "--json", str(out)], limit)
        numbers = json.loads(out.read_text()) if out.exists() else {}
    status = outcome(res) if numbers or res["rc"] != 0 else "failed"
    keys = ("reference_steps_per_s", "engine_steps_per_s", "ratio", "mfu", "peak_flops", "device_name")
    row.update(status=status, **{k: numbers.get(k) for k in keys})
    if numbers and numbers.get("mfu") is None:
        row["mfu_reason"] = "no known peak FLOP/s for this device"
    if status != "ok":
        row.update(reason=f"{status}: see run.tail", run=res)
    return row


def train_steps(sizes: Sizes, clock: Clock, reserve: float, dry: bool) -> list[dict]:
    """Every (batch, engine), the ones the targets need first (eager, then all options together)
    so that a tight budget cuts the single options; rows come back in (batch, engine) order."""
    names = list(ENGINES)
    order = sorted(((b, e) for b in sizes.batches for e in names),
                   key=lambda be: (e_rank(be[1]), be[0]))
    rows = [train_step_row(sizes, b, e, clock.allow(sizes.caps["train_step"], reserve), dry)
            for b, e in order]
    return sorted(rows, key=lambda r: (r["batch"], names.index(r["engine"])))


def e_rank(engine: str) -> int:
    return {"eager": 0, "bf16+compile+cuda_graph": 1}.get(engine, 2)


def ensemble(sizes: Sizes, clock: Clock, reserve: float, dry: bool) -> dict:
    """``ensemble.py`` over the E list; the rows it did not reach are 'not measured'."""
    limit = clock.allow(sizes.caps["ensemble"], reserve)
    graph = "--cuda-graph" in sizes.ensemble
    head = {"cuda_graph": graph, "graph_reason": None if graph else NEEDS_CUDA}
    if limit < 5:
        return {**head, "status": "skipped", "reason": "skipped: out of the time budget",
                "rows": [{"E": e, "status": "skipped", "reason": "skipped: out of the time budget"}
                         for e in sizes.members]}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ensemble.json"
        res = run([sys.executable, str(HERE / "ensemble.py"), "--device", sizes.device, "--members",
                   *map(str, sizes.members), *sizes.ensemble, "--json", str(out)], limit)
        record = json.loads(out.read_text()) if out.exists() else {"rows": []}
    done = {r["E"]: r for r in record.pop("rows")}
    rows = [{**done[e], "status": "ok"} if e in done else
            {"E": e, "status": "not measured", "reason": f"ensemble.py {outcome(res)} before E = {e}"}
            for e in sizes.members]
    return {**head, **record, "status": outcome(res), "rows": rows, "run": res}


def papers() -> list[str]:
    from iclreg.experiments import REPRODUCTIONS

    return list(REPRODUCTIONS.names())


def reproduction(paper: str, out: Path, device: str, limit: float, dry: bool) -> dict:
    """One slice of ``iclreg reproduce PAPER``; a slice stopped at its limit continues next time."""
    dest = out / "reproduce" / paper
    cmd = [sys.executable, "-m", "iclreg", "reproduce", paper, "--device", device,
           "--runs", str(out / "full-runs"), "--out", str(dest), *(["--quick"] if dry else [])]
    res = run(cmd, limit, cwd=HERE.parent)
    row = {"paper": paper, "status": outcome(res), "limit_s": round(limit), "run": res}
    claims = dest / "claims.json"
    if row["status"] == "ok" and claims.exists():
        listed = json.loads(claims.read_text())["claims"]
        row.update(claims=len(listed), held=sum(bool(c["holds"]) for c in listed))
    if row["status"] == "timeout":
        row["reason"] = (f"stopped at its {limit:.0f} s slice (not a failure): run again with the "
                         f"same --out and it continues from {out / 'full-runs'}")
    return row


def reproductions(names: list[str], out: Path, sizes: Sizes, clock: Clock, dry: bool) -> list[dict]:
    """Each paper gets an equal share of the time left (the papers after it keep theirs);
    the dry mode runs the first paper's ``--quick`` slice only."""
    rows = []
    for i, paper in enumerate(names):
        if dry and i > 0:
            rows.append({"paper": paper, "status": "skipped", "reason": "skipped: dry mode runs one "
                         "reproduction slice (a --quick reproduction trains for minutes on the CPU)"})
            continue
        # 10 s of each share are for the SIGTERM grace period of run()
        share = sizes.caps["paper_min"] if dry else (clock.left() - 5) / (len(names) - i) - 10
        limit = clock.allow(share)
        if limit < sizes.caps["paper_min"] and not dry:
            rows.append({"paper": paper, "status": "skipped", "reason": "skipped: out of the time budget"})
            continue
        rows.append(reproduction(paper, out, sizes.device, limit, dry))
    return rows


def targets(rows: list[dict], ens: dict) -> list[dict]:
    """The issue's three targets against the best measured value (or 'not measured')."""
    def best(batch: int, key: str) -> tuple[float | None, str | None]:
        got = [(r[key], r["engine"]) for r in rows if r["batch"] == batch and r.get(key) is not None]
        return max(got) if got else (None, None)

    e256 = next((r for r in ens["rows"] if r["E"] == 256 and r.get("ratio") is not None), None)
    measured = {"ratio_b64": best(64, "ratio"), "mfu_b1024": best(1024, "mfu"),
                "ensemble_e256": (e256["ratio"], "cuda_graph" if ens["cuda_graph"] else "eager")
                if e256 else (None, None)}
    out = []
    for key, what, bound in TARGETS:
        value, how = measured[key]
        verdict = "not measured" if value is None else ("met" if value >= bound else "not met")
        out.append({"target": key, "what": what, "at_least": bound, "measured": value, "by": how,
                    "verdict": verdict})
    return out


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def summary(report: dict) -> str:
    t = report["gpu_tests"]
    lines = [f"iclreg GPU check ({report['mode']}, {report['device']}), {report['seconds']:.0f} s "
             f"of a {report['budget_s']:.0f} s budget",
             f"gpu tests: {t['status']}: {t.get('passed', 0)} passed, {t.get('failed', 0)} failed, "
             f"{t.get('skipped', 0)} skipped", "", "train step vs HF reference "
             "(batch, engine, ref steps/s, ours steps/s, ratio, MFU):"]
    for r in report["train_step"]:
        mfu = None if r.get("mfu") is None else 100 * r["mfu"]
        lines.append(f"  {r['batch']:5d} {r['engine']:24s} " + (
            f"{fmt(r['reference_steps_per_s'], '9.2f')} {fmt(r['engine_steps_per_s'], '9.2f')} "
            f"{fmt(r['ratio'], '7.2f')}x {fmt(mfu, '5.1f')}%" if r["status"] == "ok"
            else r.get("reason", r["status"])))
    ens = report["ensemble"]
    lines += ["", f"ensemble (cuda_graph={ens['cuda_graph']}; one eager model alone: "
              f"{fmt(ens.get('single_steps_per_s'), '.1f')} steps/s) E, model-steps/s, ratio, MiB/member:"]
    for r in ens["rows"]:
        lines.append(f"  {r['E']:5d} " + (
            f"{r['model_steps_per_s']:12.1f} {r['ratio']:8.1f}x {r['bytes_per_member'] / 2**20:9.2f}"
            if r["status"] == "ok" else r.get("reason", r["status"])))
    lines += ["", "reproduction slices:"]
    for r in report["reproductions"]:
        held = f", {r['held']}/{r['claims']} claims hold" if "claims" in r else ""
        timing = f" after {r['run']['seconds']:.0f} s" if "run" in r else ""
        lines.append(f"  {r['paper']:14s} {r['status']}{timing}{held}" +
                     (f" ({r['reason']})" if r["status"] == "skipped" else ""))
    lines += ["", "targets:"]
    for g in report["targets"]:
        by = f" ({g['by']})" if g["by"] else ""
        lines.append(f"  {g['what']}: >= {g['at_least']:g}, measured {fmt(g['measured'], '.3g')}{by}: "
                     f"{g['verdict']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="toy sizes on the CPU (no GPU needed)")
    parser.add_argument("--out", default=os.environ.get("OUT_DIR", "runs/gpu"),
                        help="where gpu.json, gpu.txt and the reproductions go (default $OUT_DIR "
                             "or runs/gpu)")
    parser.add_argument("--budget", type=float, default=520.0, help="seconds for the whole check")
    parser.add_argument("--papers", nargs="+", help="reproductions to slice (default: every one)")
    args = parser.parse_args()
    sizes = DRY if args.dry else GPU
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(args.budget)
    names = args.papers or papers()
    later = sizes.caps["ensemble"] + sizes.caps["reproductions"]  # kept back from the train steps
    report: dict = {"mode": "dry" if args.dry else "gpu", "device": device_name(sizes.device),
                    "budget_s": args.budget, "out": str(out)}
    report["gpu_tests"] = gpu_tests(sizes, clock, later + 2 * sizes.caps["train_step"])
    report["train_step"] = train_steps(sizes, clock, later, args.dry)
    report["ensemble"] = ensemble(sizes, clock, sizes.caps["reproductions"], args.dry)
    report["reproductions"] = reproductions(names, out, sizes, clock, args.dry)
    report["targets"] = targets(report["train_step"], report["ensemble"])
    report["seconds"] = round(args.budget - clock.left(), 1)
    (out / "gpu.json").write_text(json.dumps(report, indent=1))
    text = summary(report)
    (out / "gpu.txt").write_text(text)
    print(text, end="")
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.txt'}")


def device_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    if shutil.which("nvidia-smi") is None:
        return "cuda (no nvidia-smi)"
    res = run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], 30)
    return res["tail"].strip() if res["rc"] == 0 else "cuda (nvidia-smi failed)"


if __name__ == "__main__":
    main()
