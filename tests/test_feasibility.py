"""Tests of deploytune.feasibility: pooled runs, noise by region, chance constraint, ranking."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from deploytune.feasibility import (
    PRIOR_SPREAD,
    assess,
    check_confidence,
    config_key,
    next_to_validate,
    recommend,
)
from deploytune.outcome import Constraint, CrashKind, Objective, Status, constraint_label

LAT = Constraint.parse("p95_ms <= 20")
MAX = Objective("throughput", "maximize")


@dataclass(frozen=True)
class R:
    """A finished run, as a TrialRecord would hold it."""

    number: int
    config: dict[str, Any]
    status: Status
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None
    violations: dict[str, float] = field(default_factory=dict)
    crash_kind: CrashKind | None = None


_counter = iter(range(10**6))


def run(config: dict[str, Any], p95: float, throughput: float,
        constraint: Constraint = LAT) -> R:
    """A run that reported ``p95`` and ``throughput``, judged against ``constraint``."""
    v = constraint.signed_violation(p95)
    return R(next(_counter), config, Status.FEASIBLE if v <= 0 else Status.INFEASIBLE,
             {"p95_ms": p95, "throughput": throughput}, throughput,
             {constraint_label(constraint): v})


def crash(config: dict[str, Any], kind: CrashKind = CrashKind.OOM) -> R:
    return R(next(_counter), config, Status.CRASHED, crash_kind=kind)


def by_config(assessed: list[Any], config: dict[str, Any]) -> Any:
    return next(a for a in assessed if a.config == config)


def test_one_run_far_inside_the_limit_is_reliable_and_one_at_the_edge_is_not() -> None:
    far, edge = {"b": 1}, {"b": 2}
    out = assess([run(far, 10.0, 100.0), run(edge, 19.8, 200.0)], MAX, [LAT])
    assert by_config(out, far).p_feasible > 0.99
    # a 1 % margin with a 5 % prior spread: a coin flip, not 9 in 10
    assert 0.5 < by_config(out, edge).p_feasible < 0.6
    rec = recommend(out, MAX, 0.9)
    assert rec is not None and rec.reliable and rec.config == far


def test_repeats_that_agree_make_the_edge_configuration_reliable() -> None:
    edge = {"b": 2}
    runs = [run(edge, 19.0, 200.0)] + [run({"b": 10 + i}, 10.0, 1.0) for i in range(5)]
    before = by_config(assess(runs, MAX, [LAT]), edge).p_feasible
    # every configuration measured 4 times with a 0.1 % spread: the study is not noisy
    runs += [run(edge, 19.0 * (1 + 0.001 * k), 200.0) for k in (1, -1, 2)]
    runs += [run({"b": 10 + i}, 10.0 * (1 + 0.001 * k), 1.0) for i in range(5) for k in (1, -1)]
    after = by_config(assess(runs, MAX, [LAT]), edge)
    assert before < 0.9 <= after.p_feasible
    assert after.runs == 4
    rec = recommend(assess(runs, MAX, [LAT]), MAX)
    assert rec is not None and rec.config == edge and rec.reliable


def test_noise_is_pooled_by_region_so_a_noisy_runtime_is_judged_by_its_own_noise() -> None:
    rng = np.random.default_rng(0)
    runs = []
    for i in range(6):  # int8 is 20 % noisy, fp32 1 %: each measured three times
        for precision, spread in (("int8", 0.2), ("fp32", 0.01)):
            for _ in range(3):
                runs.append(run({"precision": precision, "b": i}, 10.0 * math.exp(
                    spread * rng.standard_normal()), 1.0))
    # a new configuration of each region, measured once at 17 ms (15 % margin)
    int8, fp32 = {"precision": "int8", "b": 99}, {"precision": "fp32", "b": 99}
    runs += [run(int8, 17.0, 1.0), run(fp32, 17.0, 1.0)]
    out = assess(runs, MAX, [LAT])
    assert by_config(out, fp32).constraints[0].spread < 0.05
    assert by_config(out, int8).constraints[0].spread > 0.1
    assert by_config(out, fp32).p_feasible > 0.99
    assert by_config(out, int8).p_feasible < 0.9


def test_crashes_of_a_configuration_lower_its_probability_and_transients_do_not() -> None:
    c = {"b": 3}
    runs = [run(c, 5.0, 10.0), run(c, 5.0, 10.0), crash(c, CrashKind.OOM)]
    assert by_config(assess(runs, MAX, [LAT]), c).p_feasible == pytest.approx(2 / 3, abs=0.01)
    runs = [run(c, 5.0, 10.0), crash(c, CrashKind.TRANSIENT)]
    a = by_config(assess(runs, MAX, [LAT]), c)
    assert a.runs == 1 and a.p_feasible > 0.99


def test_the_recommendation_is_the_best_pessimistic_bound_not_the_best_lucky_run() -> None:
    lucky, steady = {"b": 1}, {"b": 2}
    runs = [run(lucky, 5.0, 130.0), run(lucky, 5.0, 70.0),   # mean 95, spread 45 %
            run(steady, 5.0, 101.0), run(steady, 5.0, 99.0)]  # mean 100, spread 1 %
    out = assess(runs, MAX, [LAT])
    assert by_config(out, lucky).bound < by_config(out, steady).bound
    rec = recommend(out, MAX)
    assert rec is not None and rec.config == steady
    # minimising: the bound is an upper one
    out = assess(runs, Objective("throughput", "minimize"), [LAT])
    assert by_config(out, steady).bound > 100.0


def test_no_reliable_configuration_is_said_and_the_likeliest_is_given() -> None:
    a, b = {"b": 1}, {"b": 2}
    runs = [run(a, 19.9, 300.0), run(a, 21.0, 300.0), run(b, 19.5, 100.0)]
    rec = recommend(assess(runs, MAX, [LAT]), MAX)
    assert rec is not None and not rec.reliable
    assert rec.config == b
    assert recommend(assess([run(a, 30.0, 1.0)], MAX, [LAT]), MAX) is None


def test_a_greater_or_equal_constraint_and_a_non_positive_metric() -> None:
    acc = Constraint.parse("accuracy >= 0.9")
    shift = Constraint.parse("delta <= 0")  # a zero limit: normalised violations are used
    c = {"b": 1}
    r = R(0, c, Status.FEASIBLE, {"accuracy": 0.99, "delta": -0.5}, 1.0,
          {constraint_label(acc): acc.signed_violation(0.99),
           constraint_label(shift): shift.signed_violation(-0.5)})
    a = assess([r], MAX, [acc, shift])[0]
    # 10 % above its floor under the 5 % prior spread; the zero limit is a rate (1 of 1 met)
    assert a.constraints[0].p_met == pytest.approx(0.91, abs=0.01)
    assert a.constraints[1].p_met == 1.0
    interval = a.constraints[0].margin_interval(0.9)
    assert interval is not None and interval[0] < 0.09 < interval[1]


def test_a_zero_limit_is_a_rate_shrunk_toward_the_study() -> None:
    errors = Constraint.parse("error_rate <= 0")

    def served(n: int, rate: float) -> R:
        return R(n, {"b": n % 4}, Status.FEASIBLE if rate == 0 else Status.INFEASIBLE,
                 {"error_rate": rate}, 1.0, {constraint_label(errors): rate})

    # b=0 met it in its 3 runs, b=2 in 1 of 2, b=3 in its 2, b=1 in neither of its 2:
    # the configurations that met it at least once did in 6 of 7 runs, all in 6 of 9
    runs = [served(n, 0.0) for n in (0, 4, 8, 2, 3, 7)] + [served(n, 0.1) for n in (6, 1, 5)]
    out = assess(runs, MAX, [errors])
    assert by_config(out, {"b": 0}).p_feasible == pytest.approx((3 + 2 * 6 / 7) / 5)
    assert by_config(out, {"b": 2}).p_feasible == pytest.approx((1 + 2 * 6 / 7) / 4)
    assert by_config(out, {"b": 1}).p_feasible == pytest.approx((0 + 2 * 6 / 9) / 4)


def test_runs_of_the_same_configuration_are_pooled_whatever_their_float_noise() -> None:
    assert config_key({"x": 0.1 + 0.2, "a": "q"}) == config_key({"a": "q", "x": 0.3})
    runs = [run({"x": 0.1 + 0.2}, 5.0, 1.0), run({"x": 0.3}, 5.0, 1.0)]
    assert len(assess(runs, MAX, [LAT])) == 1


def test_next_to_validate_walks_the_finalists_best_first() -> None:
    best, second, third = {"b": 1}, {"b": 2}, {"b": 3}
    runs = [run(best, 19.5, 300.0), run(second, 10.0, 200.0), run(third, 10.0, 100.0)]
    assert next_to_validate(assess(runs, MAX, [LAT]), MAX, 0.9, 3, 2) == best
    runs += [run(best, 21.0, 300.0), run(best, 20.5, 300.0)]  # best fails its re-runs
    assert next_to_validate(assess(runs, MAX, [LAT]), MAX, 0.9, 3, 2) == second
    runs += [run(second, 10.1, 200.0), run(second, 9.9, 200.0)]  # second holds
    assert next_to_validate(assess(runs, MAX, [LAT]), MAX, 0.9, 3, 2) is None
    rec = recommend(assess(runs, MAX, [LAT]), MAX)
    assert rec is not None and rec.config == second and rec.reliable
    assert next_to_validate(assess(runs, MAX, [LAT]), MAX, 0.9, 0, 2) is None


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, "0.9", None])
def test_confidence_must_be_a_probability(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"^confidence: must be a probability"):
        check_confidence(bad)


def test_the_prior_spread_is_a_relative_five_percent() -> None:
    a = assess([run({"b": 1}, 10.0, 1.0)], MAX, [LAT])[0]
    assert a.constraints[0].spread == pytest.approx(PRIOR_SPREAD)
