"""The analyses printed on a rich console: a study's summary (:func:`render_summary`) and its
parameter importance (:func:`render_importance`). :mod:`deploytune.analysis` computes them and
returns data; this module only prints. Names and values from a study are printed as they are,
never read as rich markup or emoji codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deploytune.analysis.facts import SummaryFacts, rerun_text, summary_facts
from deploytune.analysis.formatting import fmt_num, param_text
from deploytune.analysis.importance_report import ImportanceReport, Ranking, Rule
from deploytune.analysis.summary import recommendation_lines
from deploytune.outcome import Status
from deploytune.tuner import Result

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["render_importance", "render_summary"]


_STATUS_STYLE = {Status.FEASIBLE: "green", Status.INFEASIBLE: "dark_orange",
                 Status.CRASHED: "red", Status.ABORTED: "grey50"}


def _counts_text(f: SummaryFacts, result: Result) -> Text:
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
    counts.append(rerun_text(result))
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

    f = summary_facts(result, title)
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
            params.add_row(Text(k), Text(param_text(v)))
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


# ------------------------------------------------------------------------------ importance


def _bar(share: float, width: int = 20) -> str:
    full = share * width
    return "█" * int(full) + ("▌" if full - int(full) >= 0.5 else "")


def _ranking_table(main: Ranking, subs: Sequence[Ranking], params: Sequence[str]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("parameter")
    table.add_column(Text(main.target.split(": ")[0] if subs else "share"), justify="right")
    table.add_column("")
    for s in subs:
        table.add_column(Text(s.target.removeprefix("crash: ")), justify="right")
    for name in [*main.importances, *(p for p in params if p not in main.importances)]:
        share = main.importances.get(name, 0.0)
        cells: list[Any] = [Text(name), f"{share:.1%}", _bar(share)]
        cells += [f"{s.importances[name]:.1%}" if name in s.importances else "-" for s in subs]
        table.add_row(*cells)
    return table


def render_importance(report: ImportanceReport, console: Console) -> None:
    """Print the three rankings as rich tables, with the rules and the binding constraints.

    Parameter, metric and constraint names are printed as they are, never read as markup.

    Args:
        report: What :func:`deploytune.analysis.importance.importance` returned.
        console: Where to print.
    """
    from rich.text import Text

    console.rule(f"parameter importance ({report.n_trials} evaluations, seed {report.seed})")
    sections: list[tuple[str, Ranking, list[Ranking], list[Rule], str]] = [
        (f"objective: {report.objective_metric} among feasible trials", report.objective, [],
         [], ""),
        ("crash: crashed vs not crashed", report.crash, list(report.crash_kinds.values()),
         report.crash_rules, "crash rules (shallow decision tree)"),
        ("infeasibility: violated vs feasible among trials that ran", report.infeasibility,
         list(report.constraints.values()), report.infeasibility_rules,
         "infeasibility rules (shallow decision tree)"),
    ]
    for title, main, subs, rules, rules_title in sections:
        console.print(Text.assemble((title, "bold"), f" ({main.counts_text}; {main.method})"))
        if not main.available:
            console.print(Text(f"  no ranking: {main.note}", style="yellow"))
        else:
            avail = [s for s in subs if s.available]
            console.print(_ranking_table(main, avail, report.params))
            for s in subs:
                if not s.available:
                    console.print(Text(f"  {s.target}: no ranking: {s.note}", style="yellow"))
        if rules:
            console.print(Text(rules_title, style="bold"))
            for rule in rules:
                console.print(Text(f"  {rule}"), highlight=False)
        if main is report.infeasibility and report.binding:
            console.print(Text("binding constraints (most violated in each infeasible trial): "
                               + ", ".join(f"{c} ({n})" for c, n in report.binding.items())),
                          highlight=False)
