"""The ``iclreg`` command line: parse, dispatch, and turn bad input into one-line errors.

Every handler lives in the library; this module only parses arguments and calls it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .device import DTYPES
from .errors import TrainingError, UsageError, WriteError
from .logs import add_log_options, setup_logging
from .pipes import discard_stdout, stdout_closed


class _Formatter(argparse.HelpFormatter):
    """argparse's help, without breaking a name such as ``softmax-limit`` at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, no usage dump) and unbroken names in help."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


# Garg et al.'s baselines (arXiv 2208.01066: least squares, averaging, 3-NN) and the Bayes
# posterior mean under the task's prior (the optimum on Gaussian tasks).
COMPARE_ESTIMATORS = ("ols", "bayes", "averaging", "knn:k=3")


def _cmd_compare(args: argparse.Namespace) -> int:
    from .analysis import compare
    from .estimators import build as build_estimator
    from .report import error_curves_figure, save_figure, text_table
    from .report.files import check_writable_file
    from .tasks import build as build_task

    plot = check_writable_file(args.plot) if args.plot else None
    task = build_task(args.task)
    specs = args.estimator or list(COMPARE_ESTIMATORS)
    if len(set(specs)) != len(specs):
        raise UsageError("an --estimator SPEC is given twice; give each one once")
    estimators = {spec: build_estimator(spec, task=task) for spec in specs}
    result = compare(
        task, estimators, args.samples, args.seed, device=args.device,
        dtype=DTYPES[args.dtype], progress=_progress(args),
    )
    if plot:
        fig = error_curves_figure(result["k"], result["results"], result["noise_floor"], args.task)
        save_figure(fig, plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"task {args.task}: mean squared error over {args.samples} prompts")
        if not args.estimator:
            print(f"estimators: {', '.join(specs)} (default; choose with --estimator)")
        print(text_table(result["k"], result["results"]))
        if plot:
            print(f"figure written to {plot}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import load_config, resume, train
    from .train.backends import Backend
    from .train.distributed import check_one_run
    from .train.extend import nothing_to_do, resume_steps
    from .train.sweep import config_sweeps, is_sweep, resume_sweep, run_sweep

    progress = _progress(args)
    backend = Backend(args.backend, args.address)
    if args.max_members is not None and args.max_members < 1:
        raise UsageError(f"--max-members must be at least 1, got {args.max_members}")
    # torchrun (DDP) trains one model; with --resume, CONFIG's place holds train.steps=N
    check_one_run(args.sweep, args.resume, None if args.resume else args.config)
    if args.resume:
        steps = resume_steps([*([args.config] if args.config else []), *args.overrides], args.sweep)
        if message := nothing_to_do(args.resume, steps):
            print(message)
            return 0
        if is_sweep(args.resume):
            run_dir = resume_sweep(args.resume, progress, args.max_members, backend, steps=steps)
        else:
            backend.check_single_run()
            run_dir = resume(args.resume, progress=progress, steps=steps)
    else:
        if not args.config:
            raise UsageError("give a CONFIG file (YAML or TOML), or --resume RUN_DIR")
        overrides = list(args.overrides)
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise UsageError(f"'{bad[0]}' is not a key=value override")
        out = args.out or f"runs/{Path(args.config).stem}"
        if args.sweep or config_sweeps(args.config):
            run_dir = run_sweep(args.config, overrides, args.sweep, out, progress, args.max_members, backend)
        else:
            backend.check_single_run()
            run_dir = train(load_config(args.config, overrides), out, progress=progress)
    print(f"run written to {run_dir}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .report import error_curves_figure, save_figure, text_table
    from .report.files import check_writable_file
    from .tasks import build as build_task
    from .train import evaluate, load_run

    plot = check_writable_file(args.plot) if args.plot else None
    if args.estimator and len(set(args.estimator)) != len(args.estimator):
        raise UsageError("an --estimator SPEC is given twice; give each one once")
    model, config = load_run(args.run_dir, device=args.device)
    result = evaluate(model, config, build_task(config.task), n=args.n, samples=args.samples,
                      estimators=tuple(args.estimator) if args.estimator else None,
                      device=args.device)
    if plot:
        save_figure(error_curves_figure(result["k"], result["results"], result["noise_floor"],
                                        str(args.run_dir), train_n=result.get("train_n")), plot)
    if args.json:
        print(json.dumps(result))
    else:
        trained = "" if result["train_n"] == len(result["k"]) else f" (trained on n = {result['train_n']})"
        print(f"{args.run_dir}: mean squared error over {result['samples']} prompts of n = "
              f"{len(result['k'])} pairs{trained}")
        print(text_table(result["k"], result["results"]))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from .analysis.probe import probe_model
    from .models.gpt2 import GPT2Regressor
    from .report import save_figure
    from .report.figures import probe_figures
    from .report.files import check_writable_file
    from .tasks import build as build_task
    from .train import load_run
    from .train.preflight import check_probe

    plot = check_writable_file(args.plot) if args.plot else None
    model, config = load_run(args.run_dir, device=args.device)
    if not isinstance(model, GPT2Regressor):
        raise UsageError(f"probe needs a gpt2 model; '{args.run_dir}' trained {config.model}")
    check_probe(config, args.samples, args.probe_samples, args.device)
    result = probe_model(model, build_task(config.task), args.samples, args.probe_samples,
                         device=args.device, ln_f=args.ln_f)
    if plot:
        for suffix, fig in probe_figures(result).items():
            save_figure(fig, plot.with_name(plot.stem + suffix + plot.suffix))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.run_dir}: per-layer probes on {args.samples} prompts")
        print(" layer  MSE at k=n-1  best Newton step  best GD step")
        for i in result["layers"]:
            print(f"{i:6d}  {result['probe_mse'][i][-1]:12.4g}  {result['newton']['best'][i]:16d}"
                  f"  {result['gd']['best'][i]:12d}")
        print(f"zero-predictor similarity to Newton-1 (the floor): {result['floor']:.3f}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .device import resolve_device
    from .experiments import runner
    from .train.backends import Backend, as_backend

    backend = as_backend(Backend(args.backend, args.address))
    result = runner.reproduce(args.paper, args.out, "quick" if args.quick else "full",
                              str(resolve_device(args.device)), args.runs,
                              progress=_progress(args), backend=backend)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        held = sum(c.holds for c in result.claims)
        out = args.out or runner.default_out(args.paper, result.mode)
        print(f"{held} of {len(result.claims)} claims hold; report written to {Path(out) / 'report.md'}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from .experiments import REPRODUCTIONS, runner
    from .report.files import check_output_dir
    from .resources import MAX_SAMPLES

    if not 2 <= args.samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must lie in [2, {MAX_SAMPLES:,}], got {args.samples:,}")
    check_output_dir(args.out)
    tour = dataclasses.replace(REPRODUCTIONS.get(runner.FIRST).modes["quick"], samples=args.samples)
    out = runner.demo(args.out, sizes={runner.FIRST: tour}, progress=_progress(args))
    print(f"demo written to {out / 'index.html'}")
    return 0


def _cmd_test_time(args: argparse.Namespace) -> int:
    from .report import save_figure
    from .report.figures import lines_figure
    from .report.files import check_writable_file
    from .testtime.run import run_test_time

    plot = check_writable_file(args.plot) if args.plot else None
    result = run_test_time(args.task, args.decoder, args.noise, args.technique, args.steps, args.samples,
                           args.prompts, args.seed, args.device, run=args.run)
    metric, (label, curve) = result["metric"], next(iter(result["results"].items()))
    if plot:
        save_figure(lines_figure({label: (result["N"], curve[metric])}, "samples N", metric,
                                 f"{args.task}, {args.noise}, T = {args.steps}", logx=True), plot)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{label} over {args.prompts} prompts, T = {args.steps}: {metric} (95% interval) against N "
          "and the decoded tokens N x T")
    for n, tokens, value, (low, high) in zip(result["N"], result["compute"], curve[metric], curve["ci95"],
                                             strict=True):
        print(f"{n:8d}  {tokens:10d}  {value:.5g}  [{low:.5g}, {high:.5g}]")
    if plot:
        print(f"figure written to {plot}")
    return 0


def _add_compare_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="error vs number of examples for estimators on a task")
    p.add_argument("--task", required=True, help="task SPEC, e.g. gaussian:d=20,n=41")
    p.add_argument(
        "--estimator", action="append", metavar="SPEC",
        help="estimator SPEC (repeatable), e.g. ols, ridge:lam=0.1, gd:steps=100,lr=0.01 (default: "
             f"{', '.join(COMPARE_ESTIMATORS)}: least squares, the Bayes posterior mean under the "
             "task's prior, averaging and 3-nearest neighbours)",
    )
    p.add_argument("--samples", type=int, default=1280, help="number of prompts (default 1280)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="FILE", help="write a figure (.png, .pdf or .svg)")
    p.set_defaults(handler=_cmd_compare)


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
    p.set_defaults(handler=_cmd_test_time)


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
                        "task per ensemble chunk; pip install 'iclreg[ray]')")
    p.add_argument("--address", help="the Ray cluster (default RAY_ADDRESS, else a local Ray for the run)")


def _add_reproduction_commands(sub: argparse._SubParsersAction, argv: Sequence[str] | None) -> None:
    """``reproduce`` (its help lists the registry of reproductions) and ``demo``."""
    p = sub.add_parser("reproduce", help="reproduce a paper's results: claims, figures, report")
    p.add_argument("paper", help=_papers(argv))
    p.add_argument("--quick", action="store_true", help="CPU-sized run of a few minutes")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", help="output directory (default runs/PAPER[-quick])")
    p.add_argument("--json", action="store_true", help="print the claims as one JSON object")
    p.add_argument("--runs", metavar="DIR",
                   help="keep the training runs in DIR: run again with the same DIR and a "
                        "reproduction stopped part way reuses the finished runs and continues the "
                        "others from their last checkpoints")
    _add_backend_options(p)
    p.set_defaults(handler=_cmd_reproduce)

    p = sub.add_parser("demo", help="the estimator tour and every reproduction in quick mode "
                       "(runs/demo/index.html)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--samples", type=int, default=20000, help="prompts per comparison")
    p.set_defaults(handler=_cmd_demo)


def _progress(args: argparse.Namespace) -> bool:
    """Progress on stderr (``logs.Progress``), but not with --quiet or --json."""
    return not args.quiet and not getattr(args, "json", False)


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
    p.add_argument("--max-members", type=int, help="at most this many ensemble members at once")
    _add_backend_options(p)
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("eval", help="error vs number of examples of a trained run")
    p.add_argument("run_dir", help="a run directory written by 'iclreg train'")
    p.add_argument("--estimator", action="append", metavar="SPEC", help="baseline SPEC (repeatable)")
    p.add_argument("--n", type=int, help="prompt length (beyond training: length generalisation)")
    p.add_argument("--samples", type=int, help="number of prompts (default: the config's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object (compare's shape)")
    p.add_argument("--plot", metavar="FILE", help="write a figure (.png, .pdf or .svg)")
    p.set_defaults(handler=_cmd_eval)

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
    p.set_defaults(handler=_cmd_probe)

    _add_test_time_command(sub)
    _add_reproduction_commands(sub, argv)
    add_log_options(parser, list(sub.choices.values()))
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
