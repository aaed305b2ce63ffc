"""One model trained by N processes with PyTorch DistributedDataParallel, launched by torchrun.

``torchrun --nproc-per-node N -m iclreg train CONFIG`` starts N processes and sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in each; a run started so joins the process group
(NCCL on GPUs, rank r on ``cuda:LOCAL_RANK``; gloo on the CPU) and trains its one model as
follows.

- Batch: every rank samples the step's whole global batch from (seed, step), exactly as one
  process would, and keeps its own rows ``[r B/N, (r+1) B/N)``. The task's sampler draws a
  batch from one generator seeded by (seed, step), so a rank cannot draw its rows without
  drawing those before them; sampling is cheap next to the model, and the global batch is
  the single-process one, bit for bit.
- Update: each rank's loss is the mean over its B/N prompts and DDP averages the gradients
  over ranks, so the gradient is that of the global mean,
  :math:`\\frac1N \\sum_r \\frac{N}{B} \\sum_{i \\in r} \\ell_i = \\frac1B \\sum_i \\ell_i`:
  the update equals the single-process one up to the order of float additions. The logged
  loss is the mean of the ranks' losses, the global batch's mean.
- Files: rank 0 alone takes the run's lock and writes its directory (config, checkpoints,
  metrics, evaluation, figures); every rank reads the checkpoint to resume.

Sweeps and ensembles train many models: they are not for DDP (``check_one_run``).

The trainer never asks whether it runs under torchrun: it holds a strategy, a :class:`Group`
(rank r of N) or :class:`Alone` (a process training by itself, every method the plain one),
as it holds a step strategy (``step.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..device import resolve_device
from ..errors import check
from .config import ExperimentConfig
from .rundir import config_sweeps, is_sweep
from .step import EagerStep, Step, build_step

ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")  # what torchrun sets in every process it starts


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting ``ENV``)."""
    return all(name in os.environ for name in ENV)


def check_one_run(sweep: Sequence[str] | None, resume: str | None, config: str | None) -> None:
    """Under torchrun, refuse a sweep (``--sweep``, a config with sweep axes, ``--resume SWEEP``)."""
    if not launched():
        return
    many = bool(sweep) or (bool(resume) and is_sweep(resume)) or (bool(config) and config_sweeps(config))
    check(not many, "a sweep trains many models and torchrun (DDP) trains one: run the sweep without "
                    "torchrun, or train one of its runs under torchrun")


class DataParallelStep(EagerStep):
    """:class:`~iclreg.train.step.EagerStep` with the network wrapped in DDP, which averages
    the gradients over ranks during the backward pass (compiled too when ``run.compile``)."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, config: ExperimentConfig,
                 device: torch.device, last_only: bool) -> None:
        self.compiled = config.run.compile
        self.device_ids = [device.index] if device.type == "cuda" else None
        super().__init__(net, optimizer, config, device, last_only)

    def wrap(self, net: nn.Module) -> nn.Module:
        ddp = DistributedDataParallel(net, device_ids=self.device_ids)
        return torch.compile(ddp) if self.compiled else ddp


@dataclass(frozen=True)
class Group:
    """This process's place in the group torchrun launched: rank ``rank`` of ``world``."""

    rank: int
    world: int
    local_rank: int

    @property
    def writes(self) -> bool:
        """Rank 0 alone writes the run directory."""
        return self.rank == 0

    def device(self, device: str) -> torch.device:
        """The run's device for this rank: ``cuda:LOCAL_RANK`` on GPUs, else ``device``."""
        dev = resolve_device(device)
        return torch.device("cuda", self.local_rank) if dev.type == "cuda" else dev

    def check(self, config: ExperimentConfig) -> None:
        """Refuse a run DDP cannot train as one process would."""
        check(config.train.batch % self.world == 0,
              f"train.batch={config.train.batch} does not split over {self.world} processes; "
              f"make it a multiple of --nproc-per-node")
        check(not config.run.cuda_graph, "run.cuda_graph does not work under torchrun (DDP); "
                                         "set run.cuda_graph=false")

    def build_step(self, config: ExperimentConfig, net: nn.Module, optimizer: torch.optim.Optimizer,
                   device: torch.device, last_only: bool) -> DataParallelStep:
        """The step of ``step.build_step`` with gradients averaged over ranks."""
        return DataParallelStep(net, optimizer, config, device, last_only)

    def shard(self, t: Tensor) -> Tensor:
        """This rank's rows of the global batch: (E, B, ...) -> (E, B/N, ...)."""
        rows = t.shape[1] // self.world
        return t[:, self.rank * rows:(self.rank + 1) * rows]

    def mean(self, t: Tensor) -> Tensor:
        """The mean over ranks of ``t`` (each rank's loss on its shard), on every rank."""
        total = t.clone()
        dist.all_reduce(total)
        return total / self.world

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        dist.barrier(device_ids=[self.local_rank] if dist.get_backend() == "nccl" else None)


class Alone:
    """The strategy of a process that trains by itself: it writes, its device is the config's,
    its step the plain one, its batch whole, and it waits for nobody."""

    writes = True
    world = 1

    def device(self, device: str) -> torch.device:
        return resolve_device(device)

    def check(self, config: ExperimentConfig) -> None:
        pass

    def build_step(self, config: ExperimentConfig, net: nn.Module, optimizer: torch.optim.Optimizer,
                   device: torch.device, last_only: bool) -> Step:
        return build_step(config, net, optimizer, device, last_only)

    def shard(self, t: Tensor) -> Tensor:
        return t

    def mean(self, t: Tensor) -> Tensor:
        return t

    def barrier(self) -> None:
        pass


ALONE = Alone()
Processes = Group | Alone  # the strategy a trainer holds


@contextlib.contextmanager
def process_group(device: str) -> Iterator[Processes]:
    """Join torchrun's process group for the block (NCCL when ``device`` is cuda, else gloo);
    :data:`ALONE` in a process that torchrun did not start, which trains by itself."""
    if not launched():
        yield ALONE
        return
    group = Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    cuda = group.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(group.local_rank)
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield group
        if joined:  # every rank done before the group goes: gloo aborts a rank whose peer left first
            dist.barrier()
    finally:
        if joined:
            dist.destroy_process_group()


class NoMetrics:
    """The metrics of a rank that does not write: every record is dropped (rank 0 writes them)."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def time(self, step: int, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass
