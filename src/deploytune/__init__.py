"""deploytune: find the best feasible way to deploy or serve an ML model.

Most deployment configurations crash, run out of memory or miss their latency target, and
each try is expensive. deploytune spends a tiny budget of real evaluations and returns the best
*feasible* configuration, one that stays feasible when re-run. The default sampler, ``cabo``
(:mod:`deploytune.samplers.cabo`), models where configurations crash, where they miss each
constraint (with each region's measurement noise), what they would score and what a failure
would cost; :mod:`deploytune.feasibility` turns every run of a configuration into the chance
that a fresh run is feasible, and the recommendation is the best configuration that meets it.

Names are imported lazily, so ``from deploytune import InvalidConfig`` in an evaluation script
(run in a child process) does not import Optuna.

Example:
    >>> import deploytune
    >>> space = deploytune.Space.from_dict({
    ...     "batch_size": {"type": "int", "low": 1, "high": 64, "log": True}})
    >>> result = deploytune.optimize(lambda c: {"throughput": c["batch_size"] * 10.0,
    ...                                         "latency_ms": c["batch_size"] * 1.5},
    ...                              space, objective="throughput",
    ...                              constraints=["latency_ms <= 30"], budget=15, seed=0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Constraint": "deploytune.outcome",
    "CrashKind": "deploytune.outcome",
    "InvalidConfig": "deploytune.outcome",
    "Objective": "deploytune.outcome",
    "Outcome": "deploytune.outcome",
    "Status": "deploytune.outcome",
    "TransientError": "deploytune.outcome",
    "Categorical": "deploytune.space",
    "Float": "deploytune.space",
    "Int": "deploytune.space",
    "Space": "deploytune.space",
    "EarlyAbort": "deploytune.early_abort",
    "CommandEvaluator": "deploytune.evaluators.command",
    "FunctionEvaluator": "deploytune.evaluators.base",
    "IsolatedEvaluator": "deploytune.evaluators.isolated",
    "Rule": "deploytune.evaluators.classify",
    "Result": "deploytune.result",
    "TrialRecord": "deploytune.history",
    "TuningStopped": "deploytune.tuner",
    "SamplerFailed": "deploytune.tuner",
    "MetricNotReported": "deploytune.tuner",
    "optimize": "deploytune.tuner",
    "make_sampler": "deploytune.samplers",
}
_RENAMED = {"available_samplers": ("deploytune.samplers", "available")}

__all__ = [
    "Categorical",
    "CommandEvaluator",
    "Constraint",
    "CrashKind",
    "EarlyAbort",
    "Float",
    "FunctionEvaluator",
    "Int",
    "InvalidConfig",
    "IsolatedEvaluator",
    "MetricNotReported",
    "Objective",
    "Outcome",
    "Result",
    "Rule",
    "SamplerFailed",
    "Space",
    "Status",
    "TransientError",
    "TrialRecord",
    "TuningStopped",
    "__version__",
    "available_samplers",
    "make_sampler",
    "optimize",
]

if TYPE_CHECKING:
    from deploytune.early_abort import EarlyAbort
    from deploytune.evaluators.base import FunctionEvaluator
    from deploytune.evaluators.classify import Rule
    from deploytune.evaluators.command import CommandEvaluator
    from deploytune.evaluators.isolated import IsolatedEvaluator
    from deploytune.history import TrialRecord
    from deploytune.outcome import (
        Constraint,
        CrashKind,
        InvalidConfig,
        Objective,
        Outcome,
        Status,
        TransientError,
    )
    from deploytune.result import Result
    from deploytune.samplers import available as available_samplers
    from deploytune.samplers import make_sampler
    from deploytune.space import Categorical, Float, Int, Space
    from deploytune.tuner import MetricNotReported, SamplerFailed, TuningStopped, optimize


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'deploytune' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
