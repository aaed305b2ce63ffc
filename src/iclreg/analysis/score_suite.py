"""The capability suites of ``iclreg score``: the versioned standard suite and the suite-file format.

A suite is a named list of capabilities. Each capability is a prompt distribution written relative
to the setting a model was trained in (its :class:`Base`: d, the training length n, the prior
scale tau = ``w_std`` and the noise sigma = ``noise_std``), plus the reference predictor its
excess risk is measured against. A suite file is YAML::

    suite: my-suite-v1              # a name, printed with every score so numbers stay comparable
    capabilities:
      - name: isotropic             # a unique name
      - name: noise-high
        noise: 1.0                  # noise_std = noise * tau sqrt(d) (the signal's scale)
      - name: toeplitz
        task: gaussian:cov=toeplitz,rho=0.5   # a task SPEC; its keys override the base's
      - name: long
        length: 2                   # prompts of length * n pairs (n: the training length)
      - name: shifted-mean
        mean: 1.0                   # w_mean = mean * tau on every coordinate
      - name: sparse
        task: sparse:s=3
        reference: sparse_bayes     # an estimator SPEC (default bayes)

The base fills ``d``, ``n``, ``w_std`` and ``noise_std`` of every task unless the capability's
SPEC gives them. The reference is the exact Bayes predictor (the posterior mean) when it is
``bayes`` on a Gaussian prior (``gaussian``: any covariance of x, prior mean or noise) or
``sparse_bayes`` on a ``sparse`` task (the mixture over supports); elsewhere (``bayes`` on
another prior uses only its first two moments: the best predictor linear in y) the output says
"best available, not Bayes".

The standard suites are frozen: a change is a new version, so that scores stay comparable
across releases. ``standard-v1`` measured ``sparse-3`` against the best linear predictor;
``standard-v2`` (``--suite standard``, :data:`STANDARD_NAME`) is the same suite with the exact
Bayes reference there (``sparse_bayes``); ``standard-v1`` stays selectable and unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError, check
from ..estimators import ESTIMATORS
from ..spec import parse_spec
from ..tasks import TASKS, Task
from ..yamlfile import load as load_yaml

# reference -> the task families whose prior it is the exact posterior mean of (with no SPEC keys)
EXACT_BAYES = {"bayes": frozenset({"gaussian"}), "sparse_bayes": frozenset({"sparse"})}
KEYS = ("name", "task", "length", "noise", "mean", "reference")

_STANDARD = """\
suite: {name}
capabilities:
  - {{name: isotropic}}
  - {{name: noise-low, noise: 0.25}}
  - {{name: noise-high, noise: 1.0}}
  - {{name: toeplitz, task: "gaussian:cov=toeplitz,rho=0.5"}}
  - {{name: cond-100, task: "gaussian:cov=rotated,cond=100,cov_seed=0"}}
  - {{name: sparse-3, task: "sparse:s=3", reference: {sparse}}}
  - {{name: long-2x, length: 2}}
  - {{name: shifted-mean, mean: 1.0}}
"""
# standard-v1's sparse-3 reference is the best linear predictor (bayes on the prior's moments);
# standard-v2 differs only there: the exact posterior mean by enumerating the supports
STANDARDS = {"standard-v1": _STANDARD.format(name="standard-v1", sparse="bayes"),
             "standard-v2": _STANDARD.format(name="standard-v2", sparse="sparse_bayes")}
STANDARD_NAME = "standard-v2"  # what ``--suite standard`` means
STANDARD_TEXT = STANDARDS[STANDARD_NAME]


@dataclass(frozen=True)
class Base:
    """The setting a model was trained in, which every capability is written relative to.

    Attributes:
        d: input dimension; n: training prompt length in pairs; w_std: prior scale tau;
        noise_std: label noise sigma.
    """

    d: int
    n: int
    w_std: float = 1.0
    noise_std: float = 0.0

    @classmethod
    def of(cls, task: Task) -> Base:
        """The base of a model trained on ``task`` (its d, n, w_std and noise_std)."""
        return cls(task.d, task.n, float(task.w_std), float(task.noise_std))


@dataclass(frozen=True)
class Capability:
    """One capability: a task relative to the base, its prompt length and its reference.

    Attributes:
        name: unique in its suite.
        task: a task SPEC whose keys override the base's (default ``gaussian``).
        length: prompts of ``length * n`` pairs.
        noise: when given, noise_std = noise * w_std * sqrt(d).
        mean: when given, w_mean = mean * w_std (every coordinate).
        reference: the estimator SPEC the excess risk is measured against.
    """

    name: str
    task: str = "gaussian"
    length: int = 1
    noise: float | None = None
    mean: float | None = None
    reference: str = "bayes"

    def build(self, base: Base) -> Task:
        """The capability's task for a model of ``base`` (a :class:`UsageError` when it cannot
        be built for this base, e.g. ``sparse:s=3`` at d = 2: the capability is not applicable)."""
        spec = parse_spec(self.task)
        params: dict[str, Any] = {"d": base.d, "n": self.length * base.n, "w_std": base.w_std,
                                  "noise_std": base.noise_std}
        if self.noise is not None:
            params["noise_std"] = self.noise * base.w_std * math.sqrt(base.d)
        if self.mean is not None:
            params["w_mean"] = self.mean * base.w_std
        params.update(spec.params)
        text = ",".join(f"{k}={_spec_value(v)}" for k, v in params.items())
        return TASKS.build(f"{spec.name}:{text}")

    def exact(self) -> bool:
        """Whether the reference is the exact Bayes-optimal predictor."""
        reference = parse_spec(self.reference)
        return not reference.params and parse_spec(self.task).name in EXACT_BAYES.get(reference.name, ())

    def reference_label(self) -> str:
        """The reference as the output names it."""
        return f"{self.reference} ({'exact Bayes' if self.exact() else 'best available, not Bayes'})"


def _spec_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_spec_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of capabilities."""

    name: str
    capabilities: tuple[Capability, ...]


def load_suite(which: str) -> Suite:
    """``standard`` (``standard-v2``), ``standard-v1``, ``standard-v2`` or the path of a suite
    file (module docstring)."""
    if which == "standard" or which in STANDARDS:
        name = STANDARD_NAME if which == "standard" else which
        return parse_suite(STANDARDS[name], name)
    path = Path(which)
    check(path.is_file(), f"--suite '{which}' is neither 'standard' ({', '.join(STANDARDS)}) nor an existing "
                          "suite file (YAML)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read the suite file '{path}': {str(err).splitlines()[0]}") from None
    return parse_suite(text, f"'{path}'")


def parse_suite(text: str, what: str) -> Suite:
    """Parse and validate a suite file's text; every problem is a one-line :class:`UsageError`."""
    try:
        data = load_yaml(text, what)
    except yaml.YAMLError as err:
        raise UsageError(f"the suite file {what} is malformed YAML: {str(err).splitlines()[0]}") from None
    check(isinstance(data, dict) and set(data) <= {"suite", "capabilities"},
          f"the suite file {what} must be a mapping with the keys 'suite' and 'capabilities'")
    name, items = data.get("suite"), data.get("capabilities")
    check(isinstance(name, str) and bool(name.strip()),
          f"the suite file {what} needs 'suite: NAME' (a version)")
    check(isinstance(items, list) and bool(items),
          f"the suite file {what} needs a non-empty list 'capabilities'")
    capabilities = tuple(_capability(item, what) for item in items)
    names = [c.name for c in capabilities]
    twice = sorted({n for n in names if names.count(n) > 1})
    check(not twice, f"the suite file {what} names capability '{twice[0] if twice else ''}' twice")
    return Suite(name.strip(), capabilities)


def _capability(item: Any, what: str) -> Capability:
    check(isinstance(item, dict), f"every capability in {what} must be a mapping, got {item!r}")
    unknown = sorted(set(map(str, item)) - set(KEYS))
    check(not unknown, f"unknown key '{unknown[0] if unknown else ''}' in a capability of {what}; "
                       f"the keys are {', '.join(KEYS)}")
    name = item.get("name")
    check(isinstance(name, str) and bool(name) and name.replace("-", "").replace("_", "").isalnum(),
          f"a capability of {what} needs a name of letters, digits, '-' and '_', got {name!r}")
    where = f"capability '{name}' of {what}"
    task, reference = item.get("task", "gaussian"), item.get("reference", "bayes")
    check(isinstance(task, str), f"{where}: task must be a SPEC string, got {task!r}")
    check(isinstance(reference, str), f"{where}: reference must be an estimator SPEC, got {reference!r}")
    check(parse_spec(task).name in TASKS, f"{where}: unknown task '{parse_spec(task).name}'; "
                                          f"known: {', '.join(TASKS.names())}")
    check(parse_spec(reference).name in ESTIMATORS,
          f"{where}: unknown estimator '{parse_spec(reference).name}'")
    length = item.get("length", 1)
    check(isinstance(length, int) and not isinstance(length, bool) and 1 <= length <= 100,
          f"{where}: length must be an integer in [1, 100], got {length!r}")
    for key in ("noise", "mean"):
        value = item.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        check(value is None or number, f"{where}: {key} must be a finite number, got {value!r}")
    check(item.get("noise") is None or item["noise"] >= 0,
          f"{where}: noise must be >= 0, got {item.get('noise')}")
    return Capability(name, task, length, _float(item.get("noise")), _float(item.get("mean")), reference)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
