r"""Scores of in-context regressors against the Bayes-optimal predictor, capability by capability.

For a capability (a prompt distribution of n pairs, ``score_suite``) and a predictor f, every
prompt p gives the squared errors e_f[p, k] = (f(x, y)[k] - y_k)^2 at the n predictions
k = 0..n-1 (k examples before each). Against the capability's reference r (the exact Bayes
predictor, the posterior mean, where one exists) and the zero predictor 0, on the same prompts:

.. math::
    a_p = \frac1n \sum_k (e_f[p,k] - e_r[p,k]), \qquad
    b_p = \frac1n \sum_k (e_0[p,k] - e_r[p,k]),

the **excess risk** is the mean of a_p (>= 0 in expectation when r is Bayes) and the
**normalised score** is 1 - mean(a) / mean(b), the fraction of the zero-to-Bayes gap closed:
1 for the Bayes predictor, 0 for predicting zero, negative for worse than zero. Intervals are
95%: the normal interval of the paired per-prompt means, and for ratios the delta method,
var(A/B) ~ (var a - 2R cov(a, b) + R^2 var b) / (N mean(b)^2), R = mean(a) / mean(b).
Both are exact (zero width) for a predictor equal to the reference or to zero on every prompt.

The **ICL regression score** of the in-context-learning-2024 package (arXiv 2411.03945, its
``metrics/score.py``: ``mean(model_err - zero_err) / mean(base_err - zero_err)`` over the
sequence) is computed with least squares as its baseline on the same prompts:
S = mean_p c_p / mean_p l_p with c_p = (1/n) sum_k (e_f - e_0), l_p = (1/n) sum_k (e_ols - e_0);
1 means "as good as least squares", 0 "as good as zero", above 1 better than least squares.

Every model scored in one call sees the same prompts (drawn from (seed, chunk)), so the
difference of two models is paired: its interval is that of the per-prompt differences of a_p.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from scipy import stats
from torch import Tensor

from ..device import resolve_device
from ..errors import UsageError, check
from ..estimators import build as build_estimator
from ..resources import MAX_SAMPLES, check_fits, dry, nbytes, peak_bytes
from ..tasks import Task
from .compare import CHUNK, Predictor, check_evaluation
from .score_suite import Base, Capability

Z95 = 1.959963984540054  # the normal 97.5% quantile


@dataclass(frozen=True)
class PerTask:
    """A predictor built for each capability's task (an estimator that needs the task's prior,
    such as ``bayes``), in place of one fixed model."""

    factory: Callable[[Task], Predictor]


Model = Predictor | PerTask


@dataclass
class Measurement:
    """Per-prompt errors of every predictor on one capability's prompts.

    Attributes:
        capability: what was measured; task: its task; n: prompt length in pairs.
        errors: model label -> (N, n) squared errors (float64, CPU).
        baselines: the same for ``reference``, ``zero`` and ``ols`` (apart, so that a model may
            bear any of those names).
        skipped: model label -> why the capability does not apply to it.
    """

    capability: Capability
    task: Task | None
    n: int
    errors: dict[str, Tensor] = field(default_factory=dict)
    baselines: dict[str, Tensor] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _predictor(model: Model, task: Task) -> Predictor:
    return model.factory(task) if isinstance(model, PerTask) else model


def model_dtype(model: object) -> torch.dtype | None:
    """The dtype of a model's parameters (None for a predictor without parameters)."""
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    return next((p.dtype for p in params if p.is_floating_point()), None)


def prompts_dtype(models: Mapping[str, Model]) -> torch.dtype:
    """The precision the prompts are drawn in: the lowest of the models' (float64 without any),
    so that every predictor reads the same numbers (a float64 model reads float32 prompts exactly)."""
    dtypes = [t for m in models.values() if (t := model_dtype(m)) is not None]
    return min(dtypes, key=lambda t: torch.finfo(t).bits, default=torch.float64)


def _call(f: Predictor, x: Tensor, y: Tensor) -> Tensor:
    """f's predictions in y's dtype, the prompts cast to f's own dtype."""
    dtype = model_dtype(f) or x.dtype
    with torch.inference_mode():
        return f(x.to(dtype), y.to(dtype)).to(y.dtype)


def _try(model: Predictor, x: Tensor, y: Tensor) -> Tensor | str:
    """The model's predictions on the first chunk of prompts, or the one-line reason it cannot
    take them (this call is the applicability test: no separate probe forward)."""
    try:
        out = _call(model, x, y)
    except (UsageError, RuntimeError, ValueError) as err:
        return " ".join(str(err).splitlines())[:200]
    if tuple(out.shape) != tuple(y.shape):
        return f"the model predicts shape {tuple(out.shape)} for labels of shape {tuple(y.shape)}"
    return out


def _check_memory(task: Task, models: Mapping[str, Predictor], estimators: Mapping[str, Predictor],
                  samples: int, seed: int, n: int, device: str, dtype: torch.dtype,
                  memo: dict[tuple[str, int], int]) -> None:
    """``check_evaluation``'s refusal of a working set beyond the free memory, with each model's
    peak measured once per prompt length (a dry run of a large model costs about a second, and
    the capabilities of a suite share their n). A model that cannot take the prompts is left to
    the first chunk (:func:`_try`)."""
    check_evaluation(task, estimators, samples, seed, n=n, device=device, dtype=dtype)
    batch = min(CHUNK, samples)
    x = torch.empty(batch, n, task.d, device="meta", dtype=dtype)
    y = torch.empty(batch, n, device="meta", dtype=dtype)
    worst = 0
    for label, model in models.items():
        if (label, n) not in memo:
            copy = dry(model)
            try:
                with torch.no_grad():
                    memo[label, n] = 0 if copy is None else peak_bytes(lambda f=copy: f(x, y))
            except (UsageError, ValueError, TypeError, RuntimeError):  # the first chunk tells why
                memo[label, n] = 0
        worst = max(worst, memo[label, n])
    check_fits(nbytes(x, y) + worst, resolve_device(device),
               f"evaluating {', '.join(models)} on {batch} prompts at a time of n={n} pairs in d={task.d}",
               "use fewer or smaller models, or a smaller --samples")


def measure(
    models: Mapping[str, Model], capability: Capability, base: Base, samples: int, seed: int = 0,
    *, dtype: torch.dtype | None = None, device: str = "cpu", memo: dict[tuple[str, int], int] | None = None,
) -> Measurement:
    """Squared errors of ``models`` and the references on ``samples`` prompts of ``capability``.

    Args:
        models: label -> a predictor ``(x (B, n, d), y (B, n)) -> (B, n)`` or a :class:`PerTask`.
        base: the setting the models were trained in (d, n, scales).
        samples: number of prompts N; seed: the prompts' seed (the same prompts for every model).
        dtype: of the prompts; by default :func:`prompts_dtype`.
        memo: the models' measured peak memory by (label, n), shared across capabilities.
    Returns:
        A :class:`Measurement`; a capability that cannot be built for ``base`` (or that no model
        takes: each raised on the first chunk of prompts) has no errors and every model in ``skipped``.
    """
    n = capability.length * base.n
    dtype = prompts_dtype(models) if dtype is None else dtype
    try:
        task = capability.build(base)
    except UsageError as err:
        return Measurement(capability, None, n, skipped={m: str(err) for m in models})
    result = Measurement(capability, task, n)
    predictors = {label: _predictor(model, task) for label, model in models.items()}
    estimators = {"reference": build_estimator(capability.reference, task=task),
                  "zero": build_estimator("zero"), "ols": build_estimator("ols")}
    _check_memory(task, predictors, estimators, samples, seed, n, device, dtype, {} if memo is None else memo)
    parts: dict[str, list[Tensor]] = {label: [] for label in predictors}
    base_parts: dict[str, list[Tensor]] = {label: [] for label in estimators}
    for chunk in range(math.ceil(samples / CHUNK)):
        batch = min(CHUNK, samples - chunk * CHUNK)
        prompts = task.sample(batch, seed, chunk, n=n, device=device, dtype=dtype)
        for label, f in list(predictors.items()):
            out = _try(f, prompts.x, prompts.y) if chunk == 0 else _call(f, prompts.x, prompts.y)
            if isinstance(out, str):
                result.skipped[label] = out
                del predictors[label], parts[label]
                continue
            parts[label].append((out - prompts.y).square().to(device="cpu", dtype=torch.float64))
        if not predictors:
            return result
        for label, f in estimators.items():
            err = (_call(f, prompts.x, prompts.y) - prompts.y).square()
            base_parts[label].append(err.to(device="cpu", dtype=torch.float64))
    result.errors = {label: torch.cat(p) for label, p in parts.items()}
    result.baselines = {label: torch.cat(p) for label, p in base_parts.items()}
    return result


# --- statistics ------------------------------------------------------------------------------
def mean_ci(values: Tensor) -> tuple[float, list[float]]:
    """Mean of per-prompt values (N,) and its normal 95% interval."""
    mean = float(values.mean())
    half = Z95 * float(values.std()) / math.sqrt(values.numel()) if values.numel() > 1 else math.inf
    return mean, [mean - half, mean + half]


def ratio_ci(a: Tensor, b: Tensor) -> tuple[float, list[float]]:
    """mean(a) / mean(b) for paired per-prompt values and its delta-method 95% interval."""
    mb = float(b.mean())
    if mb == 0:
        return math.nan, [math.nan, math.nan]
    r = float(a.mean()) / mb
    resid = a - r * b  # var(a - R b) = var a - 2 R cov(a, b) + R^2 var b
    half = Z95 * float(resid.std()) / (math.sqrt(a.numel()) * abs(mb))
    return r, [r - half, r + half]


def _at(curve: Tensor, k: int) -> float | None:
    return float(curve[k]) if 0 <= k < curve.numel() else None


def summary(measurement: Measurement, label: str, train_n: int) -> dict[str, Any]:
    """One model's row on one capability (JSON-ready); ``{"applicable": False, "reason": ...}``
    when the capability does not apply to it."""
    if label in measurement.skipped:
        return {"applicable": False, "reason": measurement.skipped[label]}
    e, r = measurement.errors[label], measurement.baselines
    a = (e - r["reference"]).mean(1)  # (N,) per-prompt excess over the reference
    b = (r["zero"] - r["reference"]).mean(1)
    excess, excess_ci = mean_ci(a)
    gap, gap_ci = ratio_ci(a, b)
    icl, icl_ci = ratio_ci((e - r["zero"]).mean(1), (r["ols"] - r["zero"]).mean(1))
    curve = e.mean(0)
    half = Z95 * e.std(0) / math.sqrt(e.shape[0])
    return {
        "applicable": True,
        "excess": excess, "excess_ci95": excess_ci,
        "normalised": 1 - gap, "normalised_ci95": [1 - gap_ci[1], 1 - gap_ci[0]],
        "icl_regression_score": icl, "icl_regression_score_ci95": icl_ci,
        "mse_at_train_n": _at(curve, train_n - 1), "mse_at_2train_n": _at(curve, 2 * train_n - 1),
        "mse": curve.tolist(), "ci95": torch.stack([curve - half, curve + half], -1).tolist(),
    }


def capability_info(measurement: Measurement) -> dict[str, Any]:
    """What a capability was: its task, prompt length, reference and the references' curves."""
    c = measurement.capability
    info: dict[str, Any] = {"task": None if measurement.task is None else measurement.task.describe(),
                            "n": measurement.n, "reference": c.reference, "exact": c.exact(),
                            "reference_label": c.reference_label(), "k": list(range(measurement.n))}
    for label in ("reference", "zero", "ols"):
        if label in measurement.baselines:
            info[f"{label}_mse"] = measurement.baselines[label].mean(0).tolist()
    return info


def _excess(measurement: Measurement, labels: list[str]) -> Tensor:
    """Per-prompt excess over the reference (N,), averaged over ``labels`` (a seed group's members)."""
    e, reference = measurement.errors, measurement.baselines["reference"]
    return torch.stack([(e[label] - reference).mean(1) for label in labels]).mean(0)


def _welch(a: list[float], b: list[float]) -> list[float] | None:
    """The 95% Welch t interval of mean(a) - mean(b) across seeds (None below two seeds a side)."""
    if len(a) < 2 or len(b) < 2:
        return None
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    va, vb = float(ta.var()) / len(a), float(tb.var()) / len(b)
    diff, se = float(ta.mean() - tb.mean()), math.sqrt(va + vb)
    if se == 0:
        return [diff, diff]
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    return [diff - half, diff + half]


def paired_difference(measurement: Measurement, a: str | list[str], b: str | list[str]) -> dict[str, Any]:
    """Model ``a`` minus model ``b`` on the same prompts: the excess and normalised score
    differences with 95% intervals, and whether the excess difference is significant (its
    interval excludes 0).

    ``a`` and ``b`` may be lists of labels (seed groups): their per-prompt excess is averaged
    over the members that take the capability, so the difference is that of the seed-mean rows,
    paired on the prompts; its interval holds the trained members fixed. With two or more
    members a side, ``excess_difference_seeds_ci95`` is the Welch t interval across seeds (the
    variation of training as well)."""
    a_labels, b_labels = ([v] if isinstance(v, str) else list(v) for v in (a, b))
    a_in = [m for m in a_labels if m not in measurement.skipped]
    b_in = [m for m in b_labels if m not in measurement.skipped]
    if not a_in or not b_in:
        out = next(m for m in [*a_labels, *b_labels] if m in measurement.skipped)
        return {"applicable": False, "reason": measurement.skipped[out]}
    da, db = _excess(measurement, a_in), _excess(measurement, b_in)
    r = measurement.baselines
    zero = (r["zero"] - r["reference"]).mean(1)
    diff, diff_ci = mean_ci(da - db)
    # normalised(a) - normalised(b) = -mean(da - db) / mean(zero)
    ratio, ratio_ci95 = ratio_ci(da - db, zero)
    out: dict[str, Any] = {
        "applicable": True, "members": [len(a_in), len(b_in)],
        "excess_difference": diff, "excess_difference_ci95": diff_ci,
        "normalised_difference": -ratio, "normalised_difference_ci95": [-ratio_ci95[1], -ratio_ci95[0]],
        "significant": not diff_ci[0] <= 0 <= diff_ci[1]}
    seeds = _welch([float(_excess(measurement, [m]).mean()) for m in a_in],
                   [float(_excess(measurement, [m]).mean()) for m in b_in])
    if seeds is not None:
        out["excess_difference_seeds_ci95"] = seeds
    return out


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def strict(value: Any) -> Any:
    """``value`` as strict JSON: a float that is not finite (a diverging model's error overflowed
    to inf, or inf - inf) becomes None, and every applicable row (a dict with ``"applicable":
    True``) gets ``"diverges"``: whether any of its numbers was not finite."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        out = {k: strict(v) for k, v in value.items()}
        if value.get("applicable") is True:
            out["diverges"] = not _finite(value)
        return out
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def score(
    models: Mapping[str, Model], capabilities: tuple[Capability, ...], base: Base, samples: int = 512,
    seed: int = 0, *, dtype: torch.dtype | None = None, device: str = "cpu",
) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Every model on every capability, on shared prompts.

    Returns:
        (``results``: model label -> capability -> :func:`summary` row, and the
        :class:`Measurement` of each capability, for paired comparisons).
    """
    check(2 <= samples <= MAX_SAMPLES, f"--samples must lie in [2, {MAX_SAMPLES:,}], got {samples:,}")
    memo: dict[tuple[str, int], int] = {}
    measured = {c.name: measure(models, c, base, samples, seed, dtype=dtype, device=device, memo=memo)
                for c in capabilities}
    results = {label: {name: summary(m, label, base.n) for name, m in measured.items()} for label in models}
    return results, measured
