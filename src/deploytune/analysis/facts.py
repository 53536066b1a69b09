"""Everything a study's summary says, computed once (:func:`summary_facts`) and written as
plain text (:func:`deploytune.analysis.summary.summary_text`), HTML
(:mod:`deploytune.analysis.report`) or rich (the command line)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial

from deploytune.analysis.closest import Closest, closest_constraint, metric_value, violations
from deploytune.analysis.formatting import fmt_num, fmt_seconds, last_line
from deploytune.analysis.loading import FINISHED, is_interrupted
from deploytune.history import ATTR_SECONDS_SAVED
from deploytune.outcome import Constraint, CrashKind, Objective, Status
from deploytune.tuner import Result, TrialRecord

__all__ = ["Margin", "SummaryFacts", "rerun_text", "summary_facts"]


@dataclass
class Margin:
    """How far the best feasible trial is from one constraint's limit.

    Attributes:
        constraint: The constraint.
        value: The trial's value of its metric (``None``: not measured).
        margin: The distance to the limit, in the metric's unit (> 0: met).
        percent: ``margin`` as a percentage of the limit (``None`` for a limit of 0).
    """

    constraint: Constraint
    value: float | None
    margin: float | None
    percent: float | None


@dataclass
class SummaryFacts:
    """Everything a summary says (see the module docstring).

    ``best`` is the best feasible trial, with ``margins`` to each constraint; without one,
    ``closest`` (with ``closest_misses``: every constraint its trial misses, and by how much)
    and ``hint`` say what stood in the way, and ``common_crash`` (kind, count, an example
    error) the most common crash.
    """

    title: str
    objective: Objective
    constraints: list[Constraint]
    total: int
    counts: dict[Status, int]
    crash_kinds: dict[str, int]
    interrupted: int
    waste: float
    spent_s: float
    wasted_s: float
    saved_s: float | None
    best: TrialRecord | None
    aborted_s: float = 0.0
    estimated: int = 0
    margins: list[Margin] = field(default_factory=list)
    closest: Closest | None = None
    closest_misses: list[tuple[Constraint, float, float]] = field(default_factory=list)
    hint: str | None = None
    common_crash: tuple[str, int, str | None] | None = None

    @property
    def problem(self) -> str:
        """``maximize throughput subject to latency_ms <= 20``."""
        text = f"{self.objective.direction} {self.objective.metric}"
        if self.constraints:
            text += " subject to " + ", ".join(str(c) for c in self.constraints)
        return text

    @property
    def counts_line(self) -> str:
        """``N trials: a feasible, b infeasible, c crashed (kinds), d aborted; ...``."""
        crashed = f"{self.counts[Status.CRASHED]} crashed"
        if self.crash_kinds:
            crashed += " (" + ", ".join(f"{k} {n}" for k, n in self.crash_kinds.items()) + ")"
        line = (f"{self.total} trials: {self.counts[Status.FEASIBLE]} feasible, "
                f"{self.counts[Status.INFEASIBLE]} infeasible, {crashed}, "
                f"{self.counts[Status.ABORTED]} aborted")
        if self.interrupted:
            line += f"; {self.interrupted} interrupted (not counted)"
        return line

    @property
    def cost_line(self) -> str:
        """The waste, the seconds spent and wasted, and what early abort cost and saved."""
        share = self.wasted_s / self.spent_s if self.spent_s > 0 else 0.0
        line = (f"waste {self.waste:.0%} of trials; {fmt_seconds(self.spent_s)} spent, "
                f"{fmt_seconds(self.wasted_s)} ({share:.0%}) on trials that were not feasible")
        return line + self.abort_text

    @property
    def abort_text(self) -> str:
        """What stopping trials early cost (measured) and saved (estimated, when it can be)."""
        n = self.counts[Status.ABORTED]
        if not n:
            return ""
        text = (f"; {n} trial{'s' if n > 1 else ''} stopped early after "
                f"{fmt_seconds(self.aborted_s)}")
        if self.saved_s is not None and self.saved_s > 0:
            text += f", early abort saved about {fmt_seconds(self.saved_s)} (estimated"
            return text + (f" for {self.estimated} of them)" if self.estimated < n else ")")
        return text + (" (no saving estimated: they had already run about as long as a "
                       "complete trial or their time limit)")

    @property
    def no_metrics_line(self) -> str:
        """Why there is no closest constraint."""
        if self.counts[Status.CRASHED] == self.total and self.total:
            return "no trial produced metrics: every trial crashed"
        return "no trial produced the constrained metrics"

    @property
    def closest_line(self) -> str:
        """``closest: trial 3 has p95_ms = 23.4, 3.4 over the limit of p95_ms <= 20``."""
        assert self.closest is not None
        c, rec, short = self.closest
        return (f"closest: trial {rec.number} has {c.metric} = {fmt_num(self.closest.value)}, "
                f"{fmt_num(short)} {'over' if c.op == '<=' else 'under'} the limit of {c}")


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0


def _finite_number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _seconds_saved(trials: Sequence[TrialRecord],
                   study_trials: Sequence[FrozenTrial]) -> tuple[float | None, int]:
    """The seconds early abort saved by estimate, summed over the aborted trials with a
    positive estimate, and how many those are; ``None`` when no trial recorded any.

    An estimate of 0 is no saving measured but the estimate failing (the trial had already run
    as long as a typical complete one): it is not counted.
    """
    attrs = {t.number: t.user_attrs.get(ATTR_SECONDS_SAVED) for t in study_trials}
    found = False
    total = 0.0
    positive = 0
    for rec in trials:
        if rec.status is not Status.ABORTED:
            continue
        v = _finite_number(getattr(rec, "seconds_saved", None))
        if v is None:
            v = _finite_number(attrs.get(rec.number))
        if v is not None:
            found = True
            if v > 0:
                total += v
                positive += 1
    return (total if found else None), positive


def _default_title(result: Result) -> str:
    if result.study is not None:
        return f"deploytune study {result.study.study_name!r}"
    return "deploytune result"


def _hint(closest: Closest, misses: list[tuple[Constraint, float, float]]) -> str:
    parts = []
    for c, value, _ in misses or [(closest.constraint, closest.value, closest.shortfall)]:
        bound = "at least" if c.op == "<=" else "at most"
        parts.append(f"{c} to {bound} {fmt_num(value)}")
    return "relax " + " and ".join(parts) + ", or widen the space"


def _kind(rec: TrialRecord) -> str:
    return (rec.crash_kind or CrashKind.RUNTIME_ERROR).value


def _counted_facts(result: Result, trials: Sequence[TrialRecord],
                   study_trials: Sequence[FrozenTrial], interrupted: int,
                   title: str | None) -> SummaryFacts:
    """The counts, costs and best trial over the judged ``trials``."""
    counts = {s: sum(t.status is s for t in trials) for s in Status}
    kinds = Counter(_kind(t) for t in trials if t.status is Status.CRASHED)
    order = {k.value: i for i, k in enumerate(CrashKind)}
    crash_kinds = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], order.get(kv[0], 99))))
    saved, estimated = _seconds_saved(trials, study_trials)
    return SummaryFacts(
        title=title or _default_title(result),
        objective=result.objective,
        constraints=list(result.constraints),
        total=len(trials),
        counts=counts,
        crash_kinds=crash_kinds,
        interrupted=interrupted,
        waste=(sum(t.status is not Status.FEASIBLE for t in trials) / len(trials)
               if trials else 0.0),
        spent_s=sum(_finite(t.cost_s) for t in trials),
        wasted_s=sum(_finite(t.cost_s) for t in trials if t.status is not Status.FEASIBLE),
        saved_s=saved,
        best=Result(list(trials), result.objective, list(result.constraints)).best_trial,
        aborted_s=sum(_finite(t.cost_s) for t in trials if t.status is Status.ABORTED),
        estimated=estimated,
    )


def _add_margins(facts: SummaryFacts, best: TrialRecord) -> None:
    for c in facts.constraints:
        v = metric_value(best, c.metric)
        margin = c.margin(v) if v is not None else None
        pct = (100.0 * margin / abs(c.limit)
               if margin is not None and c.limit != 0 else None)
        facts.margins.append(Margin(c, v, margin, pct))


def _add_obstacles(facts: SummaryFacts, result: Result, trials: Sequence[TrialRecord]) -> None:
    """Nothing was feasible: the closest constraint, the hint and the most common crash."""
    facts.closest = closest_constraint(Result(list(trials), result.objective,
                                              list(result.constraints)))
    if facts.closest is not None:
        rec = facts.closest.trial
        facts.closest_misses = [(c, rec.metrics[c.metric], -c.margin(rec.metrics[c.metric]))
                                for c, _ in violations(rec, facts.constraints)]
        facts.hint = _hint(facts.closest, facts.closest_misses)
    crashed = [t for t in trials if t.status is Status.CRASHED]
    if crashed and facts.crash_kinds:
        kind, n = max(facts.crash_kinds.items(), key=lambda kv: kv[1])
        example = next((t.error for t in crashed if _kind(t) == kind and t.error), None)
        facts.common_crash = (kind, n, last_line(example))


def summary_facts(result: Result, title: str | None = None) -> SummaryFacts:
    """What the summary of ``result`` says, interrupted trials left out of every count.

    Args:
        result: The result of a study.
        title: The summary's first line; by default names the study.
    """
    study_trials: list[FrozenTrial] = []
    if result.study is not None:
        study_trials = list(result.study.get_trials(deepcopy=False, states=FINISHED))
    interrupted = {t.number for t in study_trials if is_interrupted(t)}
    trials = [t for t in result.trials if t.number not in interrupted]
    facts = _counted_facts(result, trials, study_trials,
                           (len(interrupted) if result.study is not None
                            else int(getattr(result, "interrupted", 0) or 0)), title)
    if facts.best is not None:
        _add_margins(facts, facts.best)
    else:
        _add_obstacles(facts, result, trials)
    return facts


def rerun_text(result: Result) -> str:
    """``"; 2 re-runs during the search, 4 finalists' re-runs after the budget"`` or ``""``."""
    during = sum(t.repeat_of is not None and not t.validation for t in result.trials)
    final = sum(t.validation for t in result.trials)
    parts = ([f"{during} re-run{'s' if during != 1 else ''} during the search"] if during
             else []) + ([f"{final} finalists' re-run{'s' if final != 1 else ''} after the "
                          f"budget"] if final else [])
    return "; " + ", ".join(parts) if parts else ""
