"""Standard output for a reader that may leave early: ``iclreg compare ... --json | head``.

When the reader closes the pipe, the next write (or the interpreter's last flush) raises
BrokenPipeError. The command line then exits quietly with status 0: the command's work is
done and the reader chose to stop reading. The recipe is the one in Python's ``signal``
documentation ("Note on SIGPIPE"): point stdout at devnull so that no later flush fails.
"""

from __future__ import annotations

import os
import select
import sys


def stdout_closed() -> bool:
    """Whether stdout is a pipe or socket whose reader has gone (poll reports an error or a
    hang-up on it), so that a BrokenPipeError from anything else (a worker's pipe) is not
    mistaken for it. True where poll is missing (Windows) or stdout is not a file."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # POLLERR and POLLHUP are always reported
        return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def discard_stdout() -> None:
    """Send whatever stdout still holds, and all later output, to devnull."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
