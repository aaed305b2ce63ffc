"""The negative control of every claim of ``iclreg reproduce multihead`` (Cui et al., arXiv
2401.17426): a perturbation that breaks the claimed mechanism, under which the claim must not hold.
Each is run by the test suite at toy size (tests/experiments/test_multihead_controls.py), and the
report lists it below its claim's statement (``Experiment.controls``).
"""

from __future__ import annotations

CONTROLS = {
    "1-order": "excess risks falling as 1/sqrt(D)",
    "1-constant": "the single head's excess in place of the two heads'",
    "1-derivation": "a single head at the approximate loss's constant e d (1 + sigma^2)",
    "1-trained": "the single head's trained excess in place of the two heads'",
    "2-scenarios": "heads tied: two heads' excess equal to one head's in every scenario",
    "2-local": "the base scenario's excess in place of the local one's",
    "3-heads": "heads tied: the best two-head kernel at the single head's excess",
    "3-dimension": "heads tied: two heads' excess equal to one head's at every d",
}
