"""SMAC3's multi-fidelity facade as a peer of ``deploytune bench fidelity``, run as its users
run it: SMAC chooses each configuration *and its budget*.

``MultiFidelityFacade`` (Hyperband intensifier, ``eta`` 3) on a ``Scenario`` with
``min_budget`` 1 and ``max_budget`` 3, driven by its ask-and-tell loop. A budget below the
maximum runs the problem's staged simulation up to the ``short`` rung and stops it there
(costing what the problem's cost model charges for a stop at that rung); the maximum runs it to
the end. SMAC has no constraints, so each result is told as the ``smac3`` sampler tells it
(:func:`deploytune.samplers.smac3.told_values`, ``infeasible="crash"``): a feasible run's
negated objective, anything else the largest cost seen so far, as ``CRASHED``. Only a run at the
maximum budget can count as feasible for the regret.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from deploybench.problem import Problem
from deploytune.evaluators.base import Evaluation
from deploytune.execution import outcome_of
from deploytune.history import TrialRecord
from deploytune.outcome import Status

__all__ = ["MAX_BUDGET", "run_smac_mf"]

MAX_BUDGET = 3
"""SMAC's maximum budget: a full evaluation. Budget 1 is the ``short`` rung."""


class _AtRung(Exception):
    """The evaluation reached the rung it was asked to stop at."""


def _evaluate(problem: Problem, evaluate: Any, config: dict[str, Any], full: bool
              ) -> tuple[Evaluation, str | None]:
    """Run ``config`` to the end (``full``) or to the ``short`` rung; the raw evaluation and
    the last rung passed."""
    monitor_rungs: list[str] = []
    partial: dict[str, float] = {}

    def report(metrics: dict[str, float], step: int | None = None,
               rung: str | None = None) -> None:
        partial.update(metrics)
        if rung is not None:
            monitor_rungs.append(rung)
            if rung == "short" and not full:
                raise _AtRung

    try:
        metrics = evaluate(config, report)
        evaluation = Evaluation(dict(metrics))
    except _AtRung:
        evaluation = Evaluation(dict(partial))
    except Exception as exc:
        from deploytune.outcome import crash_kind_of

        evaluation = Evaluation(dict(partial), error=f"{type(exc).__name__}: {exc}",
                                crash_kind=crash_kind_of(exc))
    return evaluation, monitor_rungs[-1] if monitor_rungs else None


def run_smac_mf(problem: Problem, seed: int, seconds_cap: float, max_trials: int
                ) -> list[dict[str, Any]]:
    """SMAC3's multi-fidelity loop on ``problem`` until ``seconds_cap`` simulated seconds or
    ``max_trials`` evaluations; the rows of :func:`deploybench.fidelity_bench.run_method`."""
    from smac import MultiFidelityFacade, Scenario
    from smac.runhistory import StatusType, TrialValue

    from deploytune.samplers.smac3 import ConfigSpaceEncoding, Smac3Settings, told_values

    encoding = ConfigSpaceEncoding(problem.space, seed)
    sign = problem.objective.sign
    logging.getLogger("smac").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="deploybench-smac-mf-") as tmp:
        scenario = Scenario(encoding.cs, deterministic=True, n_trials=max_trials, seed=seed,
                            min_budget=1, max_budget=MAX_BUDGET,
                            output_directory=Path(tmp) / "smac3")
        smac = MultiFidelityFacade(scenario, _not_called, overwrite=True, logging_level=False)
    evaluate = problem.evaluator(seed, rungs=True)
    records: list[TrialRecord] = []
    infos: dict[int, Any] = {}
    told: dict[int, tuple[float, bool]] = {}
    rows: list[dict[str, Any]] = []
    spent = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while spent < seconds_cap and len(rows) < max_trials:
            try:
                info = smac.ask()
            except StopIteration:
                break
            config = encoding.config(info.config)
            full = info.budget is None or info.budget >= MAX_BUDGET - 1e-9
            evaluation, rung = _evaluate(problem, evaluate, config, full)
            outcome = outcome_of(evaluation, problem.objective, problem.constraints)
            stopped = not full and outcome.status is not Status.CRASHED
            status = Status.ABORTED if stopped and outcome.status is Status.INFEASIBLE \
                else outcome.status
            cost = problem.cost.seconds(config, Status.ABORTED if stopped else outcome.status,
                                        outcome.crash_kind, rung if stopped else None)
            spent += cost
            n = len(rows)
            records.append(TrialRecord(n, config, status, outcome.crash_kind, outcome.value,
                                       outcome.violations, cost))
            infos[n] = info
            for number, value in told_values(records, sign, Smac3Settings()).items():
                if told.get(number) != value:
                    smac.tell(infos[number], TrialValue(
                        cost=value[0],
                        status=StatusType.CRASHED if value[1] else StatusType.SUCCESS),
                        save=False)
                    told[number] = value
            shown = "aborted" if stopped else outcome.status.value
            rows.append({"number": n, "status": shown, "value": outcome.value, "cost_s": cost,
                         "cum_s": spent, "rungs": [rung] if rung else [],
                         "error": f"budget {info.budget:g}" if stopped else None})
    return rows


def _not_called(config: Any, seed: int = 0, budget: float = 0.0) -> float:  # pragma: no cover
    raise AssertionError("the ask-and-tell loop never calls the target function")


def timed_run(problem: Problem, seed: int, seconds_cap: float, max_trials: int
              ) -> tuple[list[dict[str, Any]], float]:
    """:func:`run_smac_mf` and its wall seconds."""
    start = time.perf_counter()
    rows = run_smac_mf(problem, seed, seconds_cap, max_trials)
    return rows, time.perf_counter() - start
