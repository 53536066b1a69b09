"""Problem.sim_evaluator: the problem's evaluations, costing the cost model's simulated seconds."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

import deploytune
from deploybench.problem import CostModel, Problem, SimulatedEvaluator
from deploybench.runner import run_one
from deploytune.evaluators.base import Evaluator, FunctionEvaluator, Monitor
from deploytune.outcome import CrashKind, InvalidConfig, Status, TransientError
from deploytune.tuner import TrialRecord

OUTCOMES = ("fast", "slow", "oom", "timeout", "invalid", "runtime", "cuda", "missing",
            "not_a_dict", "transient")


def outcome_problem() -> Problem:
    """A problem whose ``outcome`` parameter picks the outcome, every outcome priced apart."""

    def simulate(config: dict[str, Any], rng: np.random.Generator) -> Any:
        outcome = config["outcome"]
        noise = float(rng.normal(0.0, 0.01))
        if outcome == "oom":
            raise MemoryError("simulated OOM")
        if outcome == "timeout":
            raise TimeoutError("too slow to start")
        if outcome == "invalid":
            raise InvalidConfig("tp does not divide the heads")
        if outcome == "runtime":
            raise ValueError("engine died")
        if outcome == "cuda":  # a RuntimeError the built-in rules classify as oom
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if outcome == "missing":
            return {"latency_ms": 1.0}
        if outcome == "not_a_dict":
            return [1.0]
        if outcome == "transient":
            raise TransientError("node busy")
        latency = 5.0 if outcome == "fast" else 50.0
        return {"score": config["x"] + noise, "latency_ms": latency}

    cost = CostModel(feasible_s=60.0, infeasible_s=61.0, aborted_s=15.0,
                     crash_s={CrashKind.INVALID_CONFIG.value: 5.0, CrashKind.OOM.value: 20.0,
                              CrashKind.TIMEOUT.value: 120.0,
                              CrashKind.RUNTIME_ERROR.value: 10.0,
                              CrashKind.TRANSIENT.value: 7.0},
                     scale=lambda c: 1.0 + c["x"])
    return Problem.build(
        "outcomes", {"outcome": {"type": "categorical", "choices": list(OUTCOMES)},
                     "x": {"type": "float", "low": 0.0, "high": 1.0}},
        "score", "maximize", ["latency_ms <= 10"], simulate, optimum=1.0, reference=0.5,
        cost=cost)


EXPECTED = {  # outcome -> (status, crash kind, base seconds before the scale)
    "fast": (Status.FEASIBLE, None, 60.0),
    "slow": (Status.INFEASIBLE, None, 61.0),
    "oom": (Status.CRASHED, CrashKind.OOM, 20.0),
    "timeout": (Status.CRASHED, CrashKind.TIMEOUT, 120.0),
    "invalid": (Status.CRASHED, CrashKind.INVALID_CONFIG, 5.0),
    "runtime": (Status.CRASHED, CrashKind.RUNTIME_ERROR, 10.0),
    "cuda": (Status.CRASHED, CrashKind.OOM, 20.0),
    "missing": (Status.CRASHED, CrashKind.RUNTIME_ERROR, 10.0),
    "not_a_dict": (Status.CRASHED, CrashKind.RUNTIME_ERROR, 10.0),
    "transient": (Status.CRASHED, CrashKind.TRANSIENT, 7.0),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_evaluation_is_the_function_evaluators_with_simulated_cost(outcome: str) -> None:
    problem = outcome_problem()
    config = {"outcome": outcome, "x": 0.25}
    sim = problem.sim_evaluator(3)
    assert isinstance(sim, Evaluator) and isinstance(sim, SimulatedEvaluator)
    got = sim.evaluate(dict(config), Monitor())
    ref = FunctionEvaluator(problem.evaluator(3)).evaluate(dict(config), Monitor())
    # the same facts (same noise, error text, crash kind, info); only the cost differs
    assert (got.metrics, got.error, got.crash_kind, got.aborted, got.info) == (
        ref.metrics, ref.error, ref.crash_kind, ref.aborted, ref.info)
    status, kind, base = EXPECTED[outcome]
    assert got.cost_s == pytest.approx(base * 1.25)
    assert got.cost_s == problem.cost.seconds(config, status, kind)
    assert ref.cost_s < 1.0  # the wall seconds of a Python call, for contrast


def _check_costs(problem: Problem, trials: list[TrialRecord]) -> None:
    for t in trials:
        # a retried transient failure costs each attempt (all transient but maybe the last)
        retried = (t.attempts - 1) * problem.cost.seconds(t.config, Status.CRASHED,
                                                          CrashKind.TRANSIENT)
        assert t.cost_s == pytest.approx(
            retried + problem.cost.seconds(t.config, t.status, t.crash_kind)), t


def test_optimize_records_simulated_costs_and_crash_kinds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("deploytune.execution._RETRY_PAUSE_S", 0.0)
    problem = outcome_problem()
    kw: dict[str, Any] = {"objective": "score", "direction": "maximize",
                          "constraints": ["latency_ms <= 10"], "budget": 40,
                          "sampler": "random", "seed": 1}

    def run(evaluator: Any) -> list[TrialRecord]:
        # a run first: a result missing the objective is then that trial's crash (before any
        # run, it stops the tuner as a misspelt metric: tests/test_tuner.py)
        storage = optuna.storages.InMemoryStorage()
        optuna.create_study(storage=storage, study_name="deploytune", direction="maximize") \
            .enqueue_trial({"outcome": "fast", "x": 0.25})
        return deploytune.optimize(evaluator, problem.space, storage=storage, **kw).trials

    sim = run(problem.sim_evaluator(1))
    wall = run(problem.evaluator(1))
    # the random sampler ignores costs: the same trials, with simulated costs
    assert [(t.config, t.status, t.crash_kind, t.value, t.error, t.attempts) for t in sim] == [
        (t.config, t.status, t.crash_kind, t.value, t.error, t.attempts) for t in wall]
    seen = {t.config["outcome"] for t in sim}
    assert len(seen) >= 8, seen  # most outcomes were drawn
    for t in sim:
        status, kind, _ = EXPECTED[t.config["outcome"]]
        assert (t.status, t.crash_kind) == (status, kind)
    assert any(t.attempts == 3 for t in sim)  # a transient failure, retried twice
    _check_costs(problem, sim)


def test_llm_sim_run_records_cost_model_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from deploybench.registry import get_problem

    monkeypatch.setattr("deploytune.execution._RETRY_PAUSE_S", 0.0)
    problem = get_problem("llm-sim-8b-24gb")
    assert problem.live is None
    result = deploytune.optimize(
        problem.sim_evaluator(0), problem.space, objective=problem.objective.metric,
        direction=problem.objective.direction,
        constraints=[str(c) for c in problem.constraints], budget=25, sampler="random", seed=0)
    trials = result.trials
    statuses = {t.status for t in trials}
    assert Status.CRASHED in statuses and len(statuses) >= 2  # the cost model tells them apart
    assert len({round(t.cost_s, 6) for t in trials}) > 3
    _check_costs(problem, trials)
    # crash kinds are the function evaluator's (same sampler, same noise, same trials)
    wall = deploytune.optimize(
        problem.evaluator(0), problem.space, objective=problem.objective.metric,
        direction=problem.objective.direction,
        constraints=[str(c) for c in problem.constraints], budget=25, sampler="random",
        seed=0).trials
    assert [(t.config, t.status, t.crash_kind, t.error) for t in trials] == [
        (t.config, t.status, t.crash_kind, t.error) for t in wall]


def test_run_one_reports_simulated_costs_and_the_same_waste() -> None:
    run = run_one(f"{__name__}:outcome_problem", "random", 2, 12)
    problem = outcome_problem()
    for row in run["rows"]:
        assert row["sim_cost_s"] > 1.0
        assert row["eval_s"] >= row["sim_cost_s"] - 1e-6  # simulated (rounded to microseconds)
        config = row["config"]
        kind = CrashKind(row["crash_kind"]) if row["crash_kind"] else None
        assert row["sim_cost_s"] == problem.cost.seconds(config, Status(row["status"]), kind)
    wasted = sum(r["sim_cost_s"] for r in run["rows"] if r["status"] != "feasible")
    assert run["metrics"]["wasted_seconds"] == pytest.approx(wasted)
