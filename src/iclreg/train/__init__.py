"""Training: configs, the loop, checkpoints and resume, run directories."""

from ..analysis.evaluate import evaluate
from .config import ExperimentConfig, load_config, resolve
from .loop import Trainer
from .plan import train_plan
from .run import build_model, load_run, read_run_config
from .runs import resume, train

__all__ = [
    "ExperimentConfig", "Trainer", "build_model", "evaluate", "load_config", "load_run",
    "read_run_config", "resolve", "resume", "train", "train_plan",
]
