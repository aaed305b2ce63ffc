"""The tables of docs/score.md, taken from an ``iclreg demo`` output directory: ``iclreg score`` of
the five reproductions' quick-mode models, one command per model, each timed.

    .venv/bin/iclreg demo --out DIR
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/score_table.py DIR [--json FILE] [--figures DIR]
    .venv/bin/python benchmarks/score_table.py --rows FILE      # rewrite the tables from saved rows

Every model is scored by ``iclreg score TARGET --json`` (the default suite, the default
``--samples``, ``--seed 0``) in a fresh process that inherits this one's environment, so the same
``OMP_NUM_THREADS``; its wall clock, imports included, is the table's time. The tables replace
what lies between the marker comments ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` of
docs/score.md (``score-table``: the fraction of the zero-to-Bayes gap closed, with the date, the
machine, the thread count and the load average at the start; ``icl-table``: the ICL regression
score of arXiv 2411.03945; ``excess-table``: the excess risk); the text outside them is kept as
it is. ``--json FILE`` writes the raw rows (every model's ``--json`` object and its time);
``--figures DIR`` writes each model's ``--plot`` figure, drawn from the same result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "score.md"
VENV_ICLREG = ROOT / ".venv" / "bin" / "iclreg"
LARGE = 1e4  # numbers this large print as 2.4e+27, not in full
Row = Mapping[str, Any]  # one model: its label, setting, time and per-capability scores


@dataclass(frozen=True)
class Entry:
    """One model of the table: its label, its target under the demo directory, its figure's name."""

    label: str
    target: str
    figure: str | None


MODELS = (
    Entry("He et al. (demystified), H = 2", "demystified/runs/H2", "demystified"),
    Entry("Fu et al. (newton), GPT-2", "newton/runs/gpt2", "newton"),
    Entry("Fu et al. (newton), LSTM", "newton/runs/lstm", "newton-lstm"),
    Entry("Boursier & Boyer (softmax-limit), L = 30", "softmax-limit/runs/L30_softmax", "softmax-limit"),
    Entry("Cui et al. (multihead), H = 2", "multihead/runs/base_d5_D40_H2", "multihead"),
    Entry("Chen et al. (test-time), CoT", "test-time/runs/cot-avg", None),  # diverges: nothing to plot
)


class TableError(Exception):
    """A one-line reason the tables cannot be made or placed."""


# --- the pure part: rows -> Markdown, and the block between the markers ----------------------------
def _g(value: float | None, digits: int) -> str:
    return "not finite" if value is None else f"{value:.{digits}g}"


def cell(row: Mapping[str, Any], key: str, fmt: str) -> str:
    """``value [low, high]`` of ``row[key]`` and ``row[key + '_ci95']`` (``fmt``: ``.2f``, ``.3g``);
    "n/a" where the capability does not apply; a diverging row (a number that is not finite)
    shows its value and "(diverges)"; numbers of :data:`LARGE` or more print with two digits."""
    if not row["applicable"]:
        return "n/a"
    value = row[key]
    if row.get("diverges"):
        return f"{_g(value, 2)} (diverges)"
    low, high = row[f"{key}_ci95"]
    if max(abs(value), abs(low), abs(high)) >= LARGE:  # finite but far off scale: two digits
        fmt = ".2g"
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _number(value: float) -> str:
    return f"{value:.3g}"


def model_label(row: Mapping[str, Any]) -> str:
    seeds = row["members"]
    return f"{row['model']}, {seeds} seeds" if seeds >= 2 else row["model"]


def capabilities(rows: Sequence[Row]) -> list[str]:
    """The capabilities every row was scored on, in the suite's order."""
    if not rows:
        raise TableError("no rows to tabulate")
    names = list(rows[0]["scores"])
    for row in rows[1:]:
        if list(row["scores"]) != names:
            raise TableError(f"'{row['model']}' was scored on other capabilities than '{rows[0]['model']}'")
    return names


def _table(rows: Sequence[Row], head: list[str], first: Callable[[Row], list[str]], key: str,
           fmt: str) -> str:
    names = capabilities(rows)
    lines = ["| " + " | ".join([*head, *names]) + " |", "|" + "---|" * (len(head) + len(names))]
    for row in rows:
        cells = [*first(row), *(cell(row["scores"][c], key, fmt) for c in names)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def score_table(rows: Sequence[Row]) -> str:
    """The main table: model, trained at (d, n, tau, sigma), prompts, time (s), then the fraction
    of the zero-to-Bayes gap closed on every capability."""
    def first(row: Mapping[str, Any]) -> list[str]:
        b = row["base"]
        trained = f"{b['d']}, {b['n']}, {_number(b['w_std'])}, {_number(b['noise_std'])}"
        return [model_label(row), trained, str(row["samples"]), f"{row['seconds']:.0f}"]

    return _table(rows, ["model", "trained at (d, n, tau, sigma)", "prompts", "time (s)"], first,
                  "normalised", ".2f")


def icl_table(rows: Sequence[Row]) -> str:
    """The ICL regression score of arXiv 2411.03945 (least squares as its baseline)."""
    return _table(rows, ["model"], lambda row: [model_label(row)], "icl_regression_score", ".2f")


def excess_table(rows: Sequence[Row]) -> str:
    """The excess risk over the reference (mean over the n predictions)."""
    return _table(rows, ["model"], lambda row: [model_label(row)], "excess", ".3g")


def conditions(meta: Mapping[str, Any]) -> str:
    """The one line under the main table: suite, date, machine, threads, load at the start."""
    threads = meta["threads"]
    threads = (f"`OMP_NUM_THREADS={threads}`" if threads is not None
               else "`OMP_NUM_THREADS` unset (PyTorch's default: one thread per core)")
    busy = "; other jobs were running, so the times are upper bounds" if meta["load"] >= 1 else ""
    return (f"Suite {meta['suite']}, seed 0; taken {meta['date']} by `benchmarks/score_table.py` on a "
            f"{meta['cores']}-core CPU ({meta['cpu']}), {threads}, 1-minute load average "
            f"{meta['load']:.2f} at the start{busy}.")


NAMES = ("score-table", "icl-table", "excess-table")


def blocks(data: Mapping[str, Any]) -> dict[str, str]:
    """Marker name -> the Markdown that goes between its markers."""
    rows = data["rows"]
    bodies = (score_table(rows) + "\n\n" + conditions(data["meta"]), icl_table(rows), excess_table(rows))
    return dict(zip(NAMES, bodies, strict=True))


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the lines between the marker lines ``<!-- NAME:start -->`` and
    ``<!-- NAME:end -->`` replaced by ``body`` (without a final newline); every byte outside them
    is kept. A missing, repeated, misordered or not-whole-line marker is a :class:`TableError`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    lines = text.splitlines(keepends=True)
    at = {}
    for marker in (start, end):
        found = [k for k, line in enumerate(lines) if line.rstrip("\r\n") == marker]
        if len(found) != 1:
            raise TableError(f"the document has no marker line '{marker}'" if not found
                             else f"the document has the marker line '{marker}' {len(found)} times, "
                                  "expected once")
        at[marker] = found[0]
    if at[end] < at[start]:
        raise TableError(f"the marker '{end}' comes before '{start}'")
    inner = body + "\n" if body else ""
    return "".join(lines[:at[start] + 1]) + inner + "".join(lines[at[end]:])


def render(text: str, data: Mapping[str, Any]) -> str:
    """``text`` (docs/score.md) with every table block replaced."""
    for name, body in blocks(data).items():
        text = replace_block(text, name, body)
    return text


# --- the measurement ---------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def iclreg() -> list[str]:
    return [str(VENV_ICLREG)] if VENV_ICLREG.is_file() else [sys.executable, "-m", "iclreg"]


def row_of(entry: Entry, result: Mapping[str, Any], seconds: float, load: float) -> dict[str, Any]:
    """A model's row: its seed mean where the target holds two or more seeds, else its one model."""
    means = result.get("seed_means", {})
    if means:
        if len(means) != 1:
            raise TableError(f"'{entry.target}' holds several seed groups: {', '.join(means)}")
        scores = next(iter(means.values()))
        members = max(r.get("members", 0) for r in scores.values())
    elif len(result["results"]) == 1:
        scores, members = next(iter(result["results"].values())), 1
    else:
        raise TableError(f"'{entry.target}' holds several models that are not seeds of one: "
                         f"{', '.join(result['results'])}")
    return {"model": entry.label, "target": entry.target, "members": members, "samples": result["samples"],
            "suite": result["suite"], "base": result["base"], "seconds": round(seconds, 1),
            "load_before": round(load, 2), "scores": scores, "result": result}


def measure(demo: Path) -> dict[str, Any]:
    missing = [e.target for e in MODELS if not (demo / e.target).is_dir()]
    if missing:
        raise TableError(f"'{demo}' is not an 'iclreg demo --out' directory: it lacks {', '.join(missing)}")
    meta = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "cpu": cpu_name(),
            "threads": os.environ.get("OMP_NUM_THREADS"), "load": round(os.getloadavg()[0], 2)}
    rows = []
    for entry in MODELS:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run([*iclreg(), "score", str(demo / entry.target), "--json", "--seed", "0"],
                              cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise TableError(f"iclreg score {demo / entry.target} failed (exit {done.returncode}): {last}")
        rows.append(row_of(entry, json.loads(done.stdout), seconds, load))
        print(f"{seconds:6.1f} s  {entry.target}", file=sys.stderr)
    suites = {r["suite"] for r in rows}
    if len(suites) != 1:
        raise TableError(f"the models were scored on different suites: {', '.join(sorted(suites))}")
    meta["suite"] = suites.pop()
    return {"meta": meta, "rows": rows}


def figures(data: Mapping[str, Any], out: Path) -> None:
    """Each model's ``iclreg score --plot`` figure, drawn from its saved result."""
    sys.path.insert(0, str(ROOT / "src"))
    from iclreg.analysis.score_report import score_figure
    from iclreg.report import save_figure

    out.mkdir(parents=True, exist_ok=True)
    names = {e.target: e.figure for e in MODELS}
    for row in data["rows"]:
        if names.get(row["target"]):
            save_figure(score_figure(row["result"], row["target"]), out / f"{names[row['target']]}.png")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", nargs="?", type=Path, help="the output directory of 'iclreg demo --out DIR'")
    parser.add_argument("--rows", type=Path, help="tabulate the raw rows of an earlier --json instead")
    parser.add_argument("--json", type=Path, help="write the raw rows (JSON)")
    parser.add_argument("--figures", type=Path, help="write each model's score figure (PNG) into this folder")
    parser.add_argument("--doc", type=Path, default=DOC,
                        help="the document to update (default docs/score.md)")
    args = parser.parse_args(argv)
    if (args.demo is None) == (args.rows is None):
        parser.error("give a demo directory or --rows FILE")
    try:
        text = args.doc.read_bytes().decode("utf-8")  # bytes: no newline translation
        for name in NAMES:  # before the measurement: a document without its markers fails at once
            replace_block(text, name, "")
        data = json.loads(args.rows.read_text()) if args.rows else measure(args.demo)
        if args.json:  # before the document, so that a measurement is never lost
            args.json.write_text(json.dumps(data, indent=1) + "\n")
        updated = render(text, data)
    except (TableError, OSError, ValueError) as err:  # ValueError: undecodable text or JSON
        print(f"score_table: {err}", file=sys.stderr)
        return 1
    if args.figures:
        figures(data, args.figures)
    args.doc.write_bytes(updated.encode("utf-8"))
    print(blocks(data)["score-table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
