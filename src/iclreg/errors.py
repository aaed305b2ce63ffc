"""The one exception type for bad user input.

Anything a user can get wrong (a SPEC, a config value, a path) raises :class:`UsageError`
with a message that says what is wrong and how to fix it. The command line prints it on one
line and exits with status 2; library callers can catch it as a ``ValueError``.
"""


class UsageError(ValueError):
    """Bad input from the user; the message is one actionable line."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`UsageError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UsageError(message)


class TrainingError(RuntimeError):
    """A run that cannot go on (a loss that turned NaN/inf); the message is one line."""


class WriteError(RuntimeError):
    """An output that could not be written (a full disk, a read-only file system); what was
    on disk stays consistent. The message is one line naming the file and how to continue."""
