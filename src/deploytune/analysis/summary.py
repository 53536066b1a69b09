"""Summaries of a deploytune study: what ran, what it cost, what was found.

* :func:`load_result` rebuilds a :class:`~deploytune.tuner.Result` from a study written by
  :func:`deploytune.optimize` (objective, direction and constraints come from the study itself).
* :func:`closest_constraint` says, when nothing was feasible, which constraint stood in the way
  and by how much.
* :func:`summary_text` writes the summary as plain text and :func:`recommendation_lines` what
  to deploy; the command line prints the same facts (:mod:`deploytune.analysis.facts`) with
  rich (:func:`deploytune.cli.render_analysis.render_summary`).

Only the standard library and Optuna are imported: ``import deploytune.analysis.summary``
never imports matplotlib or rich.
"""

from __future__ import annotations

from deploytune.analysis.closest import Closest, closest_constraint
from deploytune.analysis.facts import Margin, rerun_text, summary_facts
from deploytune.analysis.formatting import fmt_num, fmt_seconds, kv_lines, param_text
from deploytune.analysis.loading import load_result
from deploytune.feasibility import ConfigRuns, ConstraintRuns, Recommendation
from deploytune.tuner import Result

__all__ = [
    "Closest",
    "closest_constraint",
    "fmt_num",
    "fmt_seconds",
    "load_result",
    "recommendation_lines",
    "summary_text",
]


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
        lines += kv_lines((k, param_text(v)) for k, v in rec.config.items())
    if runs.constraints:
        lines.append("  per constraint:")
        lines += kv_lines(_constraint_line(c, rec.confidence) for c in runs.constraints)
    return lines


def _margin_text(m: Margin) -> str:
    if m.margin is None:
        return "not measured"
    pct = f" ({m.percent:.1f}% of the limit)" if m.percent is not None else ""
    return f"{fmt_num(m.value)}, margin {fmt_num(m.margin)}{pct}"


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
    f = summary_facts(result, title)
    lines = [f.title, f.problem, f.counts_line + rerun_text(result), f.cost_line]
    if f.best is not None:
        lines.append(f"best {f.objective.metric} = {fmt_num(f.best.value)} "
                     f"(trial {f.best.number})")
        lines.append("  configuration:")
        lines += kv_lines((k, param_text(v)) for k, v in f.best.config.items())
        lines.append("  metrics:")
        lines += kv_lines((k, fmt_num(v)) for k, v in f.best.metrics.items())
        if f.margins:
            lines.append("  margins:")
            lines += kv_lines((str(m.constraint), _margin_text(m)) for m in f.margins)
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
