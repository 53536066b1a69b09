"""An evaluator with a cheap estimator in front: the fidelity rung ``estimate``.

An estimator (an analytic model, a simulator such as AIConfigurator's or Vidur's) predicts a
configuration's metrics in milliseconds, biased by a factor the user does not know (5 % to
4.6x for serving simulators). :class:`EstimatedEvaluator` calls it first and hands its
prediction to the monitor as the rung :data:`ESTIMATE_RUNG`; the tuner's rung rule
(:mod:`deploytune.promotion`) corrects it by what the study's real runs showed about the
estimator (every run that went on carries both its estimate and its measurement) and stops the
trial before its evaluation starts when the corrected prediction makes it unlikely to end as the
new best feasible configuration. Until ``min_pairs`` runs measured a metric, nothing is
stopped. An estimate is not a measurement: the hard early-abort rule (``k x limit``) never
judges it, and its metrics are not merged into the evaluation's.

An estimator that raises or returns anything but a mapping of numbers gives no estimate: the
evaluation runs as without one (the error is kept in the evaluation's ``info``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from deploytune.evaluators.base import AbortTrial, Evaluation, Evaluator, Monitor, numeric_metrics

__all__ = ["ESTIMATE_RUNG", "EstimatedEvaluator"]

ESTIMATE_RUNG = "estimate"
"""The name of the estimator's rung, the cheapest: it comes before the evaluation starts."""


class EstimatedEvaluator(Evaluator):
    """``inner`` with ``estimate`` as its rung 0 (see the module docstring).

    Args:
        inner: The real evaluator.
        estimate: ``config -> metrics``, cheap; called in the tuner's process.
        cost_s: The seconds one estimate is charged (``None``: the seconds it took here; a
            benchmark of simulated seconds gives the estimator's simulated cost).
    """

    def __init__(self, inner: Evaluator, estimate: Callable[[dict[str, Any]], Mapping[str, Any]],
                 cost_s: float | None = None):
        if not callable(estimate):
            raise TypeError(f"estimate: expected a callable config -> metrics, got "
                            f"{type(estimate).__name__}")
        self.inner = inner
        self.estimate = estimate
        self.cost_s = cost_s
        self.timeout_s = inner.timeout_s

    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Estimate ``config``, then, unless the rung rule stops it there, evaluate it."""
        start = time.monotonic()
        try:
            raw = self.estimate(dict(config))
            predicted = numeric_metrics(raw) if isinstance(raw, Mapping) else None
            problem = None if predicted is not None else \
                f"the estimator returned {type(raw).__name__}, not a dict of metrics"
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            predicted, problem = None, f"{type(exc).__name__}: {exc}"
        spent = time.monotonic() - start if self.cost_s is None else self.cost_s
        if predicted:
            try:
                monitor.estimate(predicted, ESTIMATE_RUNG)
            except AbortTrial as stop:
                return Evaluation(dict(predicted), aborted=stop.reason, cost_s=spent)
        evaluation = self.inner.evaluate(config, monitor)
        evaluation.cost_s += spent
        if problem is not None:
            evaluation.info["estimate_error"] = problem
        return evaluation

    def close(self) -> None:
        """Close the real evaluator."""
        self.inner.close()

    def describe(self) -> str:
        """The real evaluator's description, with its estimator."""
        name = getattr(self.estimate, "__qualname__", type(self.estimate).__name__)
        return f"{self.inner.describe()}, estimated first by {name}"
