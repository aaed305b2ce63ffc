"""He, Pan, Chen, Yang, "In-context linear regression demystified" (ICML 2025, arXiv 2503.12734):
``iclreg reproduce demystified``.

- ``setup``: the task, the published numbers, the first half's sizes (every part reads them);
- ``experiment``: the reproduction (its plan, and the analysis wired from the modules below);
- ``sweep``, ``sweep_claims``, ``sweep_text``: the H sweep (estimator table, training, patterns,
  mechanism, lengths): its measurements, its claims, its sections;
- ``heads``, ``mechanism``: the claims on the learned heads and on what the heads compute;
- ``length`` (``length_claims``, ``length_text``), ``aniso`` (``aniso_measure``, ``aniso_claims``),
  ``multitask``: the second half's parts, each with its plan, measurements and claims;
- ``controls``: every claim's negative control.
"""

from . import setup
from .experiment import CONTROLS, PARTS, Demystified, parts
from .setup import *  # noqa: F403 (the shared setup: task, published numbers, sizes)

__all__ = ["CONTROLS", "PARTS", "Demystified", "parts", *setup.__all__]
