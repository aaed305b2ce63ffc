"""iclreg: in-context linear regression — prompts, estimators, theory, models, training."""

from .errors import TrainingError, UsageError
from .train import load_run

__version__ = "0.1.0"
__all__ = ["TrainingError", "UsageError", "__version__", "load_run"]
