"""He, Pan, Chen, Yang, "In-context linear regression demystified" (ICML 2025, arXiv 2503.12734):
``iclreg reproduce demystified``.

- ``setup``: the task, the published numbers, the first half's sizes (every part reads them);
- ``experiment``: the reproduction (estimator table, training, patterns, mechanism, lengths);
- ``heads``, ``mechanism``: the claims on the learned heads and on what the heads compute;
- ``length``, ``aniso``, ``multitask``: the second half's parts, each with its plan and claims;
- ``controls``: every claim's negative control.
"""

from .experiment import CONTROLS, PARTS, Demystified, parts
from .setup import (
    ESTIMATORS,
    FULL,
    HE_LR,
    K_SE,
    LENGTHS,
    LONGEST,
    NOISE_VAR,
    OWN_RUNS,
    PLATEAU,
    PUBLISHED,
    PUBLISHED_LENGTHS,
    QUICK,
    TASK,
    TOY,
    D,
    L,
    Sizes,
    Trained,
    best,
)

__all__ = ["CONTROLS", "D", "ESTIMATORS", "FULL", "HE_LR", "K_SE", "LENGTHS", "LONGEST", "NOISE_VAR",
           "OWN_RUNS", "PARTS", "PLATEAU", "PUBLISHED", "PUBLISHED_LENGTHS", "QUICK", "TASK", "TOY", "L",
           "Demystified", "Sizes", "Trained", "best", "parts"]
