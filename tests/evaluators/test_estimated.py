"""The estimator's rung: a cheap, biased prediction before the evaluation, corrected by what
the study's real runs showed, and the budget it does not spend."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

import deploytune
from deploytune.evaluators.base import AbortTrial, FunctionEvaluator, Monitor
from deploytune.evaluators.estimated import ESTIMATE_RUNG, EstimatedEvaluator
from deploytune.outcome import Status


def _measure(config: dict[str, Any]) -> dict[str, float]:
    return {"p95_ms": 10.0 * config["batch"], "tokens_per_s": 100.0 * config["batch"]}


def _estimate(config: dict[str, Any]) -> dict[str, float]:
    """Off by a factor the user does not know: latency half the truth."""
    return {"p95_ms": 5.0 * config["batch"], "tokens_per_s": 100.0 * config["batch"]}


def test_the_estimate_is_a_rung_but_not_a_measurement() -> None:
    calls: list[tuple[dict[str, float], str | None]] = []

    def check(partial: dict[str, float], step: int | None, rung: str | None) -> str | None:
        calls.append((dict(partial), rung))
        return None

    monitor = Monitor(check)
    ev = EstimatedEvaluator(FunctionEvaluator(_measure), _estimate, cost_s=0.05)
    evaluation = ev.evaluate({"batch": 3}, monitor)
    assert calls == [({"p95_ms": 15.0, "tokens_per_s": 300.0}, ESTIMATE_RUNG)]
    assert monitor.rungs == {ESTIMATE_RUNG: {"p95_ms": 15.0, "tokens_per_s": 300.0}}
    assert monitor.partial == {} and monitor.rung is None  # not merged, not a rung reached
    assert evaluation.metrics == {"p95_ms": 30.0, "tokens_per_s": 300.0}
    assert evaluation.cost_s >= 0.05 and "estimated first by _estimate" in ev.describe()


def test_a_stop_at_the_estimate_skips_the_evaluation() -> None:
    ran: list[int] = []

    def measure(config: dict[str, Any]) -> dict[str, float]:
        ran.append(config["batch"])
        return _measure(config)

    monitor = Monitor(lambda partial, step, rung: "ruled out" if rung == ESTIMATE_RUNG else None)
    evaluation = EstimatedEvaluator(FunctionEvaluator(measure), _estimate, cost_s=0.05).evaluate(
        {"batch": 3}, monitor)
    assert evaluation.aborted == "ruled out" and evaluation.cost_s == 0.05
    assert evaluation.metrics == {"p95_ms": 15.0, "tokens_per_s": 300.0} and ran == []
    with pytest.raises(AbortTrial):
        monitor.report({"p95_ms": 1.0})  # an aborted monitor stays aborted


@pytest.mark.parametrize("estimate", [lambda c: 1 / 0, lambda c: [1, 2], lambda c: {}])
def test_a_failing_estimator_gives_no_estimate(estimate: Any) -> None:
    monitor = Monitor(lambda partial, step, rung: "never" if rung == ESTIMATE_RUNG else None)
    evaluation = EstimatedEvaluator(FunctionEvaluator(_measure), estimate).evaluate(
        {"batch": 2}, monitor)
    assert evaluation.aborted is None and evaluation.metrics["p95_ms"] == 20.0
    assert ESTIMATE_RUNG not in monitor.rungs


def test_the_tuner_learns_the_estimators_bias_and_stops_on_it() -> None:
    """The estimate halves the latency; after three real runs the rung rule knows it: a batch
    whose estimate (but not whose truth) meets the 105 ms limit, or whose throughput cannot
    beat the best so far, is never evaluated, and those stops do not spend the budget."""
    ran: list[int] = []

    def measure(config: dict[str, Any]) -> dict[str, float]:
        ran.append(config["batch"])
        return _measure(config)

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(direction="maximize", storage=storage, study_name="e")
    for b in (2, 4, 6, 16, 18, 9, 7, 10):
        study.enqueue_trial({"batch": b})
    result = deploytune.optimize(
        EstimatedEvaluator(FunctionEvaluator(measure), _estimate, cost_s=0.0),
        {"batch": {"type": "int", "low": 1, "high": 20}}, objective="tokens_per_s",
        direction="maximize", constraints=["p95_ms <= 105"], budget=5, sampler="random",
        seed=0, storage=storage, study_name="e")
    by_batch = {r.config["batch"]: r for r in result.trials}
    # 16 and 18: estimated 80 and 90 ms, corrected 160 and 180 ms; 7: 700 tokens/s < 900
    for b in (16, 18, 7):
        assert by_batch[b].status is Status.ABORTED and b not in ran
        assert list(by_batch[b].rungs) == [ESTIMATE_RUNG]
        assert "not promoted past rung estimate" in (by_batch[b].error or "")
    assert ran == [2, 4, 6, 9, 10]  # five evaluations: the budget; the three stops were free
    assert by_batch[10].feasible and result.best_config == {"batch": 10}
    assert set(by_batch[9].rungs) == {ESTIMATE_RUNG}
