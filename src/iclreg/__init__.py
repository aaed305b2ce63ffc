"""iclreg: in-context linear regression — prompts, estimators, theory and reproductions."""

from .errors import UsageError

__version__ = "0.1.0"
__all__ = ["UsageError", "__version__"]
