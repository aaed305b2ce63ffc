"""iclreg: in-context linear regression — prompts, estimators, theory and reproductions."""

from .errors import TrainingError, UsageError

__version__ = "0.1.0"
__all__ = ["TrainingError", "UsageError", "__version__"]
