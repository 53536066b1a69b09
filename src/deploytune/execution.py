"""Running one trial: evaluate, classify, retry transient failures, judge.

The same for every evaluator. :func:`run_trial` hands the configuration to an
:class:`~deploytune.evaluators.base.Evaluator`, classifies a crash with the user's rules
(:func:`~deploytune.evaluators.classify.classify`), runs the configuration again after a
``transient`` failure (up to ``retries`` times; such failures never count against the
configuration), and judges the metrics against the objective and the constraints. Nothing an
evaluated configuration does can raise out of here, except ``KeyboardInterrupt``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from deploytune.evaluators.base import Evaluation, Evaluator, Monitor, numeric_metrics
from deploytune.evaluators.classify import Rule, classify
from deploytune.outcome import Constraint, CrashKind, Objective, Outcome, judge

__all__ = ["estimate_seconds_saved", "outcome_of", "run_trial"]

_MIN_PROGRESS = 0.1
"""Below this streamed progress, the pace is mostly start-up: not used for estimates."""

_RETRY_PAUSE_S = 0.2
"""Pause before retrying a transient failure, doubled on each further retry (max 2 s)."""


def outcome_of(evaluation: Evaluation, objective: Objective,
               constraints: Sequence[Constraint], rules: Sequence[Rule] = ()) -> Outcome:
    """Judge one :class:`Evaluation`: a crash (classified), an early abort, or metrics."""
    kind = classify(evaluation, rules)
    if kind is not None:
        error = evaluation.error or "crashed"
        return Outcome.crashed(kind, error, evaluation.cost_s,
                               numeric_metrics(evaluation.metrics)).with_log(evaluation.log)
    if evaluation.aborted is not None:
        outcome = judge(evaluation.metrics, objective, constraints, evaluation.cost_s,
                        aborted=True)
        outcome.error = evaluation.aborted
        return outcome
    outcome = judge(evaluation.metrics, objective, constraints, evaluation.cost_s)
    outcome.log = evaluation.log if outcome.crash_kind is not None else ""
    return outcome


def estimate_seconds_saved(elapsed_s: float, partial: dict[str, float],
                           full_run_costs: Sequence[float],
                           time_limit_s: float | None = None) -> float | None:
    """Estimate what an early abort after ``elapsed_s`` saved.

    With a streamed ``progress`` fraction of at least 0.1: the remaining time at that pace
    (below that, start-up dominates the pace and the estimate explodes). Otherwise: the median
    duration of the study's runs that went to the end, minus the time already spent. Never more
    than what was left of the trial's time limit. ``None`` when there is nothing to estimate
    from, or when the run had already outlasted that median (how much longer it would have run
    is unknown: not 0).

    .. note:: A rough estimate: the pace includes the run's start-up (process, imports), and
       aborted configurations are usually slower than the median run.
       ``deploytune bench early-abort`` measures the real saving.
    """
    progress = partial.get("progress")
    if progress is not None and _MIN_PROGRESS <= progress < 1 and math.isfinite(progress):
        saved = max(0.0, elapsed_s / progress - elapsed_s)
    elif full_run_costs and statistics.median(full_run_costs) > elapsed_s:
        saved = statistics.median(full_run_costs) - elapsed_s
    else:
        return None  # nothing to go by, or the run had outlasted the median: unknown, not 0
    if time_limit_s is not None and math.isfinite(time_limit_s):
        saved = min(saved, max(0.0, time_limit_s - elapsed_s))
    return saved


def run_trial(
    evaluator: Evaluator,
    config: dict[str, Any],
    objective: Objective,
    constraints: Sequence[Constraint],
    *,
    new_monitor: Callable[[], Monitor] = Monitor,
    rules: Sequence[Rule] = (),
    retries: int = 2,
    full_run_costs: Sequence[float] = (),
    pause: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Evaluate ``config`` once, or more often if it fails transiently, and judge the result.

    Args:
        evaluator: Runs the configuration.
        config: The configuration.
        objective: The objective.
        constraints: The hard constraints.
        new_monitor: Makes the monitor (with the early-abort rule) for each attempt.
        rules: The user's classification rules.
        retries: How many times a ``transient`` failure is retried.
        full_run_costs: Durations of the study's runs that went to the end (for the estimate
            of the seconds an early abort saves).
        pause: Sleeps between retries (replaceable in tests).

    Returns:
        The :class:`Outcome`; ``cost_s`` adds up every attempt.
    """
    total_cost = 0.0
    attempts = 0
    while True:
        attempts += 1
        monitor = new_monitor()
        try:
            evaluation = evaluator.evaluate(dict(config), monitor)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # an evaluator bug must not kill the tuner either
            evaluation = Evaluation(dict(monitor.partial),
                                    error=f"the evaluator itself failed: "
                                          f"{type(exc).__name__}: {exc}",
                                    cost_s=monitor.elapsed_s)
        total_cost += evaluation.cost_s
        outcome = outcome_of(evaluation, objective, constraints, rules)
        if outcome.crash_kind is CrashKind.TRANSIENT and attempts <= retries:
            pause(min(2.0, _RETRY_PAUSE_S * 2 ** (attempts - 1)))
            continue
        break
    outcome.cost_s = total_cost
    outcome.attempts = attempts
    outcome.rungs = monitor.rungs
    if evaluation.aborted is not None:
        limit = evaluator.timeout_s
        outcome.seconds_saved = estimate_seconds_saved(
            evaluation.cost_s, numeric_metrics(evaluation.metrics), full_run_costs,
            None if limit is None else float(limit))
    return outcome
