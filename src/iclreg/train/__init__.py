"""Training: configs, the loop, checkpoints and resume, run directories."""

from .config import ExperimentConfig, load_config, resolve
from .loop import Trainer, evaluate, resume, train, train_or_resume
from .plan import train_plan
from .run import build_model, load_run, read_run_config

__all__ = [
    "ExperimentConfig", "Trainer", "build_model", "evaluate", "load_config", "load_run",
    "read_run_config", "resolve", "resume", "train", "train_or_resume", "train_plan",
]
