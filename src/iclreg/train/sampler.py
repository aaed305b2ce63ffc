"""The trainer's prompts: every member's batch of a step drawn into reused buffers, and, on a
CPU with a second core, drawn one step ahead on a second thread.

Each member's prompts come from ``task.sample`` with its own (seed, step), exactly the stream
it has trained alone (Raventos et al.'s data discipline, arXiv 2306.15063); they are copied,
still in cache, into two buffers x (E, B, n, d) and y (E, B, n[, K]) that are reused from step
to step (a fresh stacked tensor of a large ensemble costs page faults at every step).

Drawing prompts is serial work (one generator per member), and on the CPU it is as costly as
the fused step itself. :class:`Prefetcher` overlaps the two: while the caller trains on step
t, a second thread draws step t + 1 into the other of two buffers. Both threads compute with
one intra-op thread each (``environment.intra_op_threads``), so a run's numbers are the same whatever the
machine's thread count: drawing is a pure function of (seed, step), and the step's arithmetic
never splits over threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import Tensor

from ..tasks import Task
from .curriculum import CurriculumConfig

Batch = tuple[Tensor, Tensor]  # x (E, B, n, d) and y (E, B, n) or (E, B, n, K)


class StreamSampler:
    """Every member's prompts of a step, from its own task and seed, into a token buffer.

    Args:
        tasks, seeds: one per member (tasks of one d, n and number of label slots).
        batch: prompts per member and step.
        curriculum: the run's curriculum (its d_active and n at each step).
    """

    def __init__(self, tasks: Sequence[Task], seeds: Sequence[int], batch: int,
                 curriculum: CurriculumConfig, device: torch.device, dtype: torch.dtype) -> None:
        self.tasks, self.seeds, self.batch = list(tasks), list(seeds), batch
        self.curriculum, self.device, self.dtype = curriculum, device, dtype
        self.buffers: list[Batch | None] = [None, None]

    def draw(self, step: int, slot: int = 0) -> Batch:
        """The prompts of ``step`` in buffer ``slot``, valid until that slot is drawn again."""
        task = self.tasks[0]
        d_active, n = self.curriculum.dims(step, task.d, task.n)
        out = self.buffers[slot]
        for e, (member_task, seed) in enumerate(zip(self.tasks, self.seeds, strict=True)):
            prompts = member_task.sample(self.batch, seed, step, n=n, d_active=d_active,
                                         device=self.device, dtype=self.dtype)
            if out is None or out[0].shape[1:] != prompts.x.shape or out[1].shape[1:] != prompts.y.shape:
                out = self.buffers[slot] = tuple(  # (E, B, n, d), (E, B, n[, K])
                    torch.empty(len(self.tasks), *t.shape, device=self.device, dtype=self.dtype)
                    for t in (prompts.x, prompts.y))
            out[0][e] = prompts.x
            out[1][e] = prompts.y
        return out


class Prefetcher:
    """Draws step t + 1 on a second thread while the caller trains on step t.

    ``prefetcher(step)`` returns the prompts of ``step`` (drawn ahead if ``step`` follows the
    previous call, else drawn now), valid until the next call, and starts drawing ``step + 1``
    into the other buffer. :meth:`close` waits for the thread and stops it.
    """

    def __init__(self, sampler: StreamSampler) -> None:
        self.sampler = sampler
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="iclreg-prompts")
        self.pending: tuple[int, int, Future[Batch]] | None = None  # (step, slot, drawing)
        self.current = 0  # the slot the caller holds

    def __call__(self, step: int) -> Batch:
        slot = 1 - self.current
        batch = None
        if self.pending is not None:
            ahead, slot, future = self.pending
            drawn = future.result()  # also re-raises what the thread raised
            batch = drawn if ahead == step else None
        if batch is None:
            batch = self.sampler.draw(step, slot)
        self.current = slot
        self.pending = (step + 1, 1 - slot, self.pool.submit(self.sampler.draw, step + 1, 1 - slot))
        return batch

    def close(self) -> None:
        if self.pending is not None:
            with contextlib.suppress(Exception):  # a draw past the run's end may fail: unused
                self.pending[2].result()
            self.pending = None
        self.pool.shutdown(wait=True)

