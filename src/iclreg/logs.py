"""What iclreg tells a person while it works: log lines on stderr, progress and phases.

A run is watched in a terminal or read the next morning in a batch job's log (``iclreg train
CFG 2>log``), so every long task reports itself both ways:

- :func:`setup_logging` (called by ``iclreg``'s ``main``): ``-1`` quiet (warnings and errors
  only), ``0`` iclreg's own messages as plain ``iclreg: <message>`` lines, ``1`` verbose (debug
  messages too, each with its time, level and logger).
- :class:`Progress`: a tqdm bar with the loss and the ETA when stderr is a terminal; otherwise a
  plain line every ``interval`` seconds (``ICLREG_LOG_EVERY``, default 30) and one at the end,
  ``train: step 1200/5000 (24%), loss 0.4123, 85.3 step/s, ETA 45 s`` (a loss logged at an
  earlier step says so: ``loss 0.4123 (logged at step 1175)``). The rate counts only
  the steps taken by this process (steps restored from a checkpoint are :meth:`Progress.skip`),
  and the ETA is the steps left at that rate.
- :func:`phase`: ``<name> ...`` when a phase starts and ``<name> done in 3.2 s`` when it ends.
- :func:`heartbeat`: for one long library call with no counter (``compare``, ``test-time``):
  ``<name> ... (5 s so far)`` every few seconds, silent when the call ends (or is refused) sooner.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

LOGGER = "iclreg"
INTERVAL = 30.0  # seconds between progress lines outside a terminal
ENV_INTERVAL = "ICLREG_LOG_EVERY"

log = logging.getLogger(LOGGER)


# --- setup --------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a redirected file, a test's
    capture), clearing a terminal's progress bar around the line so that the two do not mix."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.std import tqdm

        with tqdm.external_write_mode(file=sys.stderr):
            super().emit(record)


class _Formatter(logging.Formatter):
    """Plain ``iclreg: <message>`` lines (``iclreg: warning: ...`` above INFO) for iclreg's own
    records; ``LEVEL name: message`` for other libraries' records; verbose: every record with its
    time, level and logger."""

    def __init__(self, verbose: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose
                         else "%(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        ours = record.name == LOGGER or record.name.startswith(LOGGER + ".")
        if self.verbose or not ours:
            return super().format(record)
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        text = f"{LOGGER}: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(verbosity: int = 0) -> Callable[[], None]:
    """Send log records to stderr: ``verbosity`` -1 warnings and errors only, 0 iclreg's
    messages from INFO up as ``iclreg: <message>``, 1 iclreg's DEBUG messages too, with time,
    level and logger name. Other libraries log warnings and errors only.

    A second call replaces the first's handler. Returns a function that restores the logging
    set-up found (``main`` calls it on the way out, so a test calling ``main`` leaves none).
    """
    root, ours = logging.getLogger(), logging.getLogger(LOGGER)
    before = (root.level, ours.level, list(root.handlers))
    for handler in root.handlers:
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(verbose=verbosity > 0))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(min(verbosity, 1), logging.DEBUG))
    shown = warnings.showwarning
    warnings.showwarning = _show_warning(shown)

    def restore() -> None:
        warnings.showwarning = shown
        root.removeHandler(handler)
        for old in before[2]:
            if old not in root.handlers:
                root.addHandler(old)
        root.setLevel(before[0])
        ours.setLevel(before[1])

    return restore


def _show_warning(default: Callable[..., None]) -> Callable[..., None]:
    """iclreg's own warnings (a category defined in iclreg, such as ``DivergenceWarning``) as
    one ``iclreg: warning: <message>`` line; other warnings as Python shows them."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if category.__module__.startswith(LOGGER + "."):
            log.warning("%s", message)
        else:
            default(message, category, *args, **kwargs)

    return show


def add_log_options(parser: argparse.ArgumentParser, commands: list[argparse.ArgumentParser]) -> None:
    """``-q``/``--quiet`` and ``-v``/``--verbose`` on ``parser`` and on each of its ``commands``,
    so that they go before the command or after it (a command's flag, when given, wins)."""
    for p, default in [(parser, False), *((c, argparse.SUPPRESS) for c in commands)]:
        p.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="warnings and errors only: no progress, no phases")
        p.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="debug messages too, each with its time and logger")


# --- phases -------------------------------------------------------------------------------
def duration(seconds: float) -> str:
    """``3.2 s``, ``45 s``, ``12 min 5 s``, ``2 h 3 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@contextlib.contextmanager
def phase(name: str, logger: logging.Logger | None = None, level: int = logging.INFO,
          clock: Callable[[], float] = time.perf_counter) -> Iterator[None]:
    """Log ``<name> ...`` now and ``<name> done in <duration>`` when the block ends (nothing
    more when it raises: the error says why)."""
    logger = logger or log
    logger.log(level, "%s ...", name)
    start = clock()
    yield
    logger.log(level, "%s done in %s", name, duration(clock() - start))


@contextlib.contextmanager
def heartbeat(name: str, logger: logging.Logger | None = None, after: float = 5.0,
              every: float = 15.0) -> Iterator[None]:
    """Progress of work with no counter to show (one call into the library): after ``after``
    seconds ``<name> ... (5 s so far)``, again every ``every`` seconds, and ``<name> done in
    <duration>`` at the end once anything was said. A block that ends sooner (its input refused
    in one line, or quick work) says nothing."""
    logger = logger or log
    start, said, stop = time.perf_counter(), threading.Event(), threading.Event()

    def beat() -> None:
        wait = after
        while not stop.wait(wait):
            said.set()
            logger.info("%s ... (%s so far)", name, duration(time.perf_counter() - start))
            wait = every

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if said.is_set():
        logger.info("%s done in %s", name, duration(time.perf_counter() - start))


# --- progress -----------------------------------------------------------------------------
def log_interval() -> float:
    """Seconds between progress lines outside a terminal: ``ICLREG_LOG_EVERY`` (0: every
    update), else 30."""
    text = os.environ.get(ENV_INTERVAL, "").strip()
    if not text:
        return INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        log.warning("%s=%s is not a number of seconds >= 0; using %g", ENV_INTERVAL, text, INTERVAL)
        return INTERVAL
    return value


class Progress:
    """Progress of ``total`` units (training steps, prompts), a context manager.

    On a terminal (stderr a TTY) a tqdm bar with the latest loss and the ETA; otherwise a log
    line every ``interval`` seconds and one when ``total`` is reached (or, earlier, on
    :meth:`close`). Disabled (``enabled=False``), it does nothing. ``leave=False``: the closing
    line is a DEBUG message and the bar is cleared (an inner loop, such as prompts of one
    evaluation).

    Args:
        total: units to reach; initial: units already done before (a resumed run).
        desc: the name at the start of each line; unit: what is counted.
        interval: seconds between lines (default :func:`log_interval`).
        tty: whether to draw a bar (default: whether stderr is a terminal).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train",
                 unit: str = "step", *, interval: float | None = None, tty: bool | None = None,
                 leave: bool = True, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.loss: float | None = None
        self.loss_at: int | None = None  # the position the loss was logged at
        self._loss_pending = False
        self.enabled, self.leave = enabled, leave
        self.interval = log_interval() if interval is None else interval
        self.logger = logger or log
        self.clock = clock
        self.start = self.last = clock()
        self._counted_from = initial  # units before this count toward the position, not the rate
        self._finished = False
        self._bar = None
        if enabled and (sys.stderr.isatty() if tty is None else tty):
            from tqdm.std import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave,
                             dynamic_ncols=True, file=sys.stderr)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate(self) -> float | None:
        """Units per second counted by this process so far (None before the first)."""
        done, elapsed = self.n - self._counted_from, self.clock() - self.start
        return done / elapsed if done > 0 and elapsed > 0 else None

    def update(self, n: int = 1) -> None:
        """``n`` more units done (a loss set just before belongs to the position reached)."""
        self.n += n
        if self._loss_pending:
            self.loss_at, self._loss_pending = self.n, False
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if self.n >= self.total:  # ended now: its time and rate are the loop's, not what follows
                self._finished = True
                self._bar.close()
                self._bar = None
        elif self.n >= self.total:
            self._finish()
        elif self.clock() - self.last >= self.interval:
            self.last = self.clock()
            self.logger.info("%s", self.line())

    def skip(self, n: int) -> None:
        """``n`` units done before this process (restored from a checkpoint): they move the
        position, not the rate."""
        self._counted_from += n
        self.update(n)

    def set_loss(self, loss: float) -> None:
        """The latest (mean) training loss, shown on the bar and in the lines; it belongs to the
        position the next :meth:`update` reaches (the step it was logged at)."""
        self.loss, self.loss_at, self._loss_pending = float(loss), self.n, True
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{self.loss:.4g}", refresh=False)

    def line(self, end: str | None = None) -> str:
        """``desc: step n/total (p%), loss L, R step/s, ETA T`` (``end`` replaces the ETA); a loss
        logged before the current position says where: ``loss L (logged at step 175)``."""
        percent = 100 * self.n / self.total if self.total else 100.0
        parts = [f"{self.desc}: {self.unit} {self.n}/{self.total} ({percent:.0f}%)"]
        if self.loss is not None:
            stale = self.loss_at is not None and self.loss_at < self.n and not self._loss_pending
            at = f" (logged at {self.unit} {self.loss_at})" if stale else ""
            parts.append(f"loss {self.loss:.4g}{at}")
        rate = self.rate
        if rate is not None:
            parts.append(f"{rate:.1f} {self.unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{self.unit}")
        if end is not None:
            parts.append(end)
        elif rate is not None and self.n < self.total:
            parts.append(f"ETA {duration((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def _finish(self, end: str = "done") -> None:
        if not self._finished:
            self._finished = True
            level = logging.INFO if self.leave else logging.DEBUG
            self.logger.log(level, "%s", self.line(f"{end} in {duration(self.clock() - self.start)}"))

    def close(self) -> None:
        """End the bar; outside a terminal, the last line (``stopped`` before ``total``)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.n >= self.total:
            self._finish()
        elif self.n > self._counted_from:
            self._finish("stopped")
        self.enabled = False
