"""The checks of one running evaluation's streamed reports: the early-abort rule
(:mod:`deploytune.early_abort`), its rung rule at the end of a fidelity rung
(:mod:`deploytune.promotion`) and Optuna's pruner on the objective."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import optuna

from deploytune.early_abort import EarlyAbort
from deploytune.evaluators.base import AbortCheck
from deploytune.evaluators.estimated import ESTIMATE_RUNG
from deploytune.history import ATTR_REPEAT_OF, TrialRecord
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
               history: Sequence[TrialRecord], trial: optuna.Trial,
               use_pruner: bool) -> AbortCheck:
    """The monitor's check of each streamed report: the early-abort rule's reason to stop,
    else, at the end of a rung, the rung rule's (judged from ``history``, the study's finished
    evaluations), else the pruner's (fed the objective when ``use_pruner`` and the step is
    usable). A deliberate re-run of a configuration (a finalist's, an uncertain incumbent's)
    is never stopped by the rung rule: it is run to be measured again, not to be screened."""
    any_feasible = any(r.feasible for r in history)
    screened = trial.user_attrs.get(ATTR_REPEAT_OF) is None

    def check(partial: Mapping[str, float], step: int | None, rung: str | None) -> str | None:
        if rung == ESTIMATE_RUNG:  # a prediction, not a measurement: only the rung rule
            return early.rung_reason(rung, partial, history, objective, constraints) \
                if screened else None
        reason = early.reason(partial, constraints, any_feasible)
        if reason is None and rung is not None and screened:
            reason = early.rung_reason(rung, partial, history, objective, constraints)
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
