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
command of ``examples/matmul_command``) or is built directly as an :class:`AbortProblem`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench._markdown import markdown_table
from deploytune.early_abort import EarlyAbort
from deploytune.evaluators.base import Evaluator
from deploytune.evaluators.classify import Rule
from deploytune.outcome import Constraint, CrashKind, Objective, Status
from deploytune.space import Space

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

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

    from rich.text import Text

    def say(text: str) -> None:
        if console is not None:
            console.print(Text(text), highlight=False)  # holds user text: never markup

    per_seed: list[dict[str, Any]] = []
    for seed in seed_list:
        on_result, on = run_once(problem, seed, budget, early=True)
        say(f"seed {seed}, early abort on:  {on['wall_s']:.1f} s, {on['aborted']} aborted, "
            f"{on['timeouts']} timed out, best {_num(on['best_value'])}")
        _, off = run_once(problem, seed, budget, early=False)
        say(f"seed {seed}, early abort off: {off['wall_s']:.1f} s, {off['timeouts']} timed "
            f"out, best {_num(off['best_value'])}")
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
        per_seed.append({"seed": seed, "on": on, "off": off, "counterfactual": rows,
                         "limit_counterfactual": limit_rows,
                         "measured_saved_s": measured,
                         "aborted_would_be_feasible": sum(r["full_status"] == "feasible"
                                                          for r in rows)})
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


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "none" if value is None else format(value, fmt)


_HEAD = ["seed", "wall s (on)", "wall s (off)", "aborted (on)", "timeouts (on / off)",
         "estimated saved s", "measured saved s", "best (on)", "best (off)"]


_SHORT_HEAD = ["seed", "wall\non", "wall\noff", "aborted", "timeouts\non / off", "est.\nsaved",
               "meas.\nsaved", "best\non", "best\noff"]


def _rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in report["per_seed"]:
        on, off = s["on"], s["off"]
        rows.append([str(s["seed"]), f"{on['wall_s']:.1f}", f"{off['wall_s']:.1f}",
                     str(on["aborted"]), f"{on['timeouts']} / {off['timeouts']}",
                     f"{on['estimated_saved_s']:.1f}", f"{s['measured_saved_s']:.1f}",
                     _num(on["best_value"]), _num(off["best_value"])])
    t = report["total"]
    rows.append(["total", f"{t['wall_on_s']:.1f}", f"{t['wall_off_s']:.1f}", str(t["aborted"]),
                 f"{t['timeouts_on']} / {t['timeouts_off']}", f"{t['estimated_saved_s']:.1f}",
                 f"{t['measured_saved_s']:.1f}", "", ""])
    return rows


def _short(config: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


def _counterfactual_cells(seed: int, r: Mapping[str, Any]) -> list[str]:
    outcome = r["full_status"] + (f" ({r['full_crash_kind']})" if r["full_crash_kind"] else "")
    est = "" if r["estimated_saved_s"] is None else f"{r['estimated_saved_s']:.1f}"
    return [str(seed), str(r["number"]), f"`{_short(r['config'])}`", f"{r['aborted_cost_s']:.2f}",
            est, f"{r['full_cost_s']:.2f}", outcome, f"{r['measured_saved_s']:.2f}"]


def early_abort_markdown(report: dict[str, Any]) -> str:
    """The comparison as markdown: setup, per-seed table, aborted trials, notes.

    Args:
        report: The dict returned by :func:`compare_early_abort`.

    Returns:
        Markdown text.
    """
    m = report["machine"]
    rule = report["early_abort"]
    timeout = (f"{report['timeout_s']:g} s" if report["timeout_s"] is not None
               else "no time limit")
    lines = [f"# Early abort on {report['problem']}: seconds saved", ""]
    if report.get("command"):
        lines += ["```bash", report["command"], "```", ""]
    lines += [
        f"Problem `{report['problem']}`" + (f" ({report['source']})" if report["source"]
                                            else "") + f": `{report['evaluator']}`. Sampler "
        f"`{report['sampler']}`, {report['budget']} trials per run, seeds "
        f"{', '.join(map(str, report['seeds']))}, time limit per trial {timeout}. Early abort "
        f"on: k = {rule['before_feasible']:g} x the limit before the first feasible trial, "
        f"{rule['after_feasible']:g} x after; off: switched off. Measured on {m['cpus']} CPUs, "
        f"{m['platform']}, Python {m['python']}, {m['date']}.", "",
        *markdown_table(_HEAD, _rows(report))]
    t = report["total"]
    lines += [
        "",
        "- *wall s*: wall-clock seconds of the whole `optimize` run (sampler included).",
        "- *estimated saved s*: the tuner's own estimate, the sum of `seconds_saved` of the "
        "aborted trials (remaining time at the streamed `progress` pace, else the median full "
        "run minus the time spent).",
        f"- *measured saved s*: the counterfactual. Each aborted trial's configuration was run "
        f"again with early abort off and the same time limit ({t['counterfactual_s']:.1f} s "
        f"in all); saved = full run - aborted run, summed. A full run that hit the time limit "
        f"counts the time limit, as it would have in the tuner.",
        "- The two runs of a seed start identically but diverge at the first trial that ends "
        "differently (an aborted trial and a finished one teach the sampler different "
        "things), so *wall s (off) - wall s (on)* compares different sets of configurations; "
        "the counterfactual is the clean measure of what aborting saved.",
        f"- Aborted configurations that would have been feasible had they run to the end: "
        f"{t['aborted_would_be_feasible']} of {t['aborted']}.",
    ]
    cf = [(s["seed"], r) for s in report["per_seed"] for r in s["counterfactual"]]
    if cf:
        head = ["seed", "trial", "configuration", "aborted after s", "estimated saved s",
                "full run s", "full run outcome", "measured saved s"]
        lines += ["", "Aborted trials and their counterfactual full runs:", "",
                  *markdown_table(head, (_counterfactual_cells(seed, r) for seed, r in cf))]
    crashes = ", ".join(f"{n} {k}" for k, n in t["crash_kinds_on"].items()) or "none"
    lines += ["", f"Crashes contained by isolation in the early-abort-on runs: {crashes} "
                  f"(each in its own process; the tuner went on)."]
    lc = [(s["seed"], r) for s in report["per_seed"] for r in s.get("limit_counterfactual", [])]
    if report.get("limit_counterfactual_s") is not None:
        lines += ["", f"Time limit counterfactual: every trial that hit the "
                      f"{timeout} limit was run again under "
                      f"{report['limit_counterfactual_s']:g} s ({t['limit_rerun_s']:.1f} s in "
                      f"all); the limit saved {t['limit_saved_s']:.1f} s (a lower bound where "
                      f"the re-run timed out again)."]
        if lc:
            head = ["seed", "trial", "configuration", "limited run s", "longer run s",
                    "longer run outcome", "measured saved s"]
            lines += ["", *markdown_table(head, (
                [str(seed), str(r["number"]), f"`{_short(r['config'])}`",
                 f"{r['limited_cost_s']:.2f}", f"{r['long_cost_s']:.2f}",
                 r["long_status"] + (f" ({r['long_crash_kind']})" if r["long_crash_kind"]
                                     else ""), f"{r['measured_saved_s']:.2f}"]
                for seed, r in lc))]
    return "\n".join(lines) + "\n"


def early_abort_table(report: dict[str, Any]) -> Table:
    """The per-seed comparison as a rich table.

    Args:
        report: The dict returned by :func:`compare_early_abort`.

    Returns:
        A :class:`rich.table.Table`.
    """
    from rich import box
    from rich.table import Table

    t = Table(title=f"Early abort on {report['problem']} ({report['budget']} trials per run)",
              caption="seconds; est. = the tuner's estimate, meas. = the counterfactual",
              box=box.SIMPLE_HEAD)
    for i, name in enumerate(_SHORT_HEAD):  # two-line headers: fits 80 columns
        t.add_column(name, justify="left" if i == 0 else "right")
    for cells in _rows(report):
        t.add_row(*cells)
    return t
