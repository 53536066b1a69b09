"""Tests of deploytune.execution: classify, retry transient failures, judge, seconds saved."""

from __future__ import annotations

from typing import Any

import pytest

from deploytune.evaluators.base import Evaluation, Evaluator, FunctionEvaluator, Monitor
from deploytune.evaluators.classify import Rule
from deploytune.execution import estimate_seconds_saved, outcome_of, run_trial
from deploytune.outcome import Constraint, CrashKind, Objective, Status, TransientError

OBJ = Objective("accuracy")
CONS = [Constraint.parse("p95_ms <= 20")]


class Scripted(Evaluator):
    """Returns the given evaluations in order and counts calls."""

    def __init__(self, *evaluations: Evaluation) -> None:
        self.evaluations = list(evaluations)
        self.calls = 0

    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        self.calls += 1
        return self.evaluations.pop(0)


def no_pause(_: float) -> None:
    pass


def test_transient_failure_is_retried_and_never_counts_against_the_config() -> None:
    ev = Scripted(Evaluation(error="bind: Address already in use", cost_s=0.5),
                  Evaluation({"accuracy": 0.9, "p95_ms": 10.0}, cost_s=1.0))
    rules = [Rule("Address already in use", CrashKind.TRANSIENT)]
    out = run_trial(ev, {"a": 1}, OBJ, CONS, rules=rules, retries=2, pause=no_pause)
    assert ev.calls == 2
    assert out.status is Status.FEASIBLE and out.attempts == 2
    assert out.cost_s == pytest.approx(1.5)


def test_transient_retries_are_bounded() -> None:
    ev = Scripted(*[Evaluation(error="TransientError: port", crash_kind=CrashKind.TRANSIENT)
                    for _ in range(3)])
    out = run_trial(ev, {}, OBJ, CONS, retries=2, pause=no_pause)
    assert ev.calls == 3
    assert out.status is Status.CRASHED and out.crash_kind is CrashKind.TRANSIENT
    assert out.attempts == 3


def test_retries_zero_means_one_attempt() -> None:
    ev = Scripted(Evaluation(error="x", crash_kind=CrashKind.TRANSIENT))
    assert run_trial(ev, {}, OBJ, CONS, retries=0, pause=no_pause).attempts == 1


def test_deterministic_crash_is_not_retried() -> None:
    ev = Scripted(Evaluation(error="MemoryError", log="...", crash_kind=CrashKind.OOM))
    out = run_trial(ev, {}, OBJ, CONS, retries=5, pause=no_pause)
    assert ev.calls == 1 and out.crash_kind is CrashKind.OOM and out.log == "..."


def test_user_rule_reclassifies_a_crash_and_keeps_partial_metrics() -> None:
    ev = Evaluation({"p95_ms": 3.0, "note": "x"}, error="RuntimeError: CUDA out of memory")
    out = outcome_of(ev, OBJ, CONS, [Rule("CUDA out of memory", CrashKind.OOM)])
    assert out.crash_kind is CrashKind.OOM and out.metrics == {"p95_ms": 3.0}


def test_aborted_evaluation_becomes_aborted_outcome_with_partial_metrics() -> None:
    ev = Evaluation({"p95_ms": 150.0, "accuracy": 0.5}, aborted="too slow", cost_s=2.0)
    out = outcome_of(ev, OBJ, CONS)
    assert out.status is Status.ABORTED and out.error == "too slow"
    assert out.metrics["p95_ms"] == 150.0 and out.value == 0.5
    assert out.violations["p95_ms_max"] == pytest.approx(6.5)


def test_seconds_saved_from_progress_or_median_or_unknown() -> None:
    assert estimate_seconds_saved(2.0, {"progress": 0.25}, [100.0]) == pytest.approx(6.0)
    assert estimate_seconds_saved(2.0, {}, [10.0, 12.0, 30.0]) == pytest.approx(10.0)
    assert estimate_seconds_saved(20.0, {}, [10.0]) is None  # outlasted the median: unknown
    assert estimate_seconds_saved(2.0, {}, []) is None
    # never more than what was left of the time limit
    assert estimate_seconds_saved(2.0, {"progress": 0.1}, [], 10.0) == pytest.approx(8.0)
    # a tiny progress says more about start-up than pace: fall back to the median full run
    assert estimate_seconds_saved(2.0, {"progress": 0.01}, [5.0]) == pytest.approx(3.0)
    assert estimate_seconds_saved(30.0, {}, [100.0], 20.0) == 0.0


def test_aborted_run_records_seconds_saved() -> None:
    ev = Scripted(Evaluation({"p95_ms": 500.0, "progress": 0.1}, aborted="slow", cost_s=1.0))
    out = run_trial(ev, {}, OBJ, CONS, pause=no_pause)
    assert out.status is Status.ABORTED and out.seconds_saved == pytest.approx(9.0)


def test_evaluator_bug_is_a_crash_not_a_tuner_crash() -> None:
    class Broken(Evaluator):
        def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
            raise AttributeError("evaluator bug")

    out = run_trial(Broken(), {}, OBJ, CONS, pause=no_pause)
    assert out.status is Status.CRASHED and "evaluator bug" in (out.error or "")


def test_function_evaluator_streams_and_aborts_in_process() -> None:
    seen: list[int] = []

    def fn(config: dict[str, Any], report: Any) -> dict[str, float]:
        for step in range(10):
            seen.append(step)
            report({"p95_ms": 10.0 * (step + 1)}, step=step)
        return {"accuracy": 1.0, "p95_ms": 100.0}

    def check(partial: dict[str, float], step: int | None,
              rung: str | None = None) -> str | None:
        return "over 35" if partial["p95_ms"] > 35 else None

    out = run_trial(FunctionEvaluator(fn), {}, OBJ, CONS, new_monitor=lambda: Monitor(check))
    assert out.status is Status.ABORTED and out.error == "over 35"
    assert seen == [0, 1, 2, 3] and out.metrics == {"p95_ms": 40.0}


def test_function_evaluator_transient_error_class() -> None:
    calls = []

    def fn(config: dict[str, Any]) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("connection reset")
        return {"accuracy": 0.5, "p95_ms": 1.0}

    out = run_trial(FunctionEvaluator(fn), {}, OBJ, CONS, pause=no_pause)
    assert out.status is Status.FEASIBLE and out.attempts == 2


def test_keyboard_interrupt_propagates() -> None:
    def fn(config: dict[str, Any]) -> dict[str, float]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(FunctionEvaluator(fn), {}, OBJ, CONS)
