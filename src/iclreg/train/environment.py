"""What a run's numbers depend on besides its config: torch's version, the device, the dtype
and, for the autograd step on the CPU, the number of torch's intra-op threads.

A CPU kernel splits its reductions by the number of intra-op threads, so the same autograd step
run with one and with two threads can differ in its last bits, and training carries the
difference on. Every checkpoint records the environment it was trained in (``state.pt``'s
``"environment"``), and a resume restores the thread count it records for the trainer's life
(:func:`intra_op_threads`): a run resumed under another ``OMP_NUM_THREADS`` ends bit for bit
as the uninterrupted run. The fused step (``fused/``) computes on one thread whatever torch
has, and a GPU step does not use them, so there the count is not recorded (``threads`` is
None). What a resume cannot restore (another torch version, another device type) is said in
one warning line: the run goes on, and its numbers will differ from an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Environment:
    """The environment a run trains in.

    Attributes:
        torch: torch's version.
        device: the device type ("cpu", "cuda", "mps").
        dtype: the run's dtype name.
        threads: torch's intra-op threads where the step's numbers depend on them (the
            autograd step on the CPU), else None.
    """

    torch: str
    device: str
    dtype: str
    threads: int | None

    @classmethod
    def current(cls, device: torch.device, dtype: str, thread_bound: bool) -> Environment:
        """This process's environment for a step on ``device``; ``thread_bound``: whether the
        step's numbers depend on the thread count on the CPU."""
        threads = torch.get_num_threads() if thread_bound and device.type == "cpu" else None
        return cls(str(torch.__version__), device.type, dtype, threads)  # TorchVersion: not weights-only

    @classmethod
    def from_dict(cls, data: Any) -> Environment | None:
        """The environment a checkpoint recorded; None for one written before they did."""
        if not isinstance(data, dict):
            return None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields}) if fields <= data.keys() else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resume_in(recorded: Environment | None, now: Environment, stack: contextlib.ExitStack,
              where: str) -> Environment:
    """Resume a run trained in ``recorded`` from this process (``now``): restore its thread
    count inside ``stack``, warn in one line of what cannot be restored; return the environment
    the run goes on in."""
    if recorded is None:
        return now
    if recorded.threads is not None and now.threads is not None and recorded.threads != now.threads:
        stack.enter_context(intra_op_threads(recorded.threads))
        log.info("resuming %s with %d torch threads, as it trained (this process has %d; the autograd "
                 "step's numbers depend on the count)", where, recorded.threads, now.threads)
        now = dataclasses.replace(now, threads=recorded.threads)
    changed = [f"{name} {getattr(recorded, name)} -> {getattr(now, name)}" for name in ("torch", "device")
               if getattr(recorded, name) != getattr(now, name)]
    if changed:
        log.warning("resuming %s with %s: its numbers will differ from an uninterrupted run's",
                    where, ", ".join(changed))
    return now


__all__ = ["Environment", "intra_op_threads", "resume_in"]
