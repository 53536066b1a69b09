"""deploytune: find the best feasible way to deploy or serve an ML model.

Most deployment configurations crash, run out of memory or miss their latency target, and
each try is expensive. deploytune spends a tiny budget of real evaluations and returns the best
*feasible* configuration, using Thermal Budget Annealing (feasible-first, crash-aware simulated
annealing) handed off to Optuna's TPE.

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

from deploytune.outcome import (
    Constraint,
    CrashKind,
    InvalidConfig,
    Objective,
    Outcome,
    Status,
    TransientError,
)
from deploytune.samplers import available as available_samplers
from deploytune.samplers import make_sampler
from deploytune.space import Categorical, Float, Int, Space
from deploytune.tuner import Result, TrialRecord, optimize

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Constraint",
    "CrashKind",
    "Float",
    "Int",
    "InvalidConfig",
    "Objective",
    "Outcome",
    "Result",
    "Space",
    "Status",
    "TransientError",
    "TrialRecord",
    "__version__",
    "available_samplers",
    "make_sampler",
    "optimize",
]
