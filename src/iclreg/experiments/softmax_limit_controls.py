"""The negative control of every claim of ``iclreg reproduce softmax-limit`` (Boursier & Boyer,
arXiv 2512.11784): a perturbation that breaks the claimed mechanism, under which the claim must not
hold. Each is run by the test suite at toy size (tests/experiments/test_softmax_limit_controls.py),
and the report lists it below its claim's statement (``Experiment.controls``).
"""

from __future__ import annotations

CONTROLS = {
    "1-gaussian-limit": "the limit with G scaled by 1.2",
    "2-slopes": "the limit with G scaled by 1.2",
    "1-rademacher": "Gaussian tokens in place of Rademacher ones",
    "3-tracks-flow": "a softmax risk off the flow by the same amount at every L",
    "3-softmax-vs-linear": "a softmax - linear gap that does not shrink with L",
    "3-conservation": "b frozen at its initial value while A follows the flow",
    "3-bayes-end": "the flow stopped at the training time (a twentieth of its horizon)",
    "4-stability": "finite/infinite-L gaps growing tenfold along training",
}
