"""The training loop: fresh prompts every step, checkpoints, resume, divergence.

Prompts are a pure function of (seed, step) and sampled on the training device; the model
is initialised from the seed without touching global RNG; checkpoints hold everything the
optimiser and scheduler carry. So a run killed and resumed from its last checkpoint ends with
the same weights and metrics, bit for bit on the CPU, as a run that was never interrupted.

A trainer is its members' one writer (``lock.py``): it takes their locks, removes what a
killed write left, and resumes each member from that member's latest checkpoint (members of
one loop share it; ``sweep.py`` groups members by it). A member whose loss, weights or
optimiser state turn non-finite is diverged: it is never checkpointed again, so its last
checkpoint is always finite. How one step runs (eager, compiled, a CUDA graph; autocast) is
``step.py``'s; the files of the final evaluation are written by the functions that train for
users (``runs.py``: figures, then ``eval.json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..analysis.evaluate import evaluate
from ..device import DTYPES
from ..errors import TrainingError, UsageError, check
from ..logs import Progress, phase
from ..models import Ensemble, Predictor, StackedPredictor
from ..tasks import TASKS, Task, counter
from .checkpoint import checkpoint_dirs, checkpoint_path, latest_step, load_checkpoint, save_checkpoint
from .config import ExperimentConfig
from .distributed import ALONE, NoMetrics, Processes
from .durable import remove_temporaries
from .environment import Environment, intra_op_threads, resume_in
from .fused.step import FusedStep
from .lock import run_lock
from .member_state import join_lists, join_states, member_lists, member_state
from .metrics import MetricsLog
from .optim import build_optimizer, build_scheduler, set_scheduled_lrs
from .preflight import group_key
from .run import build_model, load_weights
from .sampler import Prefetcher, StreamSampler
from .trackers import open_trackers

log = logging.getLogger(__name__)
Result = dict[str, Any]  # an evaluation: ``analysis.evaluate.evaluate``'s object


class _Solo(nn.Module):
    """A model without an ensemble form, trained alone: (1, B, n, d) -> (1, B, n)."""

    def __init__(self, model: Predictor) -> None:
        super().__init__()
        self.members = nn.ModuleList([model])

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.members[0](x[0], y[0]).unsqueeze(0)


@dataclasses.dataclass
class Member:
    """One model of a training loop and its run directory."""

    config: ExperimentConfig
    run_dir: Path
    task: Task
    model: Predictor
    metrics: MetricsLog | None = None
    diverged_at: int | None = None


class Trainer:
    """Trains E >= 1 members in one loop: one batched forward/backward/optimiser step on E
    independent streams of prompts (members with an ensemble form), or one model alone.

    Each member has its own parameters, optimiser parameter group (its own learning rate and
    state), prompts from its own (seed, step) and run directory; a single run is E = 1. The
    trainer holds its members' writer locks from construction to :meth:`close` (or the end of
    a ``with`` block).

    With a ``group`` (a run launched by torchrun: ``distributed.py``), this process is one
    rank of a DistributedDataParallel run of one model: it trains on its rows of each step's
    global batch, and only rank 0 takes the lock and writes checkpoints, metrics and
    evaluations.
    """

    def __init__(self, configs: Sequence[ExperimentConfig], run_dirs: Sequence[Path],
                 resume: bool, group: Processes = ALONE) -> None:
        check(len(configs) == len(run_dirs) >= 1, "a trainer needs one run directory per member")
        key = group_key(configs[0])
        check(all(group_key(c) == key for c in configs),
              "members of one training loop must share shapes, schedule and run settings")
        check(group.world == 1 or len(configs) == 1, "DDP (torchrun) trains one model: train an ensemble "
                                                   "in one process")
        # what every member shares (group_key: shapes, schedule, run settings), read from the first
        self.shared = cfg = configs[0]
        self.group = group
        self.device = group.device(cfg.run.device)
        self.dtype = DTYPES[cfg.run.dtype]
        self.members = [Member(c, Path(r), TASKS.build(c.task), build_model(c, self.device))
                        for c, r in zip(configs, run_dirs, strict=True)]
        models = [m.model for m in self.members]
        stacked = all(isinstance(m, StackedPredictor) for m in models)
        check(stacked or len(models) == 1,
              f"{type(models[0]).__name__} has no ensemble form: train its members one at a time")
        self.net = Ensemble(models) if stacked else _Solo(models[0])
        self.optimizer = build_optimizer(
            cfg.optimizer, [(m.model.parameters(), m.config.optimizer.lr) for m in self.members],
            capturable=cfg.run.cuda_graph)
        self.scheduler = build_scheduler(cfg.schedule, self.optimizer, cfg.train.steps)
        self.update = group.build_step(cfg, self.net, self.optimizer, self.device,
                                       last_only=stacked and cfg.train.loss == "query")
        self._locks = contextlib.ExitStack()  # locks, and the step's threads (environment.py)
        self.environment = Environment.current(self.device, cfg.run.dtype,
                                               thread_bound=not isinstance(self.update, FusedStep))
        try:
            self._draw = self._sampler()
            for m in self.members if self.writes else []:
                self._locks.enter_context(run_lock(m.run_dir))
                remove_temporaries(m.run_dir)
            group.barrier()  # other ranks read the run once rank 0 has cleaned it
            self.step = self._restore() if resume else 0
            if isinstance(self.update, FusedStep):  # loading replaced the buffers' views
                self.update.bind()
            for m in self.members:
                cut = self.step if resume else None  # metrics and trackers drop what follows it
                m.metrics = NoMetrics() if not self.writes else MetricsLog(
                    m.run_dir / "metrics.jsonl", cut,
                    open_trackers(m.config.run.trackers, m.run_dir, m.config.to_dict(), cut))
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.members)

    def _sampler(self) -> Callable[[int], tuple[Tensor, Tensor]]:
        """The stream sampler's ``draw`` (``sampler.py``). Where the fused step trains on the CPU it
        computes on one intra-op thread for the trainer's life, and if torch has two or more, a
        second thread draws the next step's prompts meanwhile."""
        cfg = self.shared
        sampler = StreamSampler([m.task for m in self.members], [m.config.train.seed for m in self.members],
                                cfg.train.batch, cfg.curriculum, self.device, self.dtype)
        if not (isinstance(self.update, FusedStep) and self.device.type == "cpu"):
            return sampler.draw
        prefetch = torch.get_num_threads() >= 2
        self._locks.enter_context(intra_op_threads(1))
        log.debug("fused step on the CPU: one torch thread computes%s", ", a second draws the next "
                  "step's prompts" if prefetch else " (torch has one; two would draw prompts meanwhile)")
        if not prefetch:
            return sampler.draw
        return self._locks.enter_context(contextlib.closing(Prefetcher(sampler)))

    @property
    def name(self) -> str:
        """The run directory, or "E members in DIR"."""
        dirs = [m.run_dir for m in self.members]
        return str(dirs[0]) if len(dirs) == 1 else f"{len(dirs)} members in {os.path.commonpath(dirs)}"

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directories (all but ranks > 0 of a DDP run)."""
        return self.group.writes

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the metrics and release the members' locks."""
        for m in self.members:
            if m.metrics is not None:
                m.metrics.close()
        self._locks.close()

    # --- checkpoints ------------------------------------------------------------------------
    def _restore(self) -> int:
        """Load every member's latest checkpoint (one step for all); return that step."""
        latest = [latest_step(m.run_dir) for m in self.members]
        check(len(set(latest)) == 1, "members of one training loop must resume from one step; "
                                     "resume a sweep with resume_sweep, which groups them by step")
        step = latest[0]
        if step == 0:
            log.debug("no checkpoint yet: starting from step 0")
            return 0
        states = []
        for m in self.members:
            path = checkpoint_path(m.run_dir, step)
            ckpt = load_checkpoint(path, m.config.to_dict())
            load_weights(m.model, ckpt.weights, path)
            states.append(ckpt.state)
        recorded = Environment.from_dict(states[0].get("environment"))
        self.environment = resume_in(recorded, self.environment, self._locks, self.name)
        try:
            self.optimizer.load_state_dict(join_states([s["optimizer"] for s in states]))
            self.scheduler.load_state_dict(join_lists([s["scheduler"] for s in states]))
            set_scheduled_lrs(self.scheduler)  # the rate of the run's plan now (extend.py)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            raise UsageError(f"the optimiser state of step {step} in '{self.members[0].run_dir}' "
                             f"does not fit its run ({type(err).__name__}); delete that checkpoint "
                             "to resume from an earlier one") from None
        return step

    def _check_finite(self) -> None:
        """Mark diverged every member whose weights or optimiser state are not all finite (the
        loss is measured before an update; this looks at what would be saved after it)."""
        for m in self.members:
            if m.diverged_at is not None:
                continue
            params = list(m.model.parameters())
            tensors = [*params, *(v for p in params for v in self.optimizer.state.get(p, {}).values()
                                  if isinstance(v, Tensor) and v.is_floating_point())]
            if not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):  # one sync
                self._diverge(m, f"weights or optimiser state became non-finite by step {self.step}")

    def _diverge(self, m: Member, what: str) -> None:
        """Stop member ``m`` for good: note why in its metrics; a run alone stops here."""
        m.diverged_at = self.step
        good = checkpoint_dirs(m.run_dir)
        where = f"the last good checkpoint is {good[-1].name}" if good else "no checkpoint was written"
        message = f"{what}; stopped ({where}); lower optimizer.lr or set optimizer.clip"
        m.metrics.write({"step": self.step, "diverged": message})
        if len(self) == 1:
            raise TrainingError(message)
        log.warning("member %s: %s", m.run_dir.name, message)

    def _save(self) -> None:
        if not self.writes:
            return
        log.debug("checkpoint of step %d", self.step)
        optimizer, scheduler = self.optimizer.state_dict(), self.scheduler.state_dict()
        for e, m in enumerate(self.members):
            if m.diverged_at is None:
                state = {"config": m.config.to_dict(), "optimizer": member_state(optimizer, e),
                         "scheduler": member_lists(scheduler, e, len(self)),
                         "environment": self.environment.to_dict()}
                save_checkpoint(m.run_dir, self.step, m.model, state, m.config.run.keep)

    # --- one step ---------------------------------------------------------------------------
    def sample(self, step: int) -> tuple[Tensor, Tensor]:
        """Every member's prompts for ``step``, from its own (seed, step): (E, B, n, d), (E, B, n);
        with the stream sampler, reused buffers valid until the next call
        (``sampler.py``), drawn one step ahead on a second thread where the trainer prefetches."""
        cfg = self.shared
        if cfg.train.sampler == "counter":  # every member in one draw keyed by (seed, step)
            d_active, n = cfg.curriculum.dims(step, self.members[0].task.d, self.members[0].task.n)
            return counter.sample_members([m.task for m in self.members],
                                          [m.config.train.seed for m in self.members], cfg.train.batch,
                                          step, n=n, d_active=d_active, device=self.device, dtype=self.dtype)
        return self._draw(step)

    def train_step(self, step: int) -> Tensor:
        """One optimiser step of every member on fresh prompts; losses (E,)."""
        x, y = self.sample(step)
        # DDP: this rank's rows, and the loss logged is the global batch's (alone: the batch)
        losses = self.group.mean(self.update(self.group.shard(x), self.group.shard(y)))
        self.scheduler.step()
        return losses

    # --- the loop ---------------------------------------------------------------------------
    def run(self, bar: Progress | None = None) -> list[tuple[Member, Result]]:
        """Train to ``train.steps``; return each member's final evaluation, diverged members
        left out (their files are the caller's to write: ``runs.finish``)."""
        with self._phase(f"training {self.name}, steps {self.step:,} to {self.shared.train.steps:,}"):
            results = self._loop(bar)
        if not self.writes:
            return []
        return [(m, result or evaluate(m.model, m.config, m.task, device=str(self.device)))
                for m, result in zip(self.members, results, strict=True) if m.diverged_at is None]

    def _phase(self, name: str) -> contextlib.AbstractContextManager[None]:
        """``logs.phase``, at DEBUG in a process that does not write (a DDP rank > 0)."""
        return phase(name, log, logging.INFO if self.writes else logging.DEBUG)

    def _loop(self, bar: Progress | None) -> list[Result | None]:
        cfg = self.shared
        total = cfg.train.steps
        window: list[Tensor] = []
        results: list[Result | None] = [None] * len(self)
        start = time.perf_counter()
        while self.step < total:
            window.append(self.train_step(self.step))
            self.step += 1
            done = self.step == total
            saving = self.step % cfg.run.checkpoint_every == 0 or done
            if self.step % cfg.run.log_every == 0 or saving:
                # (E, W) rows: each member's mean is reduced alone, bit for bit whatever E is
                means = torch.stack(window, 1).float().mean(1).tolist()
                self._log(means, start)
                window.clear()
                live = [v for m, v in zip(self.members, means, strict=True) if m.diverged_at is None]
                if bar is not None and live:
                    bar.set_loss(sum(live) / len(live))  # the members' mean
            if bar is not None:
                bar.update(len(self))
            evaluating = (cfg.eval.every and self.step % cfg.eval.every == 0) or done
            if evaluating or saving:
                self._check_finite()
                self._stop_if_all_diverged()
            if evaluating:
                with self._phase("final evaluation") if done else contextlib.nullcontext():
                    self._evaluate(results)
            if saving:
                self._save()
        return results

    def _evaluate(self, results: list[Result | None]) -> None:
        """Evaluate every member still training into ``results``; log the errors."""
        if not self.writes:
            return
        for e, m in enumerate(self.members):
            if m.diverged_at is None:
                results[e] = evaluate(m.model, m.config, m.task, device=str(self.device))
                m.metrics.write({"step": self.step, "eval": {
                    k: c["mse"] for k, c in results[e]["results"].items()}})

    def _log(self, means: list[float], start: float) -> None:
        seconds = round(time.perf_counter() - start, 3)
        for e, (m, mean) in enumerate(zip(self.members, means, strict=True)):
            if m.diverged_at is not None:
                continue
            if not math.isfinite(mean):
                self._diverge(m, f"loss became {mean} before step {self.step}")
                continue
            lr = self.optimizer.param_groups[e]["lr"]
            m.metrics.write({"step": self.step, "loss": mean, "lr": float(lr)})
            m.metrics.time(self.step, seconds)
        self._stop_if_all_diverged()

    def _stop_if_all_diverged(self) -> None:
        """A loop whose every member diverged stops: the one place that says so."""
        if all(m.diverged_at is not None for m in self.members):
            raise TrainingError(f"every member diverged by step {self.step}")
