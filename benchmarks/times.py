"""How long the README's commands take, measured, with the machine and its load: one script writes
``benchmarks/results/times.json``, and the README's table of times is generated from it
(``--table``; tests/test_times.py checks that the two agree).

The cheap commands are run here, one after the other, each timed from the shell's point of view
(``.venv/bin/iclreg ...`` in a fresh process, imports included). The reproductions are not rerun:
their times are the ones their committed quick reports recorded (``Mode: quick (N s)`` in
``docs/demo/<paper>/report.md``, written by ``iclreg demo`` or a rerun of one reproduction).
The load average before and after each command is recorded: on a machine busy with other jobs
the times are upper bounds, and the output says so.

    .venv/bin/python benchmarks/times.py            # measure, write times.json, print the table
    .venv/bin/python benchmarks/times.py --table    # print the table of the saved times.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "times.json"
ICLREG = str(ROOT / ".venv" / "bin" / "iclreg")
COMMANDS = {  # the README's cheap commands, as written there
    "iclreg --help": ["--help"],
    "iclreg compare --task gaussian:d=20,n=41": ["compare", "--task", "gaussian:d=20,n=41", "-q"],
    "iclreg train configs/cot.yaml": ["train", "configs/cot.yaml", "--out", "{tmp}/cot", "-q"],
    "iclreg test-time --task gaussian:d=10,n=20,noise_std=0.3 --decoder gd:lr=0.01 --steps 50 "
    "--noise multiplicative:std=1 --technique mean --samples 1,4,16,64": [
        "test-time", "--task", "gaussian:d=10,n=20,noise_std=0.3", "--decoder", "gd:lr=0.01", "--steps", "50",
        "--noise", "multiplicative:std=1", "--technique", "mean", "--samples", "1,4,16,64", "-q"],
}
DEMO = ROOT / "docs" / "demo"


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.platform()}


def measure() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in COMMANDS.items():
            load = os.getloadavg()[0]
            start = time.perf_counter()
            subprocess.run([ICLREG, *(a.format(tmp=tmp) for a in argv)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            rows.append({"command": name, "seconds": round(seconds, 1), "load_before": round(load, 2),
                         "load_after": round(os.getloadavg()[0], 2),
                         "source": "measured by benchmarks/times.py"})
            print(f"{seconds:7.1f} s  {name}", file=sys.stderr)
    return rows


def demo_times() -> list[dict]:
    rows = []
    for report in sorted(DEMO.glob("*/report.md")):
        found = re.search(r"Mode: \*\*quick\*\* \((\d+) s\)", report.read_text())
        if found:
            name = report.parent.name
            rows.append({"command": f"iclreg reproduce {name} --quick", "seconds": int(found.group(1)),
                         "source": f"recorded in docs/demo/{name}/report.md"})
    return rows


def table(data: dict) -> str:
    """The README's table of times (Markdown)."""
    m = data["machine"]
    loaded = data["loaded"]
    state = (f"**loaded** (load average {data['load']:.1f} on {m['cores']} cores: other jobs were running, "
             "so these are upper bounds)" if loaded else "idle")
    lines = [f"Measured on {m['cores']} cores ({m['cpu']}), {data['date']}; the machine was {state}. "
             "Reproductions: not rerun here; the times their committed quick reports in docs/demo recorded "
             f"(the same 2-core machine, {data.get('demo', 'shared with other jobs')}).", "",
             "| command | time | source |", "|---|---:|---|"]
    for row in data["commands"] + data["reproductions"]:
        s = row["seconds"]
        shown = f"{s:.1f} s" if s < 60 else f"{s / 60:.1f} min"
        lines.append(f"| `{row['command']}` | {shown} | {row['source']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="print the table of the saved times.json")
    parser.add_argument("--demo-idle", action="store_true",
                        help="the committed demo ran with no other job on the machine (say so)")
    args = parser.parse_args()
    if not args.table:
        commands = measure()
        load = max(r["load_before"] for r in commands)
        data = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "load": load,
                "loaded": load > 0.5, "commands": commands, "reproductions": demo_times(),
                "demo": "no other job running" if args.demo_idle else "shared with other jobs"}
        if data["loaded"]:
            print(f"note: the machine is loaded (load average {load:.1f} on {os.cpu_count()} cores): "
                  "these times are upper bounds", file=sys.stderr)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    print(table(json.loads(RESULTS.read_text())))


if __name__ == "__main__":
    main()
