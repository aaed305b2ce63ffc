"""What a command will need, found before any work is done and before any file is written.

Memory is measured, not guessed: the command's own code (a task's sampler, an estimator, a
model's forward pass) runs on ``meta`` tensors, which have shapes but no storage, under a
dispatch mode that adds up the bytes of the tensors alive at each moment. The peak of that
sum is the working set the real run will allocate, for any registered task, estimator or
model, at no cost in memory and in milliseconds. It is compared with the memory free on the
device (``MemAvailable`` of /proc/meminfo, or the GPU's free memory) and a run that cannot
fit is refused with a one-line :class:`~iclreg.errors.UsageError`.

Data-dependent branches (``if bad.any(): fall back``) cannot read meta values; the dry run
takes the main path (booleans read False, numbers read 1), the path almost every prompt takes.

Compute has stated maxima instead (a measure of time would need the work itself):
``MAX_SAMPLES`` prompts per evaluation and ``MAX_STEPS`` iterations of an iterative estimator.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import sys
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .errors import UsageError

MAX_SAMPLES = 10**8  # prompts in one evaluation: ~1e5 chunks, hours at most on a CPU
MAX_STEPS = 10**5  # iterations of gd, pgd and newton (probe sweeps GD to 1300)

log = logging.getLogger(__name__)
Predictor = Callable[[Tensor, Tensor], Tensor]


class PeakMemory(TorchDispatchMode):
    """Tracks the bytes of the tensors created inside it that are still alive, and their peak.

    A tensor counts from the operation that creates it until Python frees it; views and
    in-place results share their input's storage and do not count again.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default and args[0].is_meta:
            return False if args[0].dtype == torch.bool else 1  # the main path; see the docstring
        out = func(*args, **kwargs)
        if not func.is_view:
            inputs = {id(t) for t in tree_leaves((args, kwargs))}
            for t in tree_leaves(out):
                if isinstance(t, Tensor) and id(t) not in inputs:
                    nbytes = t.numel() * t.element_size()
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, nbytes)
        return out


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of the tensors ``fn()`` creates (its inputs excluded), run with ``meta`` as
    the default device so that nothing is allocated.

    ``fn`` must take its tensors from meta inputs (or create them without a device). Sizes
    beyond 2^63 elements count as ``sys.maxsize`` bytes; an operation without a meta kernel
    makes the measure unknown (0, with a warning) rather than refuse the run.
    """
    with torch.device("meta"), PeakMemory() as mode:
        try:
            result = fn()
            del result
        except (RuntimeError, NotImplementedError) as err:
            if "overflow" in str(err):
                return sys.maxsize
            log.warning("cannot measure the memory this needs (%s); going ahead unchecked",
                        str(err).splitlines()[0] if str(err) else type(err).__name__)
            return 0
    return mode.peak


def nbytes(*tensors: Tensor) -> int:
    """Bytes of the given tensors' elements."""
    return sum(t.numel() * t.element_size() for t in tensors)


def dry(predictor: Any) -> Predictor | None:
    """A copy of a predictor that runs on meta tensors, or None if it cannot be made.

    Estimators (frozen dataclasses) get a fresh copy of their task, whose cached covariance is
    then built on meta too; models (``nn.Module``) run with meta stand-ins for their parameters
    and buffers (``torch.func.functional_call``), the real ones untouched.
    """
    if isinstance(predictor, nn.Module):
        stand_ins = {name: torch.empty_like(t, device="meta") for name, t in
                     itertools.chain(predictor.named_parameters(), predictor.named_buffers())}

        def run(x: Tensor, y: Tensor) -> Tensor:
            return torch.func.functional_call(predictor, stand_ins, (x, y))

        return run
    if dataclasses.is_dataclass(predictor) and not isinstance(predictor, type) and callable(predictor):
        task = getattr(predictor, "task", None)
        return dataclasses.replace(predictor, task=dataclasses.replace(task)) if task else predictor
    return None


def available_bytes(device: torch.device | str) -> int:
    """Memory free on ``device`` now: the GPU's free memory, with what PyTorch's caching
    allocator holds unused (it is ours to reuse), or MemAvailable of /proc/meminfo (64 GiB
    where neither can be read)."""
    device = torch.device(device)
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0]) + cached
    try:
        text = Path("/proc/meminfo").read_text()
        kib = int(next(line.split()[1] for line in text.splitlines() if line.startswith("MemAvailable")))
        return kib * 1024
    except (OSError, StopIteration, ValueError):
        return 64 * 2**30


def gib(count: int) -> str:
    """A byte count for a message: '3.2 GiB' (or MiB below 1 GiB)."""
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def check_fits(need: int, device: torch.device | str, what: str, fix: str) -> None:
    """Refuse ``what`` when its working set ``need`` exceeds the memory free on ``device``."""
    free = available_bytes(device)
    if need > free:
        raise UsageError(f"{what} needs about {gib(need)} of memory but {gib(free)} is free on "
                         f"{torch.device(device).type}; {fix}")


def evaluation_bytes(task: Any, predictors: Mapping[str, Any], batch: int, n: int,
                     dtype: torch.dtype) -> int:
    """Peak working set of evaluating ``predictors`` on one chunk of ``batch`` prompts of ``n``
    pairs: the prompts, plus the hungriest predictor (they run one after another). Predictors
    that :func:`dry` cannot copy are left out."""
    held = batch * n * (task.d + task.num_labels) * dtype.itemsize  # x and y, before anything runs
    if held > 2**62:
        return held
    task = dataclasses.replace(task)  # its covariance, if built, on meta
    prompts: list[Any] = []
    sampling = peak_bytes(lambda: prompts.append(task.sample(batch, 0, 0, n=n, device="meta",
                                                             dtype=dtype)))
    x, y = prompts[0].x, prompts[0].y
    held = nbytes(x, y, prompts[0].w)
    worst = 0
    for predictor in predictors.values():
        copy = dry(predictor)
        if copy is not None:
            with torch.no_grad():
                worst = max(worst, peak_bytes(lambda f=copy: f(x, y)))
    return max(sampling, held + worst)
