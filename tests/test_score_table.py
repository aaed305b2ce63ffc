"""benchmarks/score_table.py's pure part: score rows -> the Markdown tables of docs/score.md, and the
replacement of the blocks between their marker comments (no training, no scoring)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def st():
    spec = importlib.util.spec_from_file_location("score_table", ROOT / "benchmarks" / "score_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["score_table"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["score_table"]


def _row(value, low, high, *, icl=0.5, excess=0.25, diverges=False):
    return {"applicable": True, "normalised": value, "normalised_ci95": [low, high], "diverges": diverges,
            "icl_regression_score": icl, "icl_regression_score_ci95": [icl - 0.1, icl + 0.1],
            "excess": excess, "excess_ci95": [excess / 2, excess * 2]}


DIVERGES = {"applicable": True, "diverges": True, "normalised": None, "normalised_ci95": [None, None],
            "icl_regression_score": None, "icl_regression_score_ci95": [None, None],
            "excess": None, "excess_ci95": [None, None]}
NA = {"applicable": False, "reason": "the model's positions end at 13"}


def _rows():
    return [
        {"model": "He et al. (demystified), H = 2", "members": 4, "samples": 512, "seconds": 17.44,
         "base": {"d": 5, "n": 41, "w_std": 0.4472135954999579, "noise_std": 0.31622776601683794},
         "scores": {"isotropic": _row(0.514, 0.2, 0.823), "long-2x": _row(-0.29, -1.134, 0.555)}},
        {"model": "Fu et al. (newton), GPT-2", "members": 1, "samples": 64, "seconds": 25.6,
         "base": {"d": 4, "n": 13, "w_std": 1.0, "noise_std": 0.0},
         "scores": {"isotropic": _row(0.97, 0.965, 0.975, excess=0.0938), "long-2x": NA}},
        {"model": "Chen et al. (test-time), CoT", "members": 1, "samples": 512, "seconds": 18.0,
         "base": {"d": 10, "n": 15, "w_std": 1.0, "noise_std": 0.31622776601683794},
         "scores": {"isotropic": _row(-2.394e27, -6.07e27, 1.28e27, icl=3.4e27, excess=1.5e28),
                    "long-2x": DIVERGES}},
    ]


META = {"date": "2026-12-06", "cores": 2, "cpu": "AMD EPYC", "threads": "1", "load": 4.75,
        "suite": "standard-v2"}


def test_score_table_rows_to_markdown(st):
    assert st.score_table(_rows()).splitlines() == [
        "| model | trained at (d, n, tau, sigma) | prompts | time (s) | isotropic | long-2x |",
        "|---|---|---|---|---|---|",
        "| He et al. (demystified), H = 2, 4 seeds | 5, 41, 0.447, 0.316 | 512 | 17 | 0.51 [0.20, 0.82] "
        "| -0.29 [-1.13, 0.56] |",
        "| Fu et al. (newton), GPT-2 | 4, 13, 1, 0 | 64 | 26 | 0.97 [0.96, 0.97] | n/a |",
        "| Chen et al. (test-time), CoT | 10, 15, 1, 0.316 | 512 | 18 | -2.4e+27 [-6.1e+27, 1.3e+27] "
        "| not finite (diverges) |",
    ]


def test_icl_and_excess_tables_read_their_own_numbers(st):
    icl = st.icl_table(_rows()).splitlines()
    assert icl[0] == "| model | isotropic | long-2x |"
    assert icl[3] == "| Fu et al. (newton), GPT-2 | 0.50 [0.40, 0.60] | n/a |"
    excess = st.excess_table(_rows()).splitlines()
    assert excess[3] == "| Fu et al. (newton), GPT-2 | 0.0938 [0.0469, 0.188] | n/a |"
    assert excess[4] == "| Chen et al. (test-time), CoT | 1.5e+28 [7.5e+27, 3e+28] | not finite (diverges) |"


def test_conditions_line_states_date_machine_threads_and_load(st):
    line = st.conditions(META)
    for part in ("standard-v2", "2026-12-06", "2-core CPU (AMD EPYC)", "`OMP_NUM_THREADS=1`", "4.75",
                 "upper bounds"):
        assert part in line
    assert "\n" not in line
    idle = st.conditions({**META, "threads": None, "load": 0.2})
    assert "unset" in idle and "upper bounds" not in idle


def test_rows_scored_on_different_capabilities_are_refused(st):
    rows = _rows()
    del rows[1]["scores"]["long-2x"]
    with pytest.raises(st.TableError, match="other capabilities"):
        st.score_table(rows)
    with pytest.raises(st.TableError, match="no rows"):
        st.score_table([])


DOC = ("# Title  \r\nprose with trailing spaces   \n\u00e9 unicode, a tab\t.\n\n"
       "<!-- score-table:start -->\nold table\nold line\n<!-- score-table:end -->\n"
       "between\n<!-- icl-table:start -->\n<!-- icl-table:end -->\n"
       "<!-- excess-table:start -->\nx\n<!-- excess-table:end -->\nend without a newline")


def test_replace_block_keeps_everything_outside_the_markers(st):
    out = st.replace_block(DOC, "score-table", "| new |\n\nline")
    head, tail = DOC.split("old table\nold line\n")
    assert out == head + "| new |\n\nline\n" + tail
    assert out.encode().startswith(head.encode()) and out.encode().endswith(tail.encode())
    assert st.replace_block(out, "score-table", "old table\nold line") == DOC  # back, byte for byte
    assert st.replace_block(DOC, "icl-table", "filled").count("<!-- icl-table:start -->\nfilled\n") == 1
    emptied = DOC.replace("x\n<!-- excess-table:end", "<!-- excess-table:end")
    assert st.replace_block(DOC, "excess-table", "") == emptied


def test_replace_block_refuses_a_missing_repeated_or_misordered_marker(st):
    with pytest.raises(st.TableError, match=r"no marker line '<!-- score-table:end -->'"):
        st.replace_block(DOC.replace("<!-- score-table:end -->\n", ""), "score-table", "t")
    with pytest.raises(st.TableError, match=r"no marker line '<!-- other:start -->'"):
        st.replace_block(DOC, "other", "t")
    with pytest.raises(st.TableError, match="2 times"):
        st.replace_block(DOC + "\n<!-- icl-table:start -->\n", "icl-table", "t")
    swapped = "<!-- icl-table:end -->\nx\n<!-- icl-table:start -->\n"
    with pytest.raises(st.TableError, match="comes before"):
        st.replace_block(swapped, "icl-table", "t")
    with pytest.raises(st.TableError, match="no marker line"):  # a marker inside a line is no marker
        st.replace_block("a <!-- icl-table:start -->\n<!-- icl-table:end -->\n", "icl-table", "t")


def test_render_fills_every_block_and_main_tabulates_saved_rows(st, tmp_path):
    data = {"meta": META, "rows": _rows()}
    out = st.render(DOC, data)
    assert "old table" not in out and "| model | trained at" in out and "load average 4.75" in out
    assert out.startswith(DOC.split("<!-- score-table:start -->")[0])
    assert out.endswith("\n<!-- excess-table:end -->\nend without a newline")
    rows, doc = tmp_path / "rows.json", tmp_path / "score.md"
    rows.write_text(json.dumps(data))
    doc.write_bytes(DOC.encode())
    assert st.main(["--rows", str(rows), "--doc", str(doc)]) == 0
    assert doc.read_bytes() == out.encode()
    broken = DOC.replace("<!-- excess-table:end -->\n", "")
    doc.write_bytes(broken.encode())
    assert st.main(["--rows", str(rows), "--doc", str(doc)]) == 1  # a clear error, the document untouched
    assert doc.read_bytes() == broken.encode()


def test_row_of_takes_the_seed_mean_or_the_one_model(st):
    entry = st.MODELS[0]
    seeds = {"samples": 512, "suite": "standard-v2", "base": {}, "results": {"seed0": {}, "seed1": {}},
             "seed_means": {"all (mean of seeds)": {"isotropic": {"applicable": True, "members": 2}}}}
    row = st.row_of(entry, seeds, 17.04, 4.2)
    assert row["members"] == 2 and row["scores"] == seeds["seed_means"]["all (mean of seeds)"]
    assert row["seconds"] == 17.0 and row["result"] is seeds
    one = {"samples": 512, "suite": "standard-v2", "base": {}, "results": {"gpt2": {"isotropic": NA}}}
    assert st.row_of(entry, one, 1.0, 0.0)["members"] == 1
    with pytest.raises(st.TableError, match="not seeds"):
        st.row_of(entry, {**one, "results": {"a": {}, "b": {}}}, 1.0, 0.0)
