"""The ``iclreg`` command line: parse, dispatch, and turn bad input into one-line errors.

The handlers live in ``commands.py``; this module only parses arguments and dispatches to them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence

from . import __version__, cli_help, commands
from .commands import COMPARE_ESTIMATORS  # noqa: F401 (the compare default, public here too)
from .device import DTYPES
from .errors import TrainingError, UsageError, WriteError
from .logs import add_log_options, setup_logging
from .pipes import discard_stdout, stdout_closed


class _Formatter(argparse.HelpFormatter):
    """argparse's help, without breaking a name such as ``softmax-limit`` at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Descriptions reflowed; an epilog of lines (examples) kept line by line."""
        if "\n" in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, no usage dump) and unbroken names in help."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _add_compare_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="error vs number of examples for estimators on a task")
    p.add_argument("--task", required=True, help="task SPEC, e.g. gaussian:d=20,n=41")
    p.add_argument(
        "--estimator", action="append", metavar="SPEC",
        help="estimator SPEC (repeatable), e.g. ols, ridge:lam=0.1, gd:steps=100,lr=0.01 (default: "
             f"{', '.join(commands.COMPARE_ESTIMATORS)}: least squares, the Bayes posterior mean under the "
             "task's prior, averaging and 3-nearest neighbours)",
    )
    p.add_argument("--samples", type=int, default=1280, help="number of prompts (default 1280)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64", help="precision of the prompts "
                   "and estimators")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="FILE", help="write a figure (.png, .pdf or .svg)")
    p.set_defaults(handler=commands.cmd_compare)


def _add_test_time_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test-time", help="sample N chains of thought per prompt and combine them "
                       "(Chen et al., arXiv 2508.07571): error or recovery against N")
    p.add_argument("--task", required=True, help="task SPEC, e.g. gaussian:d=10,n=20,noise_std=0.3 "
                   "or binary01:d=10,n=15,k=3")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--decoder", help="idealised decoder SPEC, e.g. gd:lr=0.01")
    source.add_argument("--run", metavar="RUN_DIR",
                        help="a trained chain-of-thought run (model cot, train.loss chain)")
    p.add_argument("--steps", type=int, required=True, help="decoding steps T")
    p.add_argument("--noise", default="greedy", help="greedy, additive:std=S, multiplicative:std=S "
                   "or support:k=K,temperature=T (default greedy)")
    p.add_argument("--technique", default="mean", help="mean, vote or best:reward=norm2|norm1|residual")
    p.add_argument("--samples", default="1,4,16", help="list of N, e.g. 1,4,16,64 (default 1,4,16)")
    p.add_argument("--prompts", type=int, default=1024, help="number of prompts (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="seed of prompts and decodes (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object (compare's shape, N for k)")
    p.add_argument("--plot", metavar="FILE", help="write a figure (.png, .pdf or .svg)")
    p.set_defaults(handler=commands.cmd_test_time)


def _add_score_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="excess risk over the Bayes-optimal predictor, capability by capability")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="a run directory, a sweep, or a Garg et al. checkpoint (state.pt); two to compare")
    p.add_argument("--suite", default="standard",
                   help="standard (= standard-v2), standard-v1, or a suite file (YAML)")
    p.add_argument("--samples", type=int, help="prompts per capability (default 512, fewer for large "
                   "models: 64 for a 9.5M-parameter GPT-2, so that a score takes about a minute)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object (compare's shape)")
    p.add_argument("--plot", metavar="FILE", help="write a figure (.png, .pdf or .svg)")
    p.set_defaults(handler=commands.cmd_score)


def _papers(argv: Sequence[str] | None) -> str:
    """The help of ``reproduce PAPER``: the registry's names, imported for ``reproduce`` only
    (importing every reproduction costs other commands a second)."""
    argv = sys.argv[1:] if argv is None else argv
    if list(argv[:1]) != ["reproduce"]:
        return "which paper ('iclreg reproduce --help' lists them)"
    from .experiments import REPRODUCTIONS

    return f"which paper: {', '.join(REPRODUCTIONS.names())}"


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="where the ensembles train: local (this process, default) or ray (one Ray "
                        "task per ensemble chunk; .venv/bin/pip install -e '.[ray]')")
    p.add_argument("--address", help="the Ray cluster to join (default RAY_ADDRESS, else a new local Ray "
                                     "started for the run)")
    p.add_argument("--retries", type=int, help="with --backend ray: send a failed task again, resuming "
                                               "from its checkpoints, up to N times (default 1)")


def _add_reproduction_commands(sub: argparse._SubParsersAction, argv: Sequence[str] | None) -> None:
    """``reproduce`` (its help lists the registry of reproductions) and ``demo``."""
    p = sub.add_parser("reproduce", help="reproduce a paper's results: claims, figures, report")
    p.add_argument("paper", help=_papers(argv))
    p.add_argument("--quick", action="store_true", help="CPU-sized run of a few minutes")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", help="output directory (default runs/PAPER[-quick])")
    p.add_argument("--json", action="store_true", help="print the claims as one JSON object")
    p.add_argument("--self-contained", action="store_true", help="report.html holds its figures (one "
                   "file to mail or attach)")
    p.add_argument("--runs", metavar="DIR",
                   help="keep the training runs in DIR: run again with the same DIR and a "
                        "reproduction stopped part way reuses the finished runs and continues the "
                        "others from their last checkpoints")
    _add_backend_options(p)
    p.set_defaults(handler=commands.cmd_reproduce)

    p = sub.add_parser("demo", help="the estimator tour and every reproduction in quick mode "
                       "(runs/demo/index.html)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--samples", type=int, default=20000, help="prompts per comparison of the tour")
    p.add_argument("--self-contained", action="store_true", help="every page holds its figures: "
                   "index.html alone is the whole demo")
    p.set_defaults(handler=commands.cmd_demo)

    p = sub.add_parser("report", help="redraw a reproduction's (or a demo's) report from its saved "
                       "measurements")
    p.add_argument("out", metavar="DIR", help="the output directory of 'iclreg reproduce' or 'iclreg demo'")
    p.add_argument("--self-contained", action="store_true", help="report.html holds its figures (default: "
                   "it links the image files beside it)")
    p.set_defaults(handler=commands.cmd_report)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; ``argv`` only decides whether the reproductions are imported for the help."""
    parser = _Parser(prog="iclreg", description="In-context linear regression: prompts, estimators, "
                     "theory, models, training and paper reproductions.")
    parser.add_argument("--version", action="version", version=f"iclreg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_compare_command(sub)

    p = sub.add_parser("train", help="train a model from a config file (resumable run directory)")
    p.add_argument("config", nargs="?", help="experiment config (.yaml or .toml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optimizer.lr=3e-3")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run or sweep (train.steps=N: extend it)")
    p.add_argument("--sweep", action="append", metavar="KEY=V1,V2",
                   help="train a grid over this key as ensembles (repeatable); values are separated "
                        "by commas, except that a comma followed by key=value continues the SPEC "
                        "before it: task=gaussian:d=5,n=41,gaussian:d=10,n=41 is two tasks")
    p.add_argument("--max-members", type=int, help="at most this many ensemble members at once (one "
                   "Ray task each; default: as many as fit in memory, and with --backend ray split "
                   "so that the tasks cover the cluster's CPUs or GPUs)")
    _add_backend_options(p)
    p.set_defaults(handler=commands.cmd_train)

    p = sub.add_parser("eval", help="error vs number of examples of a trained run")
    p.add_argument("run_dir", help="a run directory written by 'iclreg train'")
    p.add_argument("--estimator", action="append", metavar="SPEC",
                   help="baseline SPEC (repeatable; default: the config's eval.estimators)")
    p.add_argument("--n", type=int, help="prompt length (beyond training: length generalisation)")
    p.add_argument("--samples", type=int, help="number of prompts (default: the config's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object (compare's shape)")
    p.add_argument("--plot", metavar="FILE", help="write a figure (.png, .pdf or .svg)")
    p.set_defaults(handler=commands.cmd_evaluate)

    p = sub.add_parser("probe", help="per-layer probes of a GPT-2 run; similarity to Newton/GD")
    p.add_argument("run_dir", help="a run directory of a gpt2 model")
    p.add_argument("--samples", type=int, default=320, help="evaluation prompts (default 320)")
    p.add_argument("--probe-samples", type=int, default=2048, help="prompts to fit the read-outs")
    p.add_argument("--ln-f", choices=["last", "every", "none"], default="last",
                   help="where the final LayerNorm applies to the probed layers: last (default, Fu et "
                        "al.'s Hugging Face hidden_states), every or none")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE", help="probe figure; FILE_newton and FILE_gd heat maps beside it")
    p.set_defaults(handler=commands.cmd_probe)

    _add_test_time_command(sub)
    _add_score_command(sub)
    _add_reproduction_commands(sub, argv)
    add_log_options(parser, list(sub.choices.values()))
    cli_help.document(sub.choices)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``train``'s key=value overrides may also come after its options
    (``iclreg train CONFIG --out DIR train.steps=5``)."""
    args, extra = parser.parse_known_args(argv)
    if args.quiet and args.verbose:
        parser.error("give --quiet or --verbose, not both")
    if extra and args.command == "train" and not any(e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _one_line(err: Exception) -> str:
    """The message on one line, whatever the user's text in it held (a newline in a SPEC)."""
    return " ".join(str(err).splitlines())


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so half-written outputs are removed on the way out."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    args = parse_args(build_parser(argv), argv)
    restore_logging = setup_logging(-1 if args.quiet else 1 if args.verbose else 0)
    try:
        status = args.handler(args)
        sys.stdout.flush()  # a reader gone shows here, not in the interpreter's last flush
        return status
    except BrokenPipeError:  # the reader left early (iclreg ... | head): quietly, status 0 (pipes.py)
        if not stdout_closed():
            raise
        discard_stdout()
        return 0
    except UsageError as err:
        print(f"iclreg: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"iclreg: training stopped: {err}", file=sys.stderr)
        return 1
    except WriteError as err:
        print(f"iclreg: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("iclreg: interrupted", file=sys.stderr)
        return 130
    finally:
        restore_logging()


if __name__ == "__main__":
    sys.exit(main())
