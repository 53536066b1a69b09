"""Promotion at fidelity rungs: whether an evaluation that just ended a rung goes on.

An evaluator that passes rungs (``boot``, ``short``, ...; see
:class:`~deploytune.evaluators.base.Monitor`) streams the metrics measured so far at the end of
each. The rungs are prefixes of one evaluation: going on costs only the rest of it (a server is
not started twice), and stopping saves the rest. This module decides, at each rung, from the
study's own runs:

* **A learned correction per rung and metric.** Every earlier run that ended that rung and went
  on to the end gives a pair (the metric at the rung, the metric at the end). Their log-ratios
  (differences where a value is not positive) have a mean, the rung's bias (a short load test
  under-reports the tail latency of a long one; a simulator is off by a factor), and a spread,
  the rung's noise plus the end's. The metric at the end is predicted as normal around the
  rung's value shifted by the mean, with that spread (times ``sqrt(1 + 1/n)`` for the mean's
  own uncertainty). Until ``min_pairs`` runs give a pair, nothing is known about the rung and
  the run goes on. ``min_pairs`` is :attr:`EarlyAbort.min_pairs
  <deploytune.early_abort.EarlyAbort.min_pairs>`.
* **The decision.** From the predictions: the probability that every constraint the rung
  measured holds at the end, and, once the study has a feasible run, that the objective at the
  end beats the best feasible value so far. The run stops when their product, the probability
  that it becomes the new best feasible configuration, is below ``stop_below``
  (:attr:`EarlyAbort.promote_below <deploytune.early_abort.EarlyAbort.promote_below>`). A
  constraint or objective the rung did not measure (``boot`` reports memory, not latency) does
  not count.

A run stopped at a rung is recorded as aborted, with the metrics the correction predicts at its
end (:func:`predicted_end`; the rung's raw metrics stay in the trial's rungs): the samplers learn
from it (constraint and objective models take aborted runs with their partial measurements),
and it is never recommended. The hard early-abort rule (:mod:`deploytune.early_abort`) still
applies to every report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import norm

from deploytune.history import TrialRecord
from deploytune.outcome import Constraint, Objective, Outcome, Status

__all__ = ["STOPPED", "Correction", "correction", "incumbent", "predicted_end",
           "record_predicted_end", "rung_reason"]

STOPPED = "not promoted past rung"
"""How the reason of every stop by the rung rule begins."""


def rung_reason(rung: str, partial: Mapping[str, float], history: Sequence[TrialRecord],
                objective: Objective, constraints: Sequence[Constraint], stop_below: float,
                min_pairs: int) -> str | None:
    """Why the run that just ended ``rung`` with ``partial`` metrics should stop there, or
    ``None`` to let it go on (see the module docstring).

    Args:
        rung: The rung just ended.
        partial: The metrics measured so far.
        history: The study's finished evaluations.
        objective: The objective.
        constraints: The constraints.
        stop_below: Stop when the probability that the run ends as the new best feasible
            configuration is below this.
        min_pairs: Runs that must have gone from the rung to the end before its correction of
            a metric is used.
    """
    chances: list[str] = []
    p_best = 1.0
    for c in constraints:
        p = _probability(rung, c.metric, partial, history, min_pairs, c.limit,
                         above=c.op == ">=")
        if p is not None:
            p_best *= p
            chances.append(f"P({c}) = {p:.2g}")
    best = incumbent(history, objective)
    if best is not None:
        p = _probability(rung, objective.metric, partial, history, min_pairs, best,
                         above=objective.direction == "maximize")
        if p is not None:
            p_best *= p
            chances.append(f"P(better than {best:g}) = {p:.2g}")
    if chances and p_best < stop_below:
        return (f"{STOPPED} {rung}: {', '.join(chances)} at the end, from the study's runs "
                f"that went on from this rung")
    return None


def predicted_end(rung: str, metrics: Mapping[str, float], history: Sequence[TrialRecord],
                  min_pairs: int) -> dict[str, float]:
    """``metrics`` measured at ``rung``, each metric that at least ``min_pairs`` of the study's
    runs carried from the rung to the end replaced by its predicted median at the end.

    A run the rung rule stopped is recorded with these: the samplers then learn what the study
    expects at the end (an estimator's latency corrected by its measured bias), not the rung's
    raw values; the raw values stay with the trial's rungs.
    """
    out = dict(metrics)
    for metric, value in metrics.items():
        found = _prediction(rung, metric, value, history, min_pairs)
        if found is not None:
            centre, _, log = found
            out[metric] = math.exp(centre) if log else centre
    return out


def record_predicted_end(outcome: Outcome, history: Sequence[TrialRecord],
                         objective: Objective, constraints: Sequence[Constraint],
                         min_pairs: int) -> None:
    """Give a run the rung rule stopped, as its metrics, objective value and violations, what
    the study predicts at its end (:func:`predicted_end` of the rung it stopped at); any other
    ``outcome`` is left as it is."""
    from deploytune.evaluators.base import Evaluation
    from deploytune.execution import outcome_of

    if outcome.status is not Status.ABORTED or not outcome.rungs or \
            not (outcome.error or "").startswith(STOPPED):
        return
    rung = list(outcome.rungs)[-1]
    predicted = predicted_end(rung, outcome.rungs[rung], history, min_pairs)
    judged = outcome_of(Evaluation({**outcome.metrics, **predicted}, aborted=outcome.error),
                        objective, constraints)
    outcome.metrics, outcome.value, outcome.violations = \
        judged.metrics, judged.value, judged.violations


@dataclass(frozen=True)
class Correction:
    """What the study's runs say about a metric at the end, given its value at a rung.

    Attributes:
        shift: Mean of end minus rung (of the logarithms when ``log``).
        spread: Standard deviation of those differences (0 with identical differences).
        pairs: How many runs gave a pair.
        log: Whether the differences are of logarithms (every value positive).
    """

    shift: float
    spread: float
    pairs: int
    log: bool

    def predict(self, value: float) -> tuple[float, float]:
        """Mean and standard deviation of the metric at the end (on the log scale when
        :attr:`log`) for ``value`` at the rung."""
        centre = (math.log(value) if self.log else value) + self.shift
        return centre, self.spread * math.sqrt(1.0 + 1.0 / self.pairs)


def correction(rung: str, metric: str, history: Sequence[TrialRecord]) -> Correction | None:
    """The correction of ``metric`` from ``rung`` to the end, from the runs of ``history``
    that ended ``rung`` and went to the end (feasible or infeasible); ``None`` without any."""
    pairs = [(r.rungs[rung][metric], r.metrics[metric]) for r in history
             if r.status in (Status.FEASIBLE, Status.INFEASIBLE) and rung in r.rungs
             and metric in r.rungs[rung] and metric in r.metrics
             and math.isfinite(r.rungs[rung][metric]) and math.isfinite(r.metrics[metric])]
    if not pairs:
        return None
    log = all(a > 0 and b > 0 for a, b in pairs)
    diffs = [math.log(b) - math.log(a) if log else b - a for a, b in pairs]
    mean = sum(diffs) / len(diffs)
    spread = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) \
        if len(diffs) > 1 else 0.0
    return Correction(mean, spread, len(diffs), log)


def incumbent(history: Sequence[TrialRecord], objective: Objective) -> float | None:
    """The best objective value of a feasible run of ``history`` (``None``: none)."""
    values = [r.value for r in history if r.feasible and r.value is not None
              and math.isfinite(r.value)]
    if not values:
        return None
    return max(values) if objective.direction == "maximize" else min(values)


def _prediction(rung: str, metric: str, value: float | None, history: Sequence[TrialRecord],
                min_pairs: int) -> tuple[float, float, bool] | None:
    """Mean and spread of ``metric`` at the end given ``value`` at ``rung``, and whether they
    are on the log scale; ``None`` when the rung did not measure it or fewer than
    ``min_pairs`` runs say how it carries to the end."""
    if value is None or not math.isfinite(value):
        return None
    fix = correction(rung, metric, history)
    if fix is None or fix.pairs < min_pairs or (fix.log and value <= 0):
        return None
    centre, sd = fix.predict(value)
    return centre, sd, fix.log


def _probability(rung: str, metric: str, partial: Mapping[str, float],
                 history: Sequence[TrialRecord], min_pairs: int, threshold: float,
                 above: bool) -> float | None:
    """P(``metric`` at the end is above (or below) ``threshold``) given its value at ``rung``
    (``None`` as :func:`_prediction`, or for a positive metric against a threshold <= 0)."""
    found = _prediction(rung, metric, partial.get(metric), history, min_pairs)
    if found is None:
        return None
    centre, sd, log = found
    if log and threshold <= 0:
        return None
    at = math.log(threshold) if log else threshold
    if sd <= 0:
        return 1.0 if (centre > at if above else centre <= at) else 0.0
    z = (at - centre) / sd
    return float(norm.sf(z) if above else norm.cdf(z))
