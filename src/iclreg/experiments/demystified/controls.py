"""The negative control of every claim of ``iclreg reproduce demystified`` (He et al., arXiv
2503.12734): a perturbation that breaks the claimed mechanism, under which the claim must not
hold. A claim whose check passes under its control could not have failed, and is a defect.

Each control is run by the test suite at toy size (tests/experiments/test_demystified_controls.py,
one case per entry of ``CONTROLS``); the report lists each below its claim's statement
(``Experiment.controls``).
"""

from __future__ import annotations

CONTROLS = {
    "1-multi-head": "ridge's predictions in place of the estimator's",
    "1-GD": "ridge's predictions in place of the estimator's",
    "1-debiased-GD": "ridge's predictions in place of the estimator's",
    "1-single-head": "ridge's predictions in place of the estimator's",
    "1-ridge": "the single head's predictions in place of ridge's",
    "2-H1": "the H = 2 losses in place of H = 1's",
    "2-Hge2": "the H = 1 losses in place of H >= 2's",
    "2-plateau": "the H = 1 seeds in place of every H >= 2's",
    "3-KQ": "KQ x-blocks with off-diagonal entries half the diagonal",
    "3-OV": "OV reading the x entries as strongly as the label",
    "3-opposite": "heads tied (both heads with the same sign)",
    "3-magnitude": "the H = 1 head (|omega| 0.52, |mu| 1.5) in place of the H = 2 heads",
    "3-dummies": "every head beyond two carrying an equal share",
    "3-split-trend": "the checkpoints in reverse order (moving away from the published split)",
    "4-H1": "debiased GD's predictions in place of the H = 1 model's",
    "4-Hge2": "plain GD's predictions in place of the model's",
    "4-theory-H1": "(omega, mu) 16% off the optimum (past the 15% tolerance)",
    "4-exact-H1": "the approximate loss's minimiser in place of the trained (omega, mu)",
    "4-theory-H2": "mu*(omega) scaled by 1.2 (past the 15% tolerance)",
    "5-length": "an H = 2 error that stops falling at the training length",
    "5-linear-length": "softmax's own error curve in place of linear / L's",
    "5-near-bayes": "the single head's error (one head, no debiasing) in place of H = 2's",
    "aniso-KQ-toeplitz": "W = I (no preconditioning)",
    "aniso-KQ-spiked": "W = I (no preconditioning)",
    "aniso-pgd-toeplitz": "plain GD's predictions in place of the model's",
    "aniso-pgd-spiked": "plain GD's predictions in place of the model's",
    "multitask-superposition": "every head of H = 3 serving one task",
    "multitask-one-task": "one head of H = 6 serving both tasks",
    "multitask-loss": "the H = 1 loss in place of H = 3's",
}
