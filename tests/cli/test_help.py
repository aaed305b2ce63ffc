"""Every subcommand's --help: a one-sentence description, the default of every option that has
one, and two examples in the epilog that parse."""

from __future__ import annotations

import argparse
import shlex

import pytest

from iclreg.cli import build_parser, parse_args

PARSER = build_parser(["reproduce"])
COMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_description_and_defaults(name):
    p = COMMANDS[name]
    assert p.description and p.description.count(". ") == 0 and p.description.endswith("."), name
    for action in p._actions:
        if action.help in (None, argparse.SUPPRESS) or not action.option_strings:
            continue
        if action.default not in (None, False, argparse.SUPPRESS):
            flag = action.option_strings[0]
            assert "default" in action.help, f"{name} {flag}: default {action.default!r} unstated"
    assert "default" in p.format_help()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_two_examples_that_parse(name):
    p = COMMANDS[name]
    assert p.epilog and p.epilog.startswith("examples:")
    examples = [line.strip() for line in p.epilog.splitlines()[1:] if line.strip()]
    assert len(examples) == 2, examples
    for line in examples:
        argv = shlex.split(line)
        assert argv[:2] == ["iclreg", name]
        args = parse_args(build_parser(argv[1:]), argv[1:])
        assert args.command == name
    shown = p.format_help()
    assert all(e in shown for e in examples), "an example is broken across lines in --help"


def test_the_options_named_in_the_issue_state_their_defaults():
    helps = {(c, s): a.help for c, p in COMMANDS.items() for a in p._actions for s in a.option_strings}
    for key, default in {("compare", "--dtype"): "float64", ("test-time", "--technique"): "mean",
                         ("probe", "--probe-samples"): "2048", ("demo", "--samples"): "20000",
                         ("eval", "--estimator"): "eval.estimators"}.items():
        assert "default" in helps[key] and default in helps[key], key
