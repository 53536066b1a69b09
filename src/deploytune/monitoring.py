"""The checks of one running evaluation's streamed reports: the early-abort rule
(:mod:`deploytune.early_abort`) and Optuna's pruner on the objective."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

import optuna

from deploytune.early_abort import EarlyAbort
from deploytune.outcome import Constraint, Objective

__all__ = ["make_check"]


_MAX_STEP = 2**31 - 1
"""The largest step Optuna's relational storages keep (a 32-bit integer column)."""


def _usable_step(step: Any) -> TypeGuard[int]:
    """Whether a streamed ``step`` can go to the pruner: an integer from 0 to 2**31 - 1.

    Anything else (-1, a 30-digit number, 2.5, ``True``) is the evaluator's mistake; the
    report still counts for early abort, only the pruner does not see it."""
    return (isinstance(step, int) and not isinstance(step, bool)
            and 0 <= step <= _MAX_STEP)


def make_check(early: EarlyAbort, objective: Objective, constraints: Sequence[Constraint],
               any_feasible: bool, trial: optuna.Trial,
               use_pruner: bool) -> Callable[[Mapping[str, float], int | None], str | None]:
    """The monitor's check of each streamed report: the early-abort rule's reason to stop,
    else the pruner's (fed the objective when ``use_pruner`` and the step is usable)."""

    def check(partial: Mapping[str, float], step: int | None) -> str | None:
        reason = early.reason(partial, constraints, any_feasible)
        if reason is not None:
            return reason
        if use_pruner and _usable_step(step) and objective.metric in partial:
            value = partial[objective.metric]
            if math.isfinite(value):
                trial.report(value, step)
                if trial.should_prune():
                    return f"pruned at step {step} ({objective.metric} = {value:g})"
        return None
    return check
