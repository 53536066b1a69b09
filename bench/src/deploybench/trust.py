"""``deploytune bench trust``: score what the user gets, the *recommended* configuration.

The regular bench scores a run by its best observed feasible value, so a lucky noisy run
counts as a win. Here every run ends with a recommendation, scored by what deploying it gives
(:meth:`~deploybench.problem.Problem.truth`, 400 fresh measurements): its probability of
a feasible run and its mean objective.

Three arms run the default sampler on the same (problem, seed, budget), with the same noise:

* ``today``: no re-runs (deploytune before chance constraints);
* ``finalists``: the finalists re-run after the budget, no re-runs during the search;
* ``full``: re-runs of the uncertain incumbent during the search (within the budget) and of
  the finalists after it (:mod:`deploytune.validation`, its defaults).

and six recommendation policies read them:

* ``today/observed``: the best observed feasible run (what deploytune reported until now);
* ``today/margin``: the best observed run with every constraint met with 10 % headroom (the
  fixed safety margin of Paper 2, its negative result), else the best observed one;
* ``today/chance``: the chance constraint on the same runs (noise model, no re-runs);
* ``finalists/naive``: the best mean among configurations feasible in every run;
* ``finalists/chance`` and ``full/chance``: the chance-constrained recommendation
  (:func:`~deploytune.feasibility.recommend`).

Per policy: the recommendation's regret (of its mean objective, normalised as the bench's; 1
when nothing is recommended or when its true P(feasible) is below 0.5, as a recommendation
that fails most re-runs is worth no more than none), its true P(feasible), the false-feasible
rate (true P(feasible) < 0.5) and the seconds its arm spent (re-runs included).
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploybench.problem import Problem
from deploytune.feasibility import config_key
from deploytune.outcome import Status
from deploytune.tuner import Result, TrialRecord
from deploytune.validation import OFF, Validation

__all__ = ["ARMS", "FIXED_MARGIN", "POLICIES", "TrustTask", "run_trust", "trust_markdown"]

ARMS: dict[str, Validation] = {
    "today": OFF,
    "finalists": Validation(during_search=False),
    "full": Validation(),
}
"""The runs compared, by their re-run settings."""

POLICIES = ("today/observed", "today/margin", "today/chance", "finalists/naive",
            "finalists/chance", "full/chance")
"""Recommendation policies, ``arm/rule``."""

FIXED_MARGIN = 0.10
"""Headroom of the fixed-margin policy, as a share of each limit."""


@dataclass(frozen=True)
class TrustTask:
    """One run: an arm on (problem, seed, budget)."""

    problem: str
    seed: int
    budget: int
    arm: str

    def path(self, out: Path) -> Path:
        """Where its JSON result goes (the problem name made file-name safe, as the bench's
        runs: a ``module:factory`` name never leads outside ``out``)."""
        from deploybench.runs import safe_name

        return (out / "runs" / safe_name(self.problem) / f"b{self.budget}" / self.arm
                / f"seed_{self.seed}.json")


def _observed(result: Result, margin: float = 0.0) -> dict[str, Any] | None:
    """The best observed feasible run's configuration; with ``margin``, among the runs that
    met every constraint with that share of headroom."""
    runs = [t for t in result.trials if all(v <= -margin for v in t.violations.values())]
    best = Result(runs, result.objective, result.constraints).best_trial
    return dict(best.config) if best is not None else None


def _naive_finalist(trials: Sequence[TrialRecord], problem: Problem) -> dict[str, Any] | None:
    groups: dict[Any, list[TrialRecord]] = {}
    for t in trials:
        groups.setdefault(config_key(t.config), []).append(t)
    best: tuple[float, dict[str, Any]] | None = None
    for runs in groups.values():
        if not all(r.status is Status.FEASIBLE and r.value is not None for r in runs):
            continue
        mean = sum(r.value for r in runs) / len(runs)  # type: ignore[misc]
        if best is None or problem.objective.better(mean, best[0]):
            best = (mean, dict(runs[0].config))
    return best[1] if best else None


def _score(problem: Problem, config: dict[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {"config": None, "p_feasible": 0.0, "value": None, "regret": 1.0,
                "false_feasible": False}
    truth = problem.truth(config)
    ok = truth.p_feasible >= 0.5 and truth.value is not None
    return {"config": config, "p_feasible": truth.p_feasible, "value": truth.value,
            "regret": problem.regret(truth.value) if ok else 1.0,
            "false_feasible": truth.p_feasible < 0.5}


def run_task(task: TrustTask) -> dict[str, Any]:
    """Run ``task`` in this process and score its arm's policies.

    Returns:
        ``problem``, ``seed``, ``budget``, ``arm``, ``evaluations``, ``final_runs``, ``seconds``
        (simulated seconds of every run, re-runs included) and ``policies`` (policy ->
        ``config``, ``p_feasible``, ``value``, ``regret``, ``false_feasible``, and ``reliable``
        for the chance policies).
    """
    from deploybench.runs import optimize_problem, resolve_problem

    problem = resolve_problem(task.problem)
    result = optimize_problem(problem, task.seed, task.budget, validation=ARMS[task.arm])
    trials = result.trials
    policies: dict[str, dict[str, Any]] = {}
    if task.arm == "today":
        observed = _observed(result)
        policies["today/observed"] = _score(problem, observed)
        # what the regular bench reports: the regret of the best *measured* value
        policies["today/observed"]["reported_regret"] = problem.regret(result.best_value)
        policies["today/margin"] = _score(problem, _observed(result, FIXED_MARGIN) or observed)
    if task.arm == "finalists":
        policies["finalists/naive"] = _score(problem, _naive_finalist(trials, problem))
    rec = result.recommendation
    policies[f"{task.arm}/chance"] = {**_score(problem, rec.config if rec else None),
                                      "reliable": rec is not None and rec.reliable}
    seconds = sum(problem.trial_seconds(t.config, t.status, t.crash_kind, t.cost_s)
                  for t in trials)
    return {"problem": task.problem, "seed": task.seed, "budget": task.budget, "arm": task.arm,
            "evaluations": sum(not t.validation for t in trials),
            "final_runs": sum(t.validation for t in trials), "seconds": seconds,
            "policies": policies}


def _run_and_save(args: tuple[TrustTask, str]) -> dict[str, Any]:
    task, out = args
    res = run_task(task)
    path = task.path(Path(out))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, default=str) + "\n")
    tmp.replace(path)
    return res


def run_trust(problems: Sequence[str], seeds: int, budgets: Sequence[int], out: Path,
              jobs: int = 2, report: Callable[[dict[str, Any]], None] | None = None
              ) -> list[dict[str, Any]]:
    """Run every arm on every (problem, seed, budget); runs already saved in ``out`` are read
    back, not run again.

    Returns:
        Every run's result (see :func:`run_task`).
    """
    tasks = [TrustTask(p, s, b, a) for p in problems for b in budgets for s in range(seeds)
             for a in ARMS]
    done: list[dict[str, Any]] = []
    todo: list[TrustTask] = []
    for t in tasks:
        path = t.path(out)
        if path.exists():
            done.append(json.loads(path.read_text()))
        else:
            todo.append(t)
    if todo:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(max(1, jobs), maxtasksperchild=20) as pool:
            for res in pool.imap_unordered(_run_and_save, [(t, str(out)) for t in todo]):
                done.append(res)
                if report is not None:
                    report(res)
    return done


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _count(k: int, n: int) -> str:
    return f"{k}/{n}"


def trust_markdown(runs: Sequence[dict[str, Any]], command: str) -> str:
    """Per budget and policy: recommendation regret, true P(feasible), false-feasible rate,
    runs marked not reliable and the false-feasible ones among those marked reliable, seconds
    against ``today`` (mean of the paired ratios); pooled over problems and seeds."""
    lines = [f"Command: `{command}`", ""]
    budgets = sorted({r["budget"] for r in runs})
    for b in budgets:
        here = [r for r in runs if r["budget"] == b]
        seconds = {(r["problem"], r["seed"], r["arm"]): r["seconds"] for r in here}
        lines += [f"Budget {b} ({len({(r['problem'], r['seed']) for r in here})} runs per "
                  f"policy)", "",
                  "| policy | regret of the recommendation | true P(feasible) | "
                  "false-feasible | said not reliable | false-feasible when said reliable | "
                  "seconds vs today |",
                  "|---|---|---|---|---|---|---|"]
        for policy in POLICIES:
            arm = policy.split("/")[0]
            rows = [(r, r["policies"][policy]) for r in here if policy in r["policies"]]
            if not rows:
                continue
            ratios = [seconds[(r["problem"], r["seed"], arm)]
                      / seconds[(r["problem"], r["seed"], "today")]
                      for r, _ in rows if seconds.get((r["problem"], r["seed"], "today"))]
            said = [p.get("reliable") for _, p in rows if "reliable" in p]
            sure = [p for _, p in rows if p.get("reliable")]
            reported = [p["reported_regret"] for _, p in rows if "reported_regret" in p]
            lines.append(
                f"| {policy} | {_mean([p['regret'] for _, p in rows]):.3f} | "
                f"{_mean([p['p_feasible'] for _, p in rows]):.3f} | "
                f"{sum(p['false_feasible'] for _, p in rows)}/{len(rows)} | "
                f"{_count(sum(not s for s in said), len(said)) if said else '-'} | "
                f"{_count(sum(p['false_feasible'] for p in sure), len(sure)) if said else '-'} | "
                f"{_mean(ratios) - 1:+.1%} |")
            if reported:
                lines.append(f"| {policy}, as the regular bench reports it (its measured "
                             f"value) | {_mean(reported):.3f} | | | | | |")
        lines.append("")
    return "\n".join(lines)
