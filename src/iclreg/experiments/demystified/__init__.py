"""He, Pan, Chen, Yang, "In-context linear regression demystified" (ICML 2025, arXiv 2503.12734):
``iclreg reproduce demystified``.

- ``setup``: the task, the published numbers, the first half's sizes (every part reads them);
- ``experiment``: the reproduction (estimator table, training, patterns, mechanism, lengths);
- ``heads``, ``mechanism``: the claims on the learned heads and on what the heads compute;
- ``length``, ``aniso``, ``multitask``: the second half's parts, each with its plan and claims;
- ``controls``: every claim's negative control.
"""

from . import setup
from .experiment import CONTROLS, PARTS, Demystified, parts
from .setup import *  # noqa: F403 (the shared setup: task, published numbers, sizes)

__all__ = ["CONTROLS", "PARTS", "Demystified", "parts", *setup.__all__]
