"""Summaries of a deploytune study: what ran, what it cost, what was found.

* :func:`load_result` rebuilds a :class:`~deploytune.tuner.Result` from a study written by
  :func:`deploytune.optimize` (objective, direction and constraints come from the study itself).
* :func:`closest_constraint` says, when nothing was feasible, which constraint stood in the way
  and by how much.
* :func:`render_summary` prints a rich summary; :func:`summary_text` is its plain-text twin.

Only the standard library, Optuna and (inside :func:`render_summary`) rich are imported:
``import deploytune.analysis.summary`` never imports matplotlib.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from optuna.trial import FrozenTrial, TrialState

from deploytune.feasibility import (
    DEFAULT_CONFIDENCE,
    ConfigRuns,
    ConstraintRuns,
    Recommendation,
)
from deploytune.history import (
    ATTR_CONFIDENCE,
    ATTR_INTERRUPTED,
    ATTR_SECONDS_SAVED,
    ATTR_SETUP,
    ATTR_STATUS,
)
from deploytune.outcome import Constraint, CrashKind, Objective, Status, parse_constraints
from deploytune.tuner import Result, TrialRecord

if TYPE_CHECKING:
    import optuna
    from rich.console import Console
    from rich.text import Text

__all__ = [
    "Closest",
    "closest_constraint",
    "load_result",
    "recommendation_lines",
    "render_summary",
    "summary_text",
]


_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
_RAN = (Status.FEASIBLE, Status.INFEASIBLE, Status.ABORTED)


# --------------------------------------------------------------------------------- loading


def load_result(study: optuna.Study) -> Result:
    """Rebuild the :class:`~deploytune.tuner.Result` of a study written by deploytune.

    The objective, its direction and the constraints are read from the study's ``dt.setup``
    user attribute. Interrupted trials (``dt.interrupted``) are left out, as are running and
    waiting ones.

    Args:
        study: An Optuna study created by :func:`deploytune.optimize`.

    Returns:
        The result over every finished, non-interrupted trial.

    Raises:
        ValueError: When the study has no (or a malformed) ``dt.setup`` attribute.
    """
    setup = study.user_attrs.get(ATTR_SETUP)
    if not isinstance(setup, dict) or not setup.get("objective"):
        raise ValueError(
            f"study {study.study_name!r} was not written by deploytune: it has no "
            f"{ATTR_SETUP!r} user attribute (objective, direction, constraints); run "
            f"deploytune.optimize on it, or build a Result with Result.from_study(study, "
            f"objective, constraints)")
    try:
        objective = Objective(str(setup["objective"]), str(setup.get("direction", "maximize")))
        constraints = parse_constraints(list(setup.get("constraints") or []))
    except ValueError as exc:
        raise ValueError(f"study {study.study_name!r}: its {ATTR_SETUP!r} user attribute is "
                         f"malformed: {exc}") from exc
    confidence = study.user_attrs.get(ATTR_CONFIDENCE, DEFAULT_CONFIDENCE)
    result = Result.from_study(study, objective, constraints,
                               confidence if isinstance(confidence, float) and 0 < confidence < 1
                               else DEFAULT_CONFIDENCE)
    interrupted = _interrupted_numbers(study)
    if interrupted:
        result.trials = [t for t in result.trials if t.number not in interrupted]
        if hasattr(result, "interrupted"):
            result.interrupted = len(interrupted)
    return result


def _is_interrupted(trial: FrozenTrial) -> bool:
    """Whether a trial's evaluation was interrupted rather than judged.

    A trial is interrupted when it carries ``dt.interrupted = True``, or when it is a failed
    trial marked ``aborted`` (how studies written before that attribute existed recorded a
    Ctrl-C).
    """
    attrs = trial.user_attrs
    if attrs.get(ATTR_INTERRUPTED) is True:
        return True
    return trial.state is TrialState.FAIL and attrs.get(ATTR_STATUS) == Status.ABORTED.value


def _interrupted_numbers(study: optuna.Study | None) -> set[int]:
    if study is None:
        return set()
    return {t.number for t in study.get_trials(deepcopy=False, states=_FINISHED)
            if _is_interrupted(t)}


# -------------------------------------------------------------------------- closest constraint


class Closest(NamedTuple):
    """The constraint that stood in the way when nothing was feasible.

    Attributes:
        constraint: The most-violated constraint of the closest trial.
        trial: The trial with the smallest total normalised violation.
        shortfall: How far the trial's metric is past the limit, in the metric's unit (> 0).
    """

    constraint: Constraint
    trial: TrialRecord
    shortfall: float

    @property
    def value(self) -> float:
        """The trial's value of the constraint's metric."""
        return self.trial.metrics[self.constraint.metric]


def _metric(rec: TrialRecord, metric: str) -> float | None:
    v = rec.metrics.get(metric)
    return None if v is None or math.isnan(v) else v


def _violations(rec: TrialRecord, constraints: Sequence[Constraint]) -> list[tuple[Constraint,
                                                                                float]]:
    """Violated constraints of ``rec`` with their normalised violation, worst first."""
    out = []
    for c in constraints:
        v = _metric(rec, c.metric)
        if v is not None and c.violation(v) > 0:
            out.append((c, c.violation(v)))
    out.sort(key=lambda cv: -cv[1])
    return out


def closest_constraint(result: Result) -> Closest | None:
    """Which constraint was closest to being met, when nothing was feasible.

    Among the trials that ran (infeasible, and aborted ones with metrics), the one with the
    smallest total normalised violation is the closest; trials missing a constrained metric
    rank after those that measured every one. Its most-violated constraint and the shortfall in
    the metric's unit are returned: for ``p95_ms <= 20`` and a closest trial at 23.4, the
    shortfall is 3.4.

    Args:
        result: The result of a study.

    Returns:
        ``(constraint, trial, shortfall)``; ``None`` when a trial was feasible, when there are
        no constraints, or when no trial produced the constrained metrics.
    """
    if result.count(Status.FEASIBLE) or not result.constraints:
        return None
    best: tuple[tuple[int, float, int], TrialRecord, list[tuple[Constraint, float]]] | None = None
    for rec in result.trials:
        if rec.status not in _RAN:
            continue
        measured = [c for c in result.constraints if _metric(rec, c.metric) is not None]
        violated = _violations(rec, result.constraints)
        if not measured or not violated:
            continue
        key = (len(result.constraints) - len(measured), sum(v for _, v in violated), rec.number)
        if best is None or key < best[0]:
            best = (key, rec, violated)
    if best is None:
        return None
    _, rec, violated = best
    c = violated[0][0]
    return Closest(c, rec, -c.margin(rec.metrics[c.metric]))


# ------------------------------------------------------------------------------------- facts


@dataclass
class _Margin:
    constraint: Constraint
    value: float | None
    margin: float | None
    percent: float | None


@dataclass
class _Facts:
    """Everything a summary says, computed once and rendered as text, rich or HTML."""

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
    margins: list[_Margin] = field(default_factory=list)
    closest: Closest | None = None
    closest_misses: list[tuple[Constraint, float, float]] = field(default_factory=list)
    hint: str | None = None
    common_crash: tuple[str, int, str | None] | None = None

    @property
    def problem(self) -> str:
        text = f"{self.objective.direction} {self.objective.metric}"
        if self.constraints:
            text += " subject to " + ", ".join(str(c) for c in self.constraints)
        return text

    @property
    def counts_line(self) -> str:
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
        if self.counts[Status.CRASHED] == self.total and self.total:
            return "no trial produced metrics: every trial crashed"
        return "no trial produced the constrained metrics"

    @property
    def closest_line(self) -> str:
        assert self.closest is not None
        c, rec, short = self.closest
        return (f"closest: trial {rec.number} has {c.metric} = {fmt_num(self.closest.value)}, "
                f"{fmt_num(short)} {'over' if c.op == '<=' else 'under'} the limit of {c}")


def fmt_num(v: float | None) -> str:
    """Format a number compactly (``"23.4"``, ``"1.2e+06"``, ``"nan"``); ``""`` for ``None``.

    Args:
        v: The number.

    Returns:
        Its short text.
    """
    if v is None:
        return ""
    return f"{v:.6g}"


def fmt_seconds(s: float) -> str:
    """Format a duration for humans: ``"0.42 ms"``, ``"12.3 s"``, ``"4.2 min"``, ``"1.5 h"``.

    Args:
        s: Seconds.

    Returns:
        The duration as text.
    """
    if not math.isfinite(s):
        return f"{s} s"
    if abs(s) < 1:
        return f"{s * 1000:.3g} ms"
    if abs(s) < 120:
        return f"{s:.1f} s"
    if abs(s) < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


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


def _facts(result: Result, title: str | None = None) -> _Facts:
    study_trials: list[FrozenTrial] = []
    if result.study is not None:
        study_trials = list(result.study.get_trials(deepcopy=False, states=_FINISHED))
    interrupted = {t.number for t in study_trials if _is_interrupted(t)}
    trials = [t for t in result.trials if t.number not in interrupted]
    counts = {s: sum(t.status is s for t in trials) for s in Status}
    kinds = Counter((t.crash_kind or CrashKind.RUNTIME_ERROR).value for t in trials
                    if t.status is Status.CRASHED)
    order = {k.value: i for i, k in enumerate(CrashKind)}
    crash_kinds = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], order.get(kv[0], 99))))
    spent = sum(_finite(t.cost_s) for t in trials)
    saved, estimated = _seconds_saved(trials, study_trials)
    wasted = sum(_finite(t.cost_s) for t in trials if t.status is not Status.FEASIBLE)
    facts = _Facts(
        title=title or _default_title(result),
        objective=result.objective,
        constraints=list(result.constraints),
        total=len(trials),
        counts=counts,
        crash_kinds=crash_kinds,
        interrupted=(len(interrupted) if result.study is not None
                     else int(getattr(result, "interrupted", 0) or 0)),
        waste=(sum(t.status is not Status.FEASIBLE for t in trials) / len(trials)
               if trials else 0.0),
        spent_s=spent,
        wasted_s=wasted,
        saved_s=saved,
        best=Result(trials, result.objective, list(result.constraints)).best_trial,
        aborted_s=sum(_finite(t.cost_s) for t in trials if t.status is Status.ABORTED),
        estimated=estimated,
    )
    if facts.best is not None:
        for c in facts.constraints:
            v = _metric(facts.best, c.metric)
            margin = c.margin(v) if v is not None else None
            pct = (100.0 * margin / abs(c.limit)
                   if margin is not None and c.limit != 0 else None)
            facts.margins.append(_Margin(c, v, margin, pct))
        return facts
    sub = Result(trials, result.objective, list(result.constraints))
    facts.closest = closest_constraint(sub)
    if facts.closest is not None:
        rec = facts.closest.trial
        facts.closest_misses = [(c, rec.metrics[c.metric], -c.margin(rec.metrics[c.metric]))
                                for c, _ in _violations(rec, facts.constraints)]
        facts.hint = _hint(facts.closest, facts.closest_misses)
    crashed = [t for t in trials if t.status is Status.CRASHED]
    if crashed and facts.crash_kinds:
        kind, n = max(facts.crash_kinds.items(), key=lambda kv: kv[1])
        example = next((t.error for t in crashed
                        if (t.crash_kind or CrashKind.RUNTIME_ERROR).value == kind and t.error),
                       None)
        facts.common_crash = (kind, n, _last_line(example))
    return facts


def _rerun_text(result: Result) -> str:
    """``"; 2 re-runs during the search, 4 finalists' re-runs after the budget"`` or ``""``."""
    during = sum(t.repeat_of is not None and not t.validation for t in result.trials)
    final = sum(t.validation for t in result.trials)
    parts = ([f"{during} re-run{'s' if during != 1 else ''} during the search"] if during
             else []) + ([f"{final} finalists' re-run{'s' if final != 1 else ''} after the "
                          f"budget"] if final else [])
    return "; " + ", ".join(parts) if parts else ""


def _constraint_line(c: ConstraintRuns, confidence: float) -> tuple[str, str]:
    """One constraint of the recommendation: runs that met it, mean and spread, margin."""
    text = f"met in {c.met}/{c.ran} runs"
    if c.mean is not None:
        text += f", mean {fmt_num(c.mean)}"
        if len(c.values) > 1:
            text += f" (sd {fmt_num(c.std)})"
        text += f", margin {fmt_num(c.margin)}"
        interval = c.margin_interval(confidence)
        if interval is not None:
            text += (f" [{fmt_num(interval[0])}, {fmt_num(interval[1])}] "
                     f"({confidence:.0%} of new runs)")
    return str(c.constraint), text + f", P(met) {c.p_met:.2f}"


def recommendation_lines(result: Result, rec: Recommendation | None) -> list[str]:
    """What to deploy and how sure the runs make it, as plain lines (empty when nothing was
    feasible): the configuration (when it is not the best observed run's), whether it meets
    the chance constraint, and per constraint the runs that met it, mean, spread and margin
    with its interval.

    Args:
        result: The result of a study.
        rec: Its :attr:`~deploytune.tuner.Result.recommendation` (computed once by the caller,
            which also colours the verdict by it).
    """
    if rec is None:
        return []
    runs: ConfigRuns = rec.runs
    best = result.best_trial
    verdict = (f"reliably feasible: P(feasible) {runs.p_feasible:.2f} >= {rec.confidence:g}"
               if rec.reliable else
               f"NOT reliably feasible: no configuration reaches P(feasible) >= "
               f"{rec.confidence:g}; this one is the likeliest ({runs.p_feasible:.2f})")
    lines = [f"recommended: {verdict}; {runs.feasible_runs} of {runs.runs} "
             f"run{'s' if runs.runs != 1 else ''} feasible, {result.objective.metric} "
             f"{fmt_num(runs.value)} (pessimistic {fmt_num(runs.bound)})"]
    if best is None or best.config != rec.config:
        lines.append("  configuration (not the best observed run's: that one is less sure):"
                     if best is not None else "  configuration:")
        lines += _kv_lines((k, _param_text(v)) for k, v in rec.config.items())
    if runs.constraints:
        lines.append("  per constraint:")
        lines += _kv_lines(_constraint_line(c, rec.confidence) for c in runs.constraints)
    return lines


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0


def _last_line(text: str | None, limit: int = 160) -> str | None:
    if not text:
        return None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _kv_lines(items: Iterable[tuple[str, str]], indent: str = "    ") -> list[str]:
    pairs = list(items)
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {v}" for k, v in pairs]


def _margin_text(m: _Margin) -> str:
    if m.margin is None:
        return "not measured"
    pct = f" ({m.percent:.1f}% of the limit)" if m.percent is not None else ""
    return f"{fmt_num(m.value)}, margin {fmt_num(m.margin)}{pct}"


def _param_text(v: Any) -> str:
    """Parameters are shown exactly (``str`` of a float is its shortest exact form)."""
    return str(v)


# ------------------------------------------------------------------------------------- render


def summary_text(result: Result, *, title: str | None = None) -> str:
    """The summary of ``result`` as plain text (for logs and tests).

    Args:
        result: The result of a study (e.g. from :func:`load_result` or
            :func:`deploytune.optimize`).
        title: The first line; by default names the study.

    Returns:
        Several lines: the problem, the counts, the cost, then the best feasible configuration
        with its metrics and margins, or the constraint that was closest to being met.
    """
    f = _facts(result, title)
    lines = [f.title, f.problem, f.counts_line + _rerun_text(result), f.cost_line]
    if f.best is not None:
        lines.append(f"best {f.objective.metric} = {fmt_num(f.best.value)} "
                     f"(trial {f.best.number})")
        lines.append("  configuration:")
        lines += _kv_lines((k, _param_text(v)) for k, v in f.best.config.items())
        lines.append("  metrics:")
        lines += _kv_lines((k, fmt_num(v)) for k, v in f.best.metrics.items())
        if f.margins:
            lines.append("  margins:")
            lines += _kv_lines((str(m.constraint), _margin_text(m)) for m in f.margins)
        lines += recommendation_lines(result, result.recommendation)
        return "\n".join(lines)
    lines.append("no feasible configuration found")
    if f.closest is None:
        lines.append(f.no_metrics_line)
    else:
        lines.append(f.closest_line)
        lines += [f"  also misses {c}: {fmt_num(v)} ({fmt_num(s)} past the limit)"
                  for c, v, s in f.closest_misses[1:]]
        lines.append(f"hint: {f.hint}")
    if f.common_crash is not None:
        kind, n, example = f.common_crash
        lines.append(f"most common crash: {kind} ({n} trials)"
                     + (f", e.g. {example}" if example else ""))
    return "\n".join(lines)


_STATUS_STYLE = {Status.FEASIBLE: "green", Status.INFEASIBLE: "dark_orange",
                 Status.CRASHED: "red", Status.ABORTED: "grey50"}


def _counts_text(f: _Facts, result: Result) -> Text:
    """``N trials: a feasible, b infeasible, c crashed (kinds), d aborted; ...`` in colour."""
    from rich.text import Text

    counts = Text(f"{f.total} trials: ")
    parts: list[tuple[str, str]] = [
        (f"{f.counts[Status.FEASIBLE]} feasible", _STATUS_STYLE[Status.FEASIBLE]),
        (f"{f.counts[Status.INFEASIBLE]} infeasible", _STATUS_STYLE[Status.INFEASIBLE]),
        (f"{f.counts[Status.CRASHED]} crashed", _STATUS_STYLE[Status.CRASHED]),
        (f"{f.counts[Status.ABORTED]} aborted", _STATUS_STYLE[Status.ABORTED]),
    ]
    for i, (text, style) in enumerate(parts):
        counts.append(text, style=style)
        if i == 2 and f.crash_kinds:
            counts.append(" (" + ", ".join(f"{k} {n}" for k, n in f.crash_kinds.items()) + ")")
        counts.append(", " if i < len(parts) - 1 else "")
    if f.interrupted:
        counts.append(f"; {f.interrupted} interrupted (not counted)", style="yellow")
    counts.append(_rerun_text(result))
    return counts


def render_summary(result: Result, console: Console, *, title: str | None = None) -> None:
    """Print a rich summary of ``result`` on ``console``.

    Counts (feasible, infeasible, crashed by kind, aborted, interrupted), waste, seconds spent
    and wasted, seconds saved by early abort, then the best feasible configuration (params,
    metrics, margin to each constraint) or, when nothing was feasible, the constraint closest
    to being met and a hint.

    Args:
        result: The result of a study.
        console: Where to print.
        title: The heading; by default names the study.

    Nothing taken from the study (names, values, errors) is read as rich markup.
    """
    from rich.table import Table
    from rich.text import Text

    f = _facts(result, title)
    console.rule(Text(f.title))
    console.print(Text(f.problem, style="bold"))
    console.print(_counts_text(f, result))
    console.print(Text(f.cost_line))
    if f.best is not None:
        console.print(Text.assemble("best ", (f.objective.metric, "bold"), " = ",
                                    (fmt_num(f.best.value), "bold green"),
                                    f" (trial {f.best.number})"))
        params = Table(title="configuration", title_justify="left")
        params.add_column("param")
        params.add_column("value", style="cyan")
        for k, v in f.best.config.items():
            params.add_row(Text(k), Text(_param_text(v)))
        console.print(params)
        metrics = Table(title="metrics", title_justify="left")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for k, v in f.best.metrics.items():
            metrics.add_row(Text(k), fmt_num(v))
        console.print(metrics)
        if f.margins:
            margins = Table(title="margins", title_justify="left")
            for col in ("constraint", "value", "margin", "% of limit"):
                margins.add_column(col, justify="left" if col == "constraint" else "right")
            for m in f.margins:
                pct = "" if m.percent is None else f"{m.percent:.1f}%"
                margins.add_row(Text(str(m.constraint)), fmt_num(m.value),
                                fmt_num(m.margin) if m.margin is not None else "not measured",
                                pct)
            console.print(margins)
        rec = result.recommendation
        first = "bold green" if rec is not None and rec.reliable else "bold red"
        for i, line in enumerate(recommendation_lines(result, rec)):
            console.print(Text(line, style=first if i == 0 else ""))
        return
    console.print(Text("no feasible configuration found", style="bold red"))
    if f.closest is None:
        console.print(Text(f.no_metrics_line))
    else:
        console.print(Text(f.closest_line))
        for c, v, s in f.closest_misses[1:]:
            console.print(Text(f"  also misses {c}: {fmt_num(v)} ({fmt_num(s)} past the limit)"))
        console.print(Text.assemble(("hint: ", "bold"), f.hint or ""))
    if f.common_crash is not None:
        kind, n, example = f.common_crash
        console.print(Text(f"most common crash: {kind} ({n} trials)"
                           + (f", e.g. {example}" if example else "")))
