"""``deploytune bench fidelity``: regret against simulated seconds, with and without rungs.

Every method tunes problems whose evaluations pass fidelity rungs
(:attr:`~deploybench.problem.Problem.staged`: ``llm-sim`` passes ``boot`` and ``short`` before
the full load test). A run stops once its simulated seconds reach the problem's cap; the cap is
what single-fidelity ``cabo`` spends on ``trials`` evaluations (mean over the seeds, measured
first in the same invocation). The methods (:data:`METHODS`):

* ``cabo``: the default sampler on the problem without rungs (every evaluation runs to the
  end; the hard early-abort rule never sees an intermediate report): single fidelity.
* ``cabo-rungs``: the default sampler and the default tuner with rungs: a run stops at a rung
  when the study's own runs make it unlikely to end as the new best feasible configuration
  (:mod:`deploytune.promotion`).
* ``cabo-estimate``: the same with the problem's cheap estimator in front (on problems that
  have one)
  (:class:`~deploytune.evaluators.estimated.EstimatedEvaluator`; ``llm-sim``: its biased
  ``analytic`` fidelity, 0.05 s), whose errors the rung rule learns from the real runs.
* ``ctpe-hyperband``, ``ctpe-sh``: Optuna's TPE told about the constraints (deploytune's
  ``ctpe``) with Optuna's ``HyperbandPruner`` or ``SuccessiveHalvingPruner`` on the objective
  reported at the ``short`` rung (step 1; the full load test is step 10), and no early abort of
  deploytune's: as an Optuna user runs them.
* ``random-asha``: uniform random search with ``SuccessiveHalvingPruner`` (Optuna's
  asynchronous successive halving).
* ``smac3-mf``: the real SMAC3 package's ``MultiFidelityFacade`` (Hyperband), which chooses
  each configuration and its budget itself (:mod:`deploybench.fidelity_smac`).

A live problem (``llama-cpu``: a real llama.cpp server per evaluation) runs its real
evaluator, whose rungs are the server evaluator's (``boot`` when healthy, ``short`` at the
first interim report), and its seconds are measured: ``cabo`` then has the rung rule off
(``promote_below: 0``), ``cabo-rungs`` on; run it with ``jobs`` 1.

Regret at a budget of ``f x cap`` seconds: the normalised regret
(:meth:`~deploybench.problem.Problem.regret`) of the best measured feasible value among the
trials that finished within it (a trial stopped at a rung is never feasible). Each (problem,
method, seed) run is independent and runs in a process of its own (forked; ``jobs`` at once).
:mod:`deploybench.fidelity_report` writes the tables, the paired tests and the figure.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import multiprocessing
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploybench.runs import dumps_strict, resolve_problem, write_text

__all__ = ["FRACTIONS", "METHODS", "FidelitySettings", "Method", "run_fidelity_bench",
           "run_method"]

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
"""The time budgets reported, as fractions of the problem's cap."""


@dataclass(frozen=True)
class Method:
    """How one method runs.

    Attributes:
        sampler: The registered sampler name.
        rungs: Whether the evaluations pass the problem's rungs.
        pruner: ``"hyperband"``, ``"sh"`` or ``None``.
        early_abort: Whether deploytune's early abort (its hard rule and the rung rule) is on.
        estimate: Whether the problem's estimator runs first (the rung ``estimate``).
    """

    sampler: str
    rungs: bool
    pruner: str | None = None
    early_abort: bool = True
    estimate: bool = False


METHODS: dict[str, Method] = {
    "cabo": Method("cabo", rungs=False),
    "cabo-rungs": Method("cabo", rungs=True),
    "cabo-estimate": Method("cabo", rungs=True, estimate=True),
    "ctpe-hyperband": Method("ctpe", rungs=True, pruner="hyperband", early_abort=False),
    "ctpe-sh": Method("ctpe", rungs=True, pruner="sh", early_abort=False),
    "random-asha": Method("random", rungs=True, pruner="sh", early_abort=False),
    "smac3-mf": Method("smac3-mf", rungs=True, early_abort=False),
}
"""The compared methods (see the module docstring); the first is the reference."""


@dataclass(frozen=True)
class FidelitySettings:
    """What ``deploytune bench fidelity`` runs.

    Attributes:
        problems: Problems with rungs (registry names).
        methods: Method names (keys of :data:`METHODS`); ``cabo`` is always run first.
        seeds: Seeds ``0 .. seeds - 1``.
        trials: The single-fidelity reference's evaluations; its seconds are the cap.
        promote_below: Thresholds of the rung rule to compare: ``cabo-rungs`` runs once per
            value, labelled ``cabo-rungs[0.05]`` (empty: once, with the default of
            :class:`~deploytune.early_abort.EarlyAbort`).
        jobs: Runs at once.
        max_trials: A run's trials at most, whatever its seconds.
    """

    problems: tuple[str, ...] = ("llm-sim-8b-24gb", "llm-sim-70b-2xh100")
    methods: tuple[str, ...] = tuple(METHODS)
    seeds: int = 8
    trials: int = 50
    promote_below: tuple[float, ...] = ()
    jobs: int = 2
    max_trials: int = 200


class _Spent(Exception):
    """The run's seconds reached its cap."""


def _pruner(name: str | None) -> Any:
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=10,
                                              reduction_factor=3)
    if name == "sh":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return None


def run_method(problem_name: str, method_name: str, seed: int, seconds_cap: float | None,
               trials: int, promote_below: float | None = None) -> dict[str, Any]:
    """One run: ``method_name`` on ``problem_name`` until ``seconds_cap`` simulated seconds
    (``None``: exactly ``trials`` evaluations), with the rung rule's ``promote_below`` when
    given.

    Returns:
        ``problem``, ``method`` (with ``[promote_below]`` when given), ``seed``, ``wall_s``
        and ``rows``: per finished trial its
        ``number``, ``status``, ``value``, ``cost_s``, ``cum_s`` (simulated seconds so far),
        ``rungs`` (the rungs it passed) and ``error``.
    """
    import deploytune
    from deploytune.early_abort import EarlyAbort

    problem = resolve_problem(problem_name)
    method = METHODS[method_name]
    if method.sampler == "smac3-mf":
        from deploybench.fidelity_smac import timed_run

        smac_rows, wall = timed_run(problem, seed, seconds_cap or math.inf, trials)
        return {"problem": problem_name, "method": method_name, "seed": seed, "wall_s": wall,
                "seconds_cap": seconds_cap, "rows": smac_rows}
    rows: list[dict[str, Any]] = []
    spent = 0.0

    def on_trial(rec: Any) -> None:
        nonlocal spent
        spent += rec.cost_s
        rows.append({"number": rec.number, "status": rec.status.value, "value": rec.value,
                     "cost_s": rec.cost_s, "cum_s": spent, "rungs": list(rec.rungs),
                     "error": rec.error if rec.status.value == "aborted" else None})
        if seconds_cap is not None and spent >= seconds_cap:
            raise _Spent

    early: EarlyAbort | bool = method.early_abort
    if method.early_abort and promote_below is not None:
        early = EarlyAbort(promote_below=promote_below)
    if problem.live is not None:  # real rungs: single fidelity is the rung rule switched off
        evaluator: Any = problem.live()
        if method.early_abort and not method.rungs:
            early = EarlyAbort(promote_below=0.0)
    else:
        evaluator = problem.sim_evaluator(seed, rungs=method.rungs)
    if method.estimate:
        from deploytune.evaluators.estimated import EstimatedEvaluator

        if problem.estimate is None:
            raise ValueError(f"problem {problem_name!r} has no estimator")
        evaluator = EstimatedEvaluator(evaluator, problem.estimate, problem.estimate_cost_s)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(_Spent):
            deploytune.optimize(
                evaluator, problem.space, objective=problem.objective.metric,
                direction=problem.objective.direction,
                constraints=[str(c) for c in problem.constraints],
                budget=trials, sampler=method.sampler, seed=seed, callbacks=[on_trial],
                early_abort=early, pruner=_pruner(method.pruner))
    label = method_name if promote_below is None else f"{method_name}[{promote_below:g}]"
    return {"problem": problem_name, "method": label, "seed": seed,
            "wall_s": time.perf_counter() - start, "seconds_cap": seconds_cap, "rows": rows}


def regret_at(run: dict[str, Any], seconds: float, regret: Callable[[float | None], float],
              maximize: bool) -> float:
    """The regret of ``run``'s best feasible value among the trials finished within
    ``seconds``."""
    values = [r["value"] for r in run["rows"] if r["status"] == "feasible"
              and r["value"] is not None and r["cum_s"] <= seconds + 1e-9]
    if not values:
        return regret(None)
    return regret(max(values) if maximize else min(values))


def _map(tasks: Sequence[tuple[Any, ...]], jobs: int,
         on_run: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    out = []
    with cf.ProcessPoolExecutor(max_workers=jobs,
                                mp_context=multiprocessing.get_context("fork")) as pool:
        for run in pool.map(_run_task, tasks):
            out.append(run)
            if on_run is not None:
                on_run(run)
    return out


def _run_task(task: tuple[Any, ...]) -> dict[str, Any]:
    return run_method(*task)


def run_fidelity_bench(settings: FidelitySettings, out_dir: Path, command: str,
                       on_run: Callable[[dict[str, Any]], None] | None = None
                       ) -> dict[str, Any]:
    """Run the single-fidelity reference, then every other method up to its seconds; write
    ``OUT/fidelity.json``, ``OUT/fidelity.md`` and ``OUT/fidelity.png``.

    Returns:
        ``settings``, ``command``, ``caps`` (problem -> seconds), ``runs`` and ``summary``
        (:func:`~deploybench.fidelity_report.summarise`).
    """
    from deploybench.fidelity_report import fidelity_figure, fidelity_markdown, summarise

    for name in settings.problems:
        problem = resolve_problem(name)
        if problem.staged is None and problem.live is None:
            raise ValueError(f"problem {name!r} has no fidelity rungs")
    seeds = range(settings.seeds)
    reference = next(iter(METHODS))
    runs = _map([(p, reference, s, None, settings.trials) for p in settings.problems
                 for s in seeds], settings.jobs, on_run)
    caps = {p: sum(r["rows"][-1]["cum_s"] for r in runs if r["problem"] == p and r["rows"])
            / settings.seeds for p in settings.problems}
    others = [m for m in settings.methods if m != reference]
    variants = [(m, v) for m in others
                for v in ((settings.promote_below or (None,)) if METHODS[m].early_abort
                          and METHODS[m].rungs else (None,))]
    estimated = {p for p in settings.problems if resolve_problem(p).estimate is not None}
    runs += _map([(p, m, s, caps[p], settings.max_trials, v)
                  for p in settings.problems for m, v in variants for s in seeds
                  if not METHODS[m].estimate or p in estimated],
                 settings.jobs, on_run)
    results: dict[str, Any] = {
        "settings": {**settings.__dict__}, "command": command, "caps": caps, "runs": runs}
    results["summary"] = summarise(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "fidelity.json", dumps_strict(results) + "\n")
    write_text(out_dir / "fidelity.md", fidelity_markdown(results) + "\n")
    fidelity_figure(results, out_dir / "fidelity.png")
    return results
