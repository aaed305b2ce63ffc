"""Prompt distributions for in-context linear regression, one registered task per module."""

from . import binary, binary01, gaussian, local, multitask, sparse  # noqa: F401  (register the tasks)
from .base import TASKS, GaussianPrior, Prompts, Task, build, generator

__all__ = ["TASKS", "GaussianPrior", "Prompts", "Task", "build", "generator"]
