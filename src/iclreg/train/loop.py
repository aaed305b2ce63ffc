"""The training loop: fresh prompts every step, checkpoints, resume, evaluation.

Prompts are a pure function of (seed, step) and sampled on the training device; the model
is initialised from the seed without touching global RNG; checkpoints hold everything the
optimiser and scheduler carry. So a run killed and resumed from its last checkpoint ends with
the same weights and metrics, bit for bit on the CPU, as a run that was never interrupted.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..analysis.compare import error_curves, noise_floor, resolve_device
from ..errors import TrainingError, check
from ..estimators import build as build_estimator
from ..report import error_curves_figure, save_figure, write_text
from ..report.figures import loss_figure
from ..tasks import TASKS, Task
from .checkpoint import checkpoint_dirs, load_checkpoint, save_checkpoint
from .config import ExperimentConfig, save_config
from .graph import GraphedStep
from .metrics import MetricsLog, read_metrics
from .optim import build_optimizer, build_scheduler
from .run import DTYPES, build_model, read_run_config

log = logging.getLogger(__name__)
EVAL_SEED_OFFSET = 1_000_003  # evaluation prompts never coincide with training prompts


def prompt_loss(pred: Tensor, y: Tensor, kind: str) -> Tensor:
    """Mean squared error over every prefix (``all``) or at the last position (``query``)."""
    err = (pred - y).square()
    return (err[:, -1] if kind == "query" else err).mean()


def evaluate(model: torch.nn.Module, config: ExperimentConfig, task: Task, n: int | None = None,
             samples: int | None = None, estimators: tuple[str, ...] | None = None,
             device: str = "cpu") -> dict[str, Any]:
    """Error against k for the model and estimators on held-out prompts (``compare``'s shape)."""
    specs = config.eval.estimators if estimators is None else estimators
    dtype = DTYPES[config.run.dtype]
    amp = (torch.autocast(torch.device(device).type, torch.bfloat16)
           if config.run.amp == "bf16" else nullcontext())

    def predict(x: Tensor, y: Tensor) -> Tensor:
        with amp:
            return model(x, y).to(y.dtype)

    predictors = {"model": predict, **{s: build_estimator(s, task=task) for s in specs}}
    was_training = model.training
    model.eval()
    n = n or config.eval.n or task.n
    results = error_curves(task, predictors, samples or config.eval.samples,
                           config.train.seed + EVAL_SEED_OFFSET, n=n, device=device, dtype=dtype)
    model.train(was_training)
    return {"task": task.describe(), "samples": samples or config.eval.samples,
            "seed": config.train.seed + EVAL_SEED_OFFSET, "k": list(range(n)),
            "noise_floor": noise_floor(task), "results": results}


class Trainer:
    """Owns the model, optimiser and run directory of one training run."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, resume: bool) -> None:
        self.config, self.run_dir = config, run_dir
        self.device = resolve_device(config.run.device)
        self.dtype = DTYPES[config.run.dtype]
        self.task = TASKS.build(config.task)
        self.model = build_model(config, self.device)
        self.forward = torch.compile(self.model) if config.run.compile else self.model
        self.optimizer = build_optimizer(config.optimizer, self.model,
                                         capturable=config.run.cuda_graph)
        self._graphed: GraphedStep | None = None
        self.scheduler = build_scheduler(config.schedule, self.optimizer, config.train.steps)
        self.step = 0
        if resume:
            self._restore()
        self.metrics = MetricsLog(run_dir / "metrics.jsonl", self.step if resume else None)
        self.amp = (torch.autocast(self.device.type, torch.bfloat16)
                    if config.run.amp == "bf16" else nullcontext())

    def _restore(self) -> None:
        dirs = checkpoint_dirs(self.run_dir)
        if not dirs:
            log.warning("run %s has no checkpoint yet: starting from step 0", self.run_dir)
            return
        ckpt = load_checkpoint(dirs[-1], self.config.to_dict())
        self.model.load_state_dict(ckpt.weights)
        self.optimizer.load_state_dict(ckpt.state["optimizer"])
        self.scheduler.load_state_dict(ckpt.state["scheduler"])
        self.step = ckpt.step

    def _state(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def _update(self, x: Tensor, y: Tensor) -> Tensor:
        """Forward, backward, clipping and optimiser step on one batch; returns the loss."""
        cfg = self.config
        with self.amp:
            loss = prompt_loss(self.forward(x, y).float(), y.float(), cfg.train.loss)
        self.optimizer.zero_grad(set_to_none=not cfg.run.cuda_graph)
        loss.backward()
        if cfg.optimizer.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optimizer.clip)
        self.optimizer.step()
        return loss.detach()

    def train_step(self, step: int) -> Tensor:
        """One optimiser step on fresh prompts from (seed, step); returns the loss (0-d)."""
        cfg = self.config
        d_active, n = cfg.curriculum.dims(step, self.task.d, self.task.n)
        prompts = self.task.sample(cfg.train.batch, cfg.train.seed, step, n=n, d_active=d_active,
                                   device=self.device, dtype=self.dtype)
        if cfg.run.cuda_graph:
            if self._graphed is None:
                self._graphed = GraphedStep(self._update, self.model, self.optimizer,
                                            prompts.x, prompts.y)
            loss = self._graphed(prompts.x, prompts.y)
        else:
            loss = self._update(prompts.x, prompts.y)
        self.scheduler.step()
        return loss

    def run(self, progress: bool = False) -> None:
        """Train to ``train.steps``, then write the final evaluation and figures."""
        try:
            result = self._loop(progress)
        finally:
            self.metrics.close()
        if result is None:  # resumed a finished run
            result = evaluate(self.model, self.config, self.task, device=str(self.device))
        self._figures(result)

    def _loop(self, progress: bool) -> dict[str, Any] | None:
        cfg = self.config
        total = cfg.train.steps
        last_good = checkpoint_dirs(self.run_dir)
        bar = tqdm(total=total, initial=self.step, desc="train", unit="step",
                   disable=not progress, dynamic_ncols=True)
        losses: list[Tensor] = []
        result = None
        start = time.perf_counter()
        while self.step < total:
            losses.append(self.train_step(self.step))
            self.step += 1
            done = self.step == total
            if self.step % cfg.run.log_every == 0 or done or self.step % cfg.run.checkpoint_every == 0:
                mean = torch.stack(losses).float().mean().item()
                if not math.isfinite(mean):
                    good = checkpoint_dirs(self.run_dir) or last_good
                    where = (f"the last good checkpoint is {good[-1].name}" if good
                             else "no checkpoint was written")
                    raise TrainingError(
                        f"loss became {mean} before step {self.step}; stopped ({where}); "
                        "lower optimizer.lr or set optimizer.clip"
                    )
                losses.clear()
                lr = self.optimizer.param_groups[0]["lr"]
                self.metrics.write({"step": self.step, "loss": mean, "lr": lr,
                                    "seconds": round(time.perf_counter() - start, 3)})
                bar.set_postfix(loss=f"{mean:.4g}")
            if (cfg.eval.every and self.step % cfg.eval.every == 0) or done:
                result = evaluate(self.model, cfg, self.task, device=str(self.device))
                self.metrics.write({"step": self.step, "eval": {
                    name: curve["mse"] for name, curve in result["results"].items()}})
            if self.step % cfg.run.checkpoint_every == 0 or done:
                save_checkpoint(self.run_dir, self.step, self.model, self._state(), cfg.run.keep)
            bar.update(1)
        bar.close()
        return result

    def _figures(self, result: dict[str, Any]) -> None:
        write_text(self.run_dir / "eval.json", json.dumps(result))
        save_figure(error_curves_figure(result["k"], result["results"], result["noise_floor"],
                                        f"{self.config.model} on {self.config.task}"),
                    self.run_dir / "eval.png")
        records = [r for r in read_metrics(self.run_dir / "metrics.jsonl") if "loss" in r]
        save_figure(loss_figure([r["step"] for r in records], [r["loss"] for r in records]),
                    self.run_dir / "loss.png")


def prepare_run_dir(run_dir: Path, config: ExperimentConfig) -> None:
    """Create a new run directory holding the resolved config; refuse to reuse a run."""
    check(
        not (run_dir / "config.yaml").exists(),
        f"'{run_dir}' already holds a run; resume it with --resume {run_dir} or choose another --out",
    )
    check(not run_dir.is_file(), f"'{run_dir}' is a file; choose a directory for --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", save_config(config))


def train(config: ExperimentConfig, run_dir: str | Path, progress: bool = False) -> Path:
    """Train a new run of ``config`` in ``run_dir``."""
    run_dir = Path(run_dir)
    resolve_device(config.run.device)
    prepare_run_dir(run_dir, config)
    Trainer(config, run_dir, resume=False).run(progress)
    return run_dir


def resume(run_dir: str | Path, progress: bool = False) -> Path:
    """Continue a run from its latest checkpoint with its stored config."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    Trainer(config, run_dir, resume=True).run(progress)
    return run_dir
