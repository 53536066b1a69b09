"""The TBA -> TPE handoff (tba_spec.md section 3) and the graded history given to TPE."""

from __future__ import annotations

from typing import Any

import optuna

import deploytune
from deploytune.outcome import CrashKind
from deploytune.samplers._view import CRASH_WEIGHTS, GradedTransform, HistoryView
from deploytune.samplers.hybrid import TBATPESampler
from tests.toy import CONSTRAINTS, toy_evaluate


def run_with(sampler: TBATPESampler, evaluate: Any, budget: int) -> tuple[
        deploytune.Result, list[str]]:
    phases: list[str] = []
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def note(rec: deploytune.TrialRecord) -> None:
        phases.append(sampler.phase(study, rec.number))

    # phase() of the *next* trial is recorded after each trial
    result = deploytune.optimize(evaluate, sampler.space, objective="accuracy",
                                 constraints=CONSTRAINTS, budget=budget, sampler=sampler,
                                 storage=study._storage, study_name=study.study_name,
                                 callbacks=[note])
    return result, phases


def test_handoff_after_five_feasible_and_three_bad(space: deploytune.Space) -> None:
    sampler = TBATPESampler(space, seed=0, budget=25)
    result, phases = run_with(sampler, toy_evaluate, 25)
    first_tpe = phases.index("tpe") + 1  # index of the first trial proposed by TPE
    before = result.trials[:first_tpe]
    n_feasible = sum(t.status.value == "feasible" for t in before)
    n_bad = len(before) - n_feasible
    assert first_tpe == 15 or (n_feasible >= 5 and n_bad >= 3)
    assert 5 <= first_tpe <= 15
    assert all(p == "tpe" for p in phases[first_tpe - 1:])  # one-way


def test_forced_handoff_at_fifteen_when_nothing_is_feasible(space: deploytune.Space) -> None:
    def always_infeasible(config: dict[str, Any]) -> dict[str, float]:
        return {"accuracy": 0.5, "latency_ms": 100.0, "memory_mb": 100.0}

    sampler = TBATPESampler(space, seed=1, budget=20)
    _, phases = run_with(sampler, always_infeasible, 20)
    assert phases.index("tpe") + 1 == 15


def test_family_gate_delays_handoff(space: deploytune.Space) -> None:
    gated = TBATPESampler(space, seed=0, budget=25, min_families=3, min_feasible=1, min_bad=0)
    free = TBATPESampler(space, seed=0, budget=25, min_families=1, min_feasible=1, min_bad=0)
    _, p_gated = run_with(gated, toy_evaluate, 16)
    _, p_free = run_with(free, toy_evaluate, 16)
    assert p_free.index("tpe") <= p_gated.index("tpe")


def test_handoff_switch_off_is_pure_annealing(space: deploytune.Space) -> None:
    sampler = TBATPESampler(space, seed=0, budget=20, handoff=False)
    _, phases = run_with(sampler, toy_evaluate, 20)
    assert set(phases) == {"tba"}


def test_graded_transform_ranks_crashes_below_every_run() -> None:
    space = deploytune.Space.from_dict({"x": {"type": "int", "low": 0, "high": 9}})

    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        x = config["x"]
        if x == 0:
            raise deploytune.InvalidConfig("no")
        if x == 1:
            raise MemoryError
        if x == 2:
            raise TimeoutError
        return {"f": float(x), "lat": 10.0 * x}

    study = optuna.create_study(direction="maximize")
    for x in range(10):
        study.enqueue_trial({"x": x})
    deploytune.optimize(evaluate, space, objective="f", constraints=["lat <= 50"], budget=10,
                        sampler="random", storage=study._storage, study_name=study.study_name)
    mirror = HistoryView(space, GradedTransform()).sync(study)
    v = {t.params["x"]: t.constraints["violation"] for t in mirror.trials}
    worst_run = max(v[x] for x in range(3, 10))
    assert worst_run == (90 - 50) / 50
    assert v[2] == CRASH_WEIGHTS[CrashKind.TIMEOUT] * max(1.0, worst_run)
    assert v[2] < v[1] < v[0]
    assert min(v[0], v[1], v[2]) > worst_run
    assert all(v[x] <= 0 for x in range(3, 6))  # feasible: minus the margin
