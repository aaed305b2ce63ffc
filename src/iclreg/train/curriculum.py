"""Garg et al.'s curriculum (arXiv 2208.01066): the active input dimension and the prompt
length grow in steps during training, e.g. d 5 -> 20 (+1 every 2000 steps) and n 11 -> 41
(+2 every 2000 steps). Inactive coordinates of x are zero."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import check


@dataclass(frozen=True)
class Ramp:
    """A value that starts at ``start`` and grows by ``inc`` every ``every`` steps to ``end``."""

    start: int
    end: int
    inc: int = 1
    every: int = 2000

    def __post_init__(self) -> None:
        check(self.start >= 1, f"curriculum: start must be at least 1, got {self.start}")
        check(self.end >= self.start, f"curriculum: end ({self.end}) must be >= start ({self.start})")
        check(self.inc >= 1, f"curriculum: inc must be at least 1, got {self.inc}")
        check(self.every >= 1, f"curriculum: every must be at least 1, got {self.every}")

    def at(self, step: int) -> int:
        """The value at training step ``step``."""
        return min(self.end, self.start + self.inc * (step // self.every))


@dataclass(frozen=True)
class CurriculumConfig:
    """Attributes:
    d: ramp of the active input dimension (none: always the task's d).
    n: ramp of the prompt length in pairs (none: always the task's n).
    """

    d: Ramp | None = None
    n: Ramp | None = None

    def dims(self, step: int, d: int, n: int) -> tuple[int, int]:
        """(active d, prompt length) at ``step`` for a task of size (d, n)."""
        return (self.d.at(step) if self.d else d, self.n.at(step) if self.n else n)
