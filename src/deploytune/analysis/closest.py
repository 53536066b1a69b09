"""When nothing was feasible: which constraint stood in the way, and by how much."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from deploytune.outcome import Constraint, Status
from deploytune.tuner import Result, TrialRecord

__all__ = ["Closest", "closest_constraint", "metric_value", "violations"]

_RAN = (Status.FEASIBLE, Status.INFEASIBLE, Status.ABORTED)


class Closest(NamedTuple):
    """The constraint that stood in the way when nothing was feasible.

    Attributes:
        constraint: The most-violated constraint of the closest trial.
        trial: The trial with the smallest total normalised violation.
        shortfall: How far the trial's metric is past the limit, in the metric's unit (> 0).
    """

    constraint: Constraint
    trial: TrialRecord
    shortfall: float

    @property
    def value(self) -> float:
        """The trial's value of the constraint's metric."""
        return self.trial.metrics[self.constraint.metric]


def metric_value(rec: TrialRecord, metric: str) -> float | None:
    """The trial's value of ``metric``; ``None`` when it is missing or NaN."""
    v = rec.metrics.get(metric)
    return None if v is None or math.isnan(v) else v


def violations(rec: TrialRecord,
               constraints: Sequence[Constraint]) -> list[tuple[Constraint, float]]:
    """Violated constraints of ``rec`` with their normalised violation, worst first."""
    out = []
    for c in constraints:
        v = metric_value(rec, c.metric)
        if v is not None and c.violation(v) > 0:
            out.append((c, c.violation(v)))
    out.sort(key=lambda cv: -cv[1])
    return out


def closest_constraint(result: Result) -> Closest | None:
    """Which constraint was closest to being met, when nothing was feasible.

    Among the trials that ran (infeasible, and aborted ones with metrics), the one with the
    smallest total normalised violation is the closest; trials missing a constrained metric
    rank after those that measured every one. Its most-violated constraint and the shortfall in
    the metric's unit are returned: for ``p95_ms <= 20`` and a closest trial at 23.4, the
    shortfall is 3.4.

    Args:
        result: The result of a study.

    Returns:
        ``(constraint, trial, shortfall)``; ``None`` when a trial was feasible, when there are
        no constraints, or when no trial produced the constrained metrics.
    """
    if result.count(Status.FEASIBLE) or not result.constraints:
        return None
    best: tuple[tuple[int, float, int], TrialRecord, list[tuple[Constraint, float]]] | None = None
    for rec in result.trials:
        if rec.status not in _RAN:
            continue
        measured = [c for c in result.constraints if metric_value(rec, c.metric) is not None]
        violated = violations(rec, result.constraints)
        if not measured or not violated:
            continue
        key = (len(result.constraints) - len(measured), sum(v for _, v in violated), rec.number)
        if best is None or key < best[0]:
            best = (key, rec, violated)
    if best is None:
        return None
    _, rec, violated = best
    c = violated[0][0]
    return Closest(c, rec, -c.margin(rec.metrics[c.metric]))
