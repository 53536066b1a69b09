"""Early abort: how many seconds it saves on a problem with slow configurations.

For each seed, :func:`deploytune.optimize` runs twice on the same problem with the same sampler
and seed: once with the early-abort rule on, once with it off. Two runs are compared, but
their trajectories diverge as soon as one trial ends differently (an aborted trial and a
finished one teach the sampler different things), so the difference of their wall-clock times
mixes the saving with a different choice of configurations. The clean measure is a
*counterfactual*: every trial aborted in the "on" run is run again, the same configuration
with the rule off (a monitor without a check, the same time limit), and the seconds that full
run took are compared with the seconds the aborted run took. The tuner's own estimate (the
sum of :attr:`~deploytune.tuner.TrialRecord.seconds_saved`) is reported next to it, and the
best feasible value each run found shows whether aborting cost quality.

The problem comes from a spec file (:func:`problem_from_spec`; by default the NumPy matmul
command of ``examples/matmul_command``) or is built directly as an :class:`AbortProblem`. The
report is rendered by :mod:`deploybench.early_abort_report`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench.early_abort_report import (
    early_abort_markdown,
    early_abort_table,
    format_value,
)
from deploytune.early_abort import EarlyAbort
from deploytune.evaluators.base import Evaluator
from deploytune.evaluators.classify import Rule
from deploytune.outcome import Constraint, CrashKind, Objective, Status
from deploytune.space import Space

if TYPE_CHECKING:
    from rich.console import Console

    from deploytune.spec import Spec
    from deploytune.tuner import Result, TrialRecord

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_SEEDS",
    "AbortProblem",
    "compare_early_abort",
    "counterfactual",
    "default_spec_path",
    "early_abort_markdown",
    "early_abort_table",
    "limit_counterfactual",
    "problem_from_spec",
    "run_once",
]

DEFAULT_SEEDS = 3
"""Seeds compared by default (seeds 0..N-1)."""

DEFAULT_BUDGET = 20
"""Trials per run by default."""


def default_spec_path() -> Path:
    """The spec of the matmul command example, ``examples/matmul_command/spec.yaml``.

    Returns:
        Its path in the source checkout (it is not installed with the package).
    """
    import deploytune

    return (Path(deploytune.__file__).resolve().parents[2] / "examples" / "matmul_command"
            / "spec.yaml")


@dataclass(frozen=True)
class AbortProblem:
    """A tuning problem on which early abort is measured.

    Attributes:
        name: Its name, for the report.
        make_evaluator: Builds a fresh evaluator (one per run; closed after it).
        space: The search space.
        objective: The objective.
        constraints: The hard constraints (``<=`` caps drive the early-abort rule).
        rules: Crash classification rules.
        retries: Retries of transient failures within a trial.
        sampler: The sampler's registered name.
        sampler_options: Its keyword options.
        early_abort: The rule of the "on" runs.
        timeout_s: The evaluator's time limit (reported; the evaluator enforces it).
    """

    name: str
    make_evaluator: Callable[[], Evaluator]
    space: Space
    objective: Objective
    constraints: tuple[Constraint, ...]
    rules: tuple[Rule, ...] = ()
    retries: int = 2
    sampler: str = "default"
    sampler_options: Mapping[str, Any] = field(default_factory=dict)
    early_abort: EarlyAbort = field(default_factory=EarlyAbort)
    timeout_s: float | None = None
    make_evaluator_with_limit: Callable[[float], Evaluator] | None = None
    """Builds the same evaluator with another time limit (for the time-limit counterfactual)."""


def problem_from_spec(spec: Spec, timeout_s: float | None = None) -> AbortProblem:
    """The problem of a loaded spec: its evaluator, space, objective, constraints, sampler.

    Args:
        spec: A spec from :func:`deploytune.spec.load_spec`.
        timeout_s: Replaces the evaluator's time limit when given.

    Returns:
        The problem; its early-abort rule is the spec's, or the defaults when the spec
        switches early abort off.

    Raises:
        ValueError: For a time limit that is not a positive number.
    """
    evaluator = spec.evaluator
    if timeout_s is not None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s: must be a positive number of seconds "
                             f"(got {timeout_s!r})")
        evaluator = dataclasses.replace(evaluator, timeout_s=float(timeout_s))
    built = dataclasses.replace(spec, evaluator=evaluator)

    def with_limit(limit_s: float) -> Evaluator:
        longer = dataclasses.replace(evaluator, timeout_s=float(limit_s))
        return dataclasses.replace(spec, evaluator=longer).build_evaluator()

    return AbortProblem(
        name=spec.study_name, make_evaluator=built.build_evaluator, space=spec.space,
        objective=spec.objective, constraints=tuple(spec.constraints), rules=tuple(spec.rules),
        retries=spec.retries, sampler=spec.sampler, sampler_options=dict(spec.sampler_options),
        early_abort=spec.early_abort if spec.early_abort.enabled else EarlyAbort(),
        timeout_s=evaluator.timeout_s, make_evaluator_with_limit=with_limit)


def _best(result: Result) -> tuple[float | None, dict[str, Any] | None]:
    best = result.best_trial
    return (best.value, dict(best.config)) if best is not None else (None, None)


def _summary(result: Result, wall_s: float, early: bool) -> dict[str, Any]:
    trials = result.trials
    aborted = [t for t in trials if t.status is Status.ABORTED]
    value, config = _best(result)
    return {
        "early_abort": early,
        "wall_s": wall_s,
        "trials": len(trials),
        "feasible": result.count(Status.FEASIBLE),
        "infeasible": result.count(Status.INFEASIBLE),
        "crashed": result.count(Status.CRASHED),
        "aborted": len(aborted),
        "timeouts": sum(t.crash_kind is CrashKind.TIMEOUT for t in trials),
        "crash_kinds": {kind.value: n for kind in CrashKind
                        if (n := sum(t.crash_kind is kind for t in trials))},
        "trial_seconds": sum(t.cost_s for t in trials),
        "estimated_saved_s": sum(t.seconds_saved or 0.0 for t in aborted),
        "aborted_without_estimate": sum(t.seconds_saved is None for t in aborted),
        "best_value": value,
        "best_config": config,
        "trial_list": [_trial_row(t) for t in trials],
    }


def _trial_row(t: TrialRecord) -> dict[str, Any]:
    return {"number": t.number, "config": dict(t.config), "status": t.status.value,
            "crash_kind": t.crash_kind.value if t.crash_kind is not None else None,
            "value": t.value, "cost_s": t.cost_s, "seconds_saved": t.seconds_saved,
            "error": t.error}


def run_once(problem: AbortProblem, seed: int, budget: int,
             early: bool) -> tuple[Result, dict[str, Any]]:
    """One :func:`deploytune.optimize` run of ``problem``, in-memory storage.

    Args:
        problem: The problem.
        seed: Seed of the sampler.
        budget: Trials.
        early: Whether the problem's early-abort rule is on (``False``: switched off).

    Returns:
        The :class:`~deploytune.tuner.Result` and its summary (wall-clock seconds, counts per
        outcome, summed estimate of seconds saved, best feasible value, one row per trial).
    """
    from deploytune.samplers import make_sampler
    from deploytune.tuner import optimize

    sampler = make_sampler(problem.sampler, space=problem.space, seed=seed, budget=budget,
                           **dict(problem.sampler_options))
    evaluator = problem.make_evaluator()
    start = time.perf_counter()
    try:
        result = optimize(
            evaluator, problem.space, objective=problem.objective.metric,
            direction=problem.objective.direction, constraints=list(problem.constraints),
            budget=budget, sampler=sampler, seed=seed, storage=None, retries=problem.retries,
            rules=problem.rules, early_abort=problem.early_abort if early else False)
    finally:
        evaluator.close()
    return result, _summary(result, time.perf_counter() - start, early)


def counterfactual(problem: AbortProblem, aborted: Sequence[TrialRecord],
                   evaluator: Evaluator | None = None) -> list[dict[str, Any]]:
    """Run every aborted trial's configuration again to its end, early abort off.

    Args:
        problem: The problem the trials come from.
        aborted: Aborted trials (of an early-abort "on" run).
        evaluator: The evaluator to use (default: a fresh one, closed at the end).

    Returns:
        One row per trial: ``number``, ``config``, ``reason``, ``aborted_cost_s`` (what the
        aborted trial took), ``estimated_saved_s`` (the tuner's estimate), ``full_cost_s``
        (what the full run took; a run that hit the time limit counts the time limit),
        ``full_status``, ``full_crash_kind``, ``full_value`` and ``measured_saved_s``
        (``full_cost_s - aborted_cost_s``, negative when the abort saved nothing).
    """
    from deploytune.execution import run_trial

    own = evaluator is None
    ev = problem.make_evaluator() if evaluator is None else evaluator
    rows: list[dict[str, Any]] = []
    try:
        for t in aborted:
            outcome = run_trial(ev, dict(t.config), problem.objective, problem.constraints,
                                rules=problem.rules, retries=problem.retries)
            rows.append({
                "number": t.number, "config": dict(t.config), "reason": t.error,
                "aborted_cost_s": t.cost_s, "estimated_saved_s": t.seconds_saved,
                "full_cost_s": outcome.cost_s, "full_status": outcome.status.value,
                "full_crash_kind": (outcome.crash_kind.value if outcome.crash_kind is not None
                                    else None),
                "full_value": outcome.value, "measured_saved_s": outcome.cost_s - t.cost_s,
            })
    finally:
        if own:
            ev.close()
    return rows


def limit_counterfactual(problem: AbortProblem, timed_out: Sequence[TrialRecord],
                         limit_s: float) -> list[dict[str, Any]]:
    """Run every timed-out trial's configuration again under a longer time limit ``limit_s``
    (early abort off): how many seconds the time limit saved.

    Returns:
        One row per trial: ``number``, ``config``, ``limited_cost_s`` (what the timed-out
        trial took), ``long_cost_s`` (what the re-run took, at most about ``limit_s``),
        ``long_status``, ``long_crash_kind`` (``timeout`` again when even ``limit_s`` was too
        short: the saving is then a lower bound) and ``measured_saved_s``.

    Raises:
        ValueError: When the problem cannot change its evaluator's time limit.
    """
    from deploytune.execution import run_trial

    if problem.make_evaluator_with_limit is None:
        raise ValueError(f"problem {problem.name!r}: no evaluator factory with a time limit")
    ev = problem.make_evaluator_with_limit(limit_s)
    rows: list[dict[str, Any]] = []
    try:
        for t in timed_out:
            outcome = run_trial(ev, dict(t.config), problem.objective, problem.constraints,
                                rules=problem.rules, retries=problem.retries)
            rows.append({
                "number": t.number, "config": dict(t.config), "limited_cost_s": t.cost_s,
                "long_cost_s": outcome.cost_s, "long_status": outcome.status.value,
                "long_crash_kind": (outcome.crash_kind.value if outcome.crash_kind is not None
                                    else None),
                "measured_saved_s": outcome.cost_s - t.cost_s,
            })
    finally:
        ev.close()
    return rows


def compare_early_abort(
    problem: AbortProblem,
    seeds: Sequence[int] = tuple(range(DEFAULT_SEEDS)),
    budget: int = DEFAULT_BUDGET,
    out_dir: str | Path | None = None,
    console: Console | None = None,
    command: str = "",
    source: str = "",
    limit_counterfactual_s: float | None = None,
) -> dict[str, Any]:
    """Compare early abort on and off on ``problem``, seed by seed, with the counterfactual.

    With ``limit_counterfactual_s``, the trials of the "on" run that hit the time limit are
    also run again under that longer limit (:func:`limit_counterfactual`): the seconds the
    crash isolation's time limit saved.

    Args:
        problem: The problem.
        seeds: The sampler seeds.
        budget: Trials per run.
        out_dir: If given, ``early_abort.md`` and ``early_abort.json`` are written there.
        console: If given, progress lines and the table are printed there.
        command: The command line that reproduces the comparison, for the report.
        source: Where the problem comes from (a spec file), for the report.

    Returns:
        ``{"problem", "source", "command", "machine", "budget", "seeds", "sampler",
        "timeout_s", "early_abort", "evaluator", "per_seed", "total"}``; each entry of
        ``per_seed`` holds the seed, the summaries of the ``on`` and ``off`` runs, the
        ``counterfactual`` rows and ``measured_saved_s``; ``total`` sums them.

    Raises:
        ValueError: For no seeds or a budget below 1.
    """
    from deploybench.isolation import machine_info
    from deploybench.runs import dumps_strict, write_text

    seed_list = list(dict.fromkeys(int(s) for s in seeds))
    if not seed_list:
        raise ValueError("seeds: give at least one seed")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget: must be a positive number of trials (got {budget!r})")
    probe = problem.make_evaluator()
    try:
        described = probe.describe()
    finally:
        probe.close()
    say = _printer(console)
    per_seed = [_compare_seed(problem, seed, budget, limit_counterfactual_s, say)
                for seed in seed_list]
    rule = problem.early_abort
    report: dict[str, Any] = {
        "problem": problem.name, "source": source, "command": command,
        "machine": machine_info(), "budget": budget, "seeds": seed_list,
        "sampler": problem.sampler, "timeout_s": problem.timeout_s,
        "early_abort": {"before_feasible": rule.before_feasible,
                        "after_feasible": rule.after_feasible},
        "evaluator": described, "per_seed": per_seed, "total": _total(per_seed),
        "limit_counterfactual_s": limit_counterfactual_s,
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_text(out / "early_abort.json", dumps_strict(report, indent=1) + "\n")
        write_text(out / "early_abort.md", early_abort_markdown(report))
    if console is not None:
        console.print(early_abort_table(report))
    return report


def _printer(console: Console | None) -> Callable[[str], None]:
    """Prints a progress line on ``console`` as plain text (nothing without a console)."""
    from rich.text import Text

    def say(text: str) -> None:
        if console is not None:
            console.print(Text(text), highlight=False)  # holds user text: never markup

    return say


def _compare_seed(problem: AbortProblem, seed: int, budget: int,
                  limit_counterfactual_s: float | None,
                  say: Callable[[str], None]) -> dict[str, Any]:
    """One seed of :func:`compare_early_abort`: the "on" and "off" runs, the counterfactual of
    the aborted trials and, with ``limit_counterfactual_s``, that of the timed-out ones."""
    on_result, on = run_once(problem, seed, budget, early=True)
    say(f"seed {seed}, early abort on:  {on['wall_s']:.1f} s, {on['aborted']} aborted, "
        f"{on['timeouts']} timed out, best {format_value(on['best_value'])}")
    _, off = run_once(problem, seed, budget, early=False)
    say(f"seed {seed}, early abort off: {off['wall_s']:.1f} s, {off['timeouts']} timed "
        f"out, best {format_value(off['best_value'])}")
    aborted = [t for t in on_result.trials if t.status is Status.ABORTED]
    rows = counterfactual(problem, aborted)
    measured = sum(r["measured_saved_s"] for r in rows)
    say(f"seed {seed}, counterfactual: {len(rows)} aborted trials re-run in "
        f"{sum(r['full_cost_s'] for r in rows):.1f} s, measured saving {measured:.1f} s")
    limit_rows: list[dict[str, Any]] = []
    if limit_counterfactual_s is not None:
        timed_out = [t for t in on_result.trials if t.crash_kind is CrashKind.TIMEOUT]
        limit_rows = limit_counterfactual(problem, timed_out, limit_counterfactual_s)
        say(f"seed {seed}, time limit counterfactual: {len(limit_rows)} timed-out trials "
            f"re-run under {limit_counterfactual_s:g} s, measured saving "
            f"{sum(r['measured_saved_s'] for r in limit_rows):.1f} s")
    return {"seed": seed, "on": on, "off": off, "counterfactual": rows,
            "limit_counterfactual": limit_rows,
            "measured_saved_s": measured,
            "aborted_would_be_feasible": sum(r["full_status"] == "feasible" for r in rows)}


def _total(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def total(run: str, key: str) -> float:
        return sum(s[run][key] for s in per_seed)

    return {
        "wall_on_s": total("on", "wall_s"), "wall_off_s": total("off", "wall_s"),
        "aborted": int(total("on", "aborted")),
        "timeouts_on": int(total("on", "timeouts")), "timeouts_off": int(total("off", "timeouts")),
        "estimated_saved_s": total("on", "estimated_saved_s"),
        "measured_saved_s": sum(s["measured_saved_s"] for s in per_seed),
        "counterfactual_s": sum(r["full_cost_s"] for s in per_seed for r in s["counterfactual"]),
        "aborted_would_be_feasible": sum(s["aborted_would_be_feasible"] for s in per_seed),
        "limit_saved_s": sum(r["measured_saved_s"] for s in per_seed
                             for r in s.get("limit_counterfactual", [])),
        "limit_rerun_s": sum(r["long_cost_s"] for s in per_seed
                             for r in s.get("limit_counterfactual", [])),
        "crash_kinds_on": {k: sum(s["on"]["crash_kinds"].get(k, 0) for s in per_seed)
                           for k in sorted({k for s in per_seed for k in s["on"]["crash_kinds"]})},
    }
