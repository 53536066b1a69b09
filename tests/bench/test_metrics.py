"""Per-run metrics and their aggregation, on hand-built trial lists."""

from __future__ import annotations

import math
from typing import Any

import pytest

from deploybench.metrics import (
    RunMetrics,
    aggregate,
    best_so_far,
    discoverable_families,
    run_metrics,
)
from deploybench.problem import CostModel, Problem
from deploytune.outcome import CrashKind, Status
from deploytune.tuner import TrialRecord


def _problem(direction: str = "maximize", optimum: float = 10.0, reference: float = 0.0,
             families: tuple[str, ...] = ("model",)) -> Problem:
    def simulate(config: dict[str, Any], rng: Any) -> dict[str, float]:  # never called here
        raise AssertionError

    cost = CostModel(feasible_s=60.0, infeasible_s=50.0, aborted_s=15.0,
                     crash_s={"oom": 20.0, "invalid_config": 5.0, "runtime_error": 10.0,
                              "timeout": 120.0, "transient": 5.0})
    return Problem.build(
        "hand", {"model": {"type": "categorical", "choices": ["a", "b", "c"]},
                 "x": {"type": "float", "low": 0.0, "high": 1.0}},
        "score", direction, ["latency_ms <= 10"], simulate, optimum, reference,
        cost=cost, families=families)


def _t(number: int, status: Status, value: float | None = None,
       kind: CrashKind | None = None, model: str = "a") -> TrialRecord:
    return TrialRecord(number, {"model": model, "x": 0.5}, status, kind, value, {}, 0.0)


def _trials() -> list[TrialRecord]:
    return [
        _t(0, Status.CRASHED, kind=CrashKind.OOM, model="c"),
        _t(1, Status.INFEASIBLE, value=9.0, model="b"),
        _t(2, Status.FEASIBLE, value=4.0, model="a"),
        _t(3, Status.CRASHED, kind=CrashKind.INVALID_CONFIG, model="c"),
        _t(4, Status.FEASIBLE, value=6.0, model="b"),
        _t(5, Status.FEASIBLE, value=5.0, model="a"),
        _t(6, Status.ABORTED, value=1.0, model="a"),
        _t(7, Status.FEASIBLE, value=float("nan"), model="a"),
    ]


def test_run_metrics_counts_waste_and_time_to_first_feasible() -> None:
    m = run_metrics(_trials(), _problem())
    assert m.n_trials == 8
    assert m.status_counts == {"feasible": 4, "infeasible": 1, "crashed": 2, "aborted": 1}
    assert m.crash_counts["oom"] == 1 and m.crash_counts["invalid_config"] == 1
    assert m.crash_counts["timeout"] == 0
    assert m.waste == pytest.approx(4 / 8)
    assert m.trials_to_first_feasible == 3
    assert m.found_feasible


def test_best_value_ignores_infeasible_aborted_and_nan() -> None:
    m = run_metrics(_trials(), _problem())
    # the infeasible 9.0 and the aborted 1.0 do not count; NaN is skipped
    assert m.best_value == 6.0
    assert m.best_so_far == [None, None, 4.0, 4.0, 6.0, 6.0, 6.0, 6.0]
    assert m.regret == pytest.approx(0.4)
    assert m.regret_curve == pytest.approx([1.0, 1.0, 0.6, 0.6, 0.4, 0.4, 0.4, 0.4])


def test_minimize_direction_picks_the_smallest() -> None:
    prob = _problem(direction="minimize", optimum=0.0, reference=10.0)
    m = run_metrics(_trials(), prob)
    assert m.best_value == 4.0
    assert m.regret == pytest.approx(0.4)
    assert best_so_far(sorted(_trials(), key=lambda t: t.number), prob)[4] == 4.0


def test_wasted_seconds_use_the_cost_model() -> None:
    m = run_metrics(_trials(), _problem())
    # oom 20 + infeasible 50 + invalid_config 5 + aborted 15
    assert m.wasted_seconds == pytest.approx(90.0)
    assert m.total_seconds == pytest.approx(90.0 + 4 * 60.0)


def test_wasted_seconds_of_a_live_problem_are_the_measured_ones() -> None:
    prob = _problem()
    prob.live = lambda: None
    trials = [TrialRecord(i, t.config, t.status, t.crash_kind, t.value, {}, float(i + 1))
              for i, t in enumerate(_trials())]
    m = run_metrics(trials, prob)
    # trials 0, 1, 3 and 6 were not feasible; each cost its number + 1 measured seconds
    assert m.wasted_seconds == pytest.approx(1.0 + 2.0 + 4.0 + 7.0)
    assert m.total_seconds == pytest.approx(sum(range(1, 9)))


def test_trials_are_ordered_by_number() -> None:
    shuffled = list(reversed(_trials()))
    assert run_metrics(shuffled, _problem()) == run_metrics(_trials(), _problem())


def test_discovery_of_family_values() -> None:
    m = run_metrics(_trials(), _problem())
    assert m.families_evaluated == {"model": ["a", "b", "c"]}
    assert m.families_feasible == {"model": ["a", "b"]}
    assert (m.discovery, m.discovery_feasible) == (3, 2)
    assert run_metrics(_trials(), _problem(families=())).discovery == 0


def test_nothing_feasible() -> None:
    trials = [_t(0, Status.CRASHED, kind=CrashKind.OOM), _t(1, Status.INFEASIBLE, value=3.0)]
    m = run_metrics(trials, _problem())
    assert m.best_value is None and not m.found_feasible
    assert m.regret == 1.0 and m.regret_curve == [1.0, 1.0]
    assert m.trials_to_first_feasible is None
    assert m.waste == 1.0
    assert m.wasted_seconds == pytest.approx(m.total_seconds) and m.total_seconds == 70.0


def test_empty_run() -> None:
    m = run_metrics([], _problem())
    assert (m.n_trials, m.waste, m.best_value, m.regret) == (0, 0.0, None, 1.0)


def test_round_trip_through_dict() -> None:
    m = run_metrics(_trials(), _problem())
    d = m.to_dict()
    assert d["discovery"] == 3 and d["found_feasible"] is True
    assert RunMetrics.from_dict(d) == m


def test_aggregate_over_seeds() -> None:
    prob = _problem()
    good = run_metrics(_trials(), prob)  # best 6 -> regret 0.4, waste 0.5, ttff 3
    none = run_metrics([_t(0, Status.CRASHED, kind=CrashKind.OOM)], prob)  # regret 1, waste 1
    best8 = run_metrics([_t(0, Status.FEASIBLE, value=8.0)], prob)  # regret 0.2, ttff 1
    agg = aggregate([good, none, best8])
    assert agg.n_runs == 3 and agg.n_found == 2 and agg.n_nothing_feasible == 1
    assert agg.best_value_mean == pytest.approx(7.0)
    assert agg.best_value_std == pytest.approx(1.0)  # population std of (6, 8)
    assert agg.regret_mean == pytest.approx((0.4 + 1.0 + 0.2) / 3)
    expected_std = math.sqrt(sum((r - agg.regret_mean) ** 2 for r in (0.4, 1.0, 0.2)) / 3)
    assert agg.regret_std == pytest.approx(expected_std)
    assert agg.regret_median == pytest.approx(0.4)
    assert agg.waste_mean == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert agg.ttff_mean == pytest.approx(2.0)
    assert agg.wasted_seconds_mean == pytest.approx((90.0 + 20.0 + 0.0) / 3)
    assert agg.discovery_mean == pytest.approx((3 + 1 + 1) / 3)
    assert agg.status_fractions["crashed"] == pytest.approx((2 / 8 + 1.0 + 0.0) / 3)
    assert agg.crash_counts_mean["oom"] == pytest.approx(2 / 3)
    assert agg.to_dict()["n_nothing_feasible"] == 1


def test_aggregate_of_nothing() -> None:
    agg = aggregate([])
    assert agg.n_runs == 0 and agg.regret_mean is None and agg.best_value_mean is None


def test_discoverable_families_default_to_every_choice() -> None:
    prob = _problem()
    assert discoverable_families(prob) == {"model": ["a", "b", "c"]}
    prob.feasible_families = {"model": ("b", "a")}
    assert discoverable_families(prob) == {"model": ["a", "b"]}
    assert discoverable_families(_problem(families=())) == {}


def test_discovered_all_needs_every_value_that_can_be_feasible() -> None:
    prob = _problem()
    m = run_metrics(_trials(), prob)  # evaluates a, b and c
    assert m.families_discoverable == {"model": ["a", "b", "c"]}
    assert m.discovered_all is True
    some = [_t(0, Status.FEASIBLE, value=1.0, model="a"), _t(1, Status.CRASHED,
                                                             kind=CrashKind.OOM, model="c")]
    assert run_metrics(some, prob).discovered_all is False
    prob.feasible_families = {"model": ("a", "c")}  # b can never be feasible
    assert run_metrics(some, prob).discovered_all is True
    assert run_metrics(_trials(), _problem(families=())).discovered_all is None
    d = run_metrics(some, prob).to_dict()
    assert d["discovered_all"] is True and RunMetrics.from_dict(d).discovered_all is True
    # runs recorded before the field existed: unknown
    old = {k: v for k, v in d.items() if k != "families_discoverable"}
    assert RunMetrics.from_dict(old).discovered_all is None


def test_aggregate_median_ttff_discovery_rate_and_wasted_trials() -> None:
    prob = _problem()
    good = run_metrics(_trials(), prob)  # ttff 3, discovers a, b, c, 4 wasted of 8
    none = run_metrics([_t(0, Status.CRASHED, kind=CrashKind.OOM)], prob)  # ttff -> 1 + 1
    best8 = run_metrics([_t(0, Status.FEASIBLE, value=8.0)], prob)  # ttff 1, only a
    agg = aggregate([good, none, best8])
    assert agg.ttff_median == pytest.approx(2.0)  # median of (3, 2, 1)
    assert agg.discovery_rate == pytest.approx(1 / 3)
    assert agg.wasted_trials_mean == pytest.approx((4 + 1 + 0) / 3)
    assert aggregate([none]).ttff_median == 2.0
    empty = aggregate([])
    assert empty.ttff_median is None and empty.discovery_rate is None
