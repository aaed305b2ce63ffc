"""The handlers of the ``iclreg`` commands: each takes the parsed arguments, calls the library
and prints the result (``cli.py`` parses and dispatches to them).

Library modules are imported inside each handler, so that ``iclreg --help`` and a command
load only what they use.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .device import DTYPES
from .errors import UsageError
from .logs import heartbeat

log = logging.getLogger(__name__)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress on stderr (``logs.Progress``), but not with --quiet or --json."""
    return not args.quiet and not getattr(args, "json", False)


# Garg et al.'s baselines (arXiv 2208.01066: least squares, averaging, 3-NN) and the Bayes
# posterior mean under the task's prior (the optimum on Gaussian tasks).
COMPARE_ESTIMATORS = ("ols", "bayes", "averaging", "knn:k=3")


def cmd_compare(args: argparse.Namespace) -> int:
    from .analysis import compare
    from .estimators import build as build_estimator
    from .report import error_curves_figure, save_figure, text_table
    from .report.files import check_writable_file, writing_output
    from .tasks import build as build_task

    plot = check_writable_file(args.plot) if args.plot else None
    task = build_task(args.task)
    specs = args.estimator or list(COMPARE_ESTIMATORS)
    if len(set(specs)) != len(specs):
        raise UsageError("an --estimator SPEC is given twice; give each one once")
    estimators = {spec: build_estimator(spec, task=task) for spec in specs}
    log.debug("task %s: %s; estimators: %s; %s on %s", args.task, task, ", ".join(specs), args.dtype,
              args.device)
    with heartbeat(f"compare: {len(specs)} estimators on {args.samples} prompts", log):
        result = compare(task, estimators, args.samples, args.seed, device=args.device,
                         dtype=DTYPES[args.dtype], progress=show_progress(args))
    if plot:
        fig = error_curves_figure(result["k"], result["results"], result["noise_floor"], args.task)
        with writing_output(plot):
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


def cmd_train(args: argparse.Namespace) -> int:
    from .train import load_config, resume, train
    from .train.backends import Backend
    from .train.distributed import check_one_run
    from .train.extend import nothing_to_do, resume_steps
    from .train.rundir import config_sweeps, is_sweep
    from .train.sweep import resume_sweep, run_sweep

    progress = show_progress(args)
    backend = Backend(args.backend, args.address, args.retries)
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .report import error_curves_figure, save_figure, text_table
    from .report.files import check_writable_file, writing_output
    from .tasks import build as build_task
    from .train import evaluate, load_run

    plot = check_writable_file(args.plot) if args.plot else None
    if args.estimator and len(set(args.estimator)) != len(args.estimator):
        raise UsageError("an --estimator SPEC is given twice; give each one once")
    model, config = load_run(args.run_dir, device=args.device)
    log.debug("%s: model %s, task %s, trained %d steps", args.run_dir, config.model, config.task,
              config.train.steps)
    with heartbeat(f"eval: {args.run_dir}", log):
        result = evaluate(model, config, build_task(config.task), n=args.n, samples=args.samples,
                          estimators=tuple(args.estimator) if args.estimator else None,
                          device=args.device)
    if plot:
        figure = error_curves_figure(result["k"], result["results"], result["noise_floor"],
                                     str(args.run_dir), train_n=result.get("train_n"))
        with writing_output(plot):
            save_figure(figure, plot)
    if args.json:
        print(json.dumps(result))
    else:
        trained = "" if result["train_n"] == len(result["k"]) else f" (trained on n = {result['train_n']})"
        print(f"{args.run_dir}: mean squared error over {result['samples']} prompts of n = "
              f"{len(result['k'])} pairs{trained}")
        print(text_table(result["k"], result["results"]))
        if plot:
            print(f"figure written to {plot}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .analysis.probe import probe_model
    from .models.gpt2 import GPT2Regressor
    from .report import save_figure
    from .report.figures import probe_figures
    from .report.files import check_writable_file, writing_output
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
            with writing_output(target := plot.with_name(plot.stem + suffix + plot.suffix)):
                save_figure(fig, target)
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


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .device import resolve_device
    from .experiments import runner
    from .train.backends import Backend, as_backend

    backend = as_backend(Backend(args.backend, args.address, args.retries))
    result = runner.reproduce(args.paper, args.out, "quick" if args.quick else "full",
                              str(resolve_device(args.device)), args.runs,
                              progress=show_progress(args), backend=backend, embed=args.self_contained)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        held = sum(c.holds for c in result.claims)
        out = args.out or runner.default_out(args.paper, result.mode)
        print(f"{held} of {len(result.claims)} claims hold; report written to {Path(out) / 'report.md'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from .experiments import REPRODUCTIONS, runner
    from .report.files import check_output_dir
    from .resources import MAX_SAMPLES

    if not 2 <= args.samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must lie in [2, {MAX_SAMPLES:,}], got {args.samples:,}")
    check_output_dir(args.out)
    tour = dataclasses.replace(REPRODUCTIONS.get(runner.FIRST).modes["quick"], samples=args.samples)
    out = runner.demo(args.out, sizes={runner.FIRST: tour}, progress=show_progress(args),
                      embed=args.self_contained)
    print(f"demo written to {out / 'index.html'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .experiments import runner

    results = runner.redraw(args.out, embed=args.self_contained)
    held = sum(c.holds for r in results for c in r.claims)
    total = sum(len(r.claims) for r in results)
    print(f"{len(results)} report{'' if len(results) == 1 else 's'} redrawn in {args.out} from the saved "
          f"measurements; {held} of {total} claims hold")
    return 0


TEST_TIME_LABELS = {"mse": "mean squared error of the query prediction",
                    "recovery": "exact-support recovery rate"}


def cmd_test_time(args: argparse.Namespace) -> int:
    from .report import save_figure
    from .report.figures import lines_figure
    from .report.files import check_writable_file, writing_output
    from .testtime.run import run_test_time

    plot = check_writable_file(args.plot) if args.plot else None
    with heartbeat(f"test-time: N = {args.samples} chains of T = {args.steps} steps on {args.prompts} "
                   "prompts", log):  # progress: over the decoded tokens (not with --json or --quiet)
        result = run_test_time(args.task, args.decoder, args.noise, args.technique, args.steps,
                               args.samples, args.prompts, args.seed, args.device, run=args.run,
                               progress=show_progress(args))
    metric, (label, curve) = result["metric"], next(iter(result["results"].items()))
    if plot:
        figure = lines_figure({label: (result["N"], curve[metric])},
                              "samples $N$ (chains of thought per prompt)", TEST_TIME_LABELS[metric],
                              f"{args.task}, {args.noise}, $T$ = {args.steps}", logx=True,
                              bands={label: curve["ci95"]})
        with writing_output(plot):
            save_figure(figure, plot)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{label} over {args.prompts} prompts, T = {args.steps}: {metric} (95% interval) against N "
          "and the decoded tokens N x T")
    print(f"{'N':>8}  {'tokens':>10}  {metric}  [95% interval]")
    for n, tokens, value, (low, high) in zip(result["N"], result["compute"], curve[metric], curve["ci95"],
                                             strict=True):
        print(f"{n:8d}  {tokens:10d}  {value:.5g}  [{low:.5g}, {high:.5g}]")
    if plot:
        print(f"figure written to {plot}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .analysis.score_report import score_figure, score_text
    from .analysis.score_suite import load_suite
    from .report import save_figure
    from .report.files import check_writable_file, writing_output
    from .score_targets import check_targets, load_target, score_targets
    from .tasks.base import check_seed

    plot = check_writable_file(args.plot) if args.plot else None
    check_targets(args.targets)
    check_seed(args.seed, "--seed")
    suite = load_suite(args.suite)
    result = score_targets([load_target(t) for t in args.targets], suite, args.samples, args.seed)
    if plot:
        with writing_output(plot):
            save_figure(score_figure(result, " vs ".join(args.targets)), plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(score_text(result))
        if plot:
            print(f"figure written to {plot}")
    return 0
