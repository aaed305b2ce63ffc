"""What each ``iclreg`` subcommand's ``--help`` says beyond its options: a one-line description
and two examples (the epilog), and the default of every option that has one.

``cli.py`` builds the parsers; :func:`document` adds these texts to them, so that the options and
their help stay where they are parsed. tests/cli/test_help.py checks every subcommand: a
description, every default stated, and two examples that parse.
"""

from __future__ import annotations

import argparse

# name -> (one-line description, two examples); an example is a command line as typed
COMMANDS: dict[str, tuple[str, tuple[str, str]]] = {
    "compare": (
        "Mean squared error against the number of in-context examples k for classical estimators on "
        "one task, with 95% intervals (Monte Carlo over --samples prompts).",
        ("iclreg compare --task gaussian:d=20,n=41 --plot curve.png",
         "iclreg compare --task gaussian:d=8,n=32,noise_std=0.5 --estimator ols --estimator ridge:lam=0.5 "
         "--json")),
    "train": (
        "Train a model from a config file into a resumable run directory (or a sweep of them).",
        ("iclreg train configs/tiny_garg.yaml --out runs/garg train.steps=500",
         "iclreg train configs/tiny_he.yaml --sweep train.seed=0,1,2 --out runs/he-seeds")),
    "eval": (
        "Error against k of a trained run beside classical baselines, on held-out prompts (longer "
        "prompts with --n: length generalisation).",
        ("iclreg eval runs/garg --plot eval.png",
         "iclreg eval runs/garg --n 21 --estimator ols --estimator ridge:lam=0.1 --json")),
    "probe": (
        "Per-layer least-squares read-outs of a GPT-2 run and each layer's similarity to Newton-Schulz "
        "and GD steps (Fu et al., arXiv 2310.17086).",
        ("iclreg probe runs/garg --plot probe.png",
         "iclreg probe runs/garg --samples 640 --ln-f every --json")),
    "test-time": (
        "Decode N chains of thought per prompt, combine them (mean, vote, best-of-N) and report the "
        "error or recovery rate against N (Chen et al., arXiv 2508.07571).",
        ("iclreg test-time --task gaussian:d=10,n=20,noise_std=0.3 --decoder gd:lr=0.01 --steps 50 "
         "--noise multiplicative:std=1 --samples 1,4,16,64 --plot tt.png",
         "iclreg test-time --task binary01:d=10,n=15,k=3,noise_std=0.01 --decoder gd:lr=0.066,mean=true "
         "--steps 20 --noise support:k=3,temperature=1 --technique vote --samples 1,4,16")),
    "score": (
        "Excess risk over the Bayes-optimal predictor, capability by capability, of a run, a sweep or "
        "a checkpoint (two targets: compared).",
        ("iclreg score runs/garg --plot score.png",
         "iclreg score runs/garg runs/garg-long --samples 256 --json")),
    "reproduce": (
        "Reproduce one paper's results: train its runs, check every claim against the published "
        "value and write report.md, report.html and claims.json.",
        ("iclreg reproduce newton --quick --out runs/newton",
         "iclreg reproduce demystified --runs full-runs/demystified --self-contained")),
    "demo": (
        "The estimator tour and every reproduction in quick mode on the CPU, all on one page "
        "(OUT/index.html).",
        ("iclreg demo", "iclreg demo --out runs/demo-mail --self-contained")),
    "report": (
        "Draw a reproduction's report again (figures, report.md, report.html, claims.json) from the "
        "measurements it saved, without training or measuring anything.",
        ("iclreg report runs/newton-quick", "iclreg report runs/demo --self-contained")),
}


def _states_default(action: argparse.Action) -> bool:
    """Whether ``action`` has a default a user needs told: not a flag's False, not None."""
    return (action.help not in (None, argparse.SUPPRESS) and action.default not in (None, False)
            and action.default is not argparse.SUPPRESS and not action.option_strings == [])


def document(commands: dict[str, argparse.ArgumentParser]) -> None:
    """Give each subcommand parser its description, its examples and, in the help of every option
    with a default that does not say it yet, ``(default X)``."""
    for name, parser in commands.items():
        description, examples = COMMANDS[name]
        parser.description = description
        parser.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
        for action in parser._actions:
            if _states_default(action) and "default" not in str(action.help):
                action.help = f"{action.help} (default {action.default})"
