"""The early-abort comparison (:mod:`deploybench.early_abort`) as a report: markdown
(setup, per-seed table, aborted trials and their counterfactuals, notes) and a rich table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deploybench._markdown import markdown_table

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["early_abort_markdown", "early_abort_table", "format_value"]


def format_value(value: float | None, fmt: str = ".4g") -> str:
    """``value`` formatted with ``fmt``, or ``none``."""
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
                     format_value(on["best_value"]), format_value(off["best_value"])])
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
        report: The dict returned by :func:`~deploybench.early_abort.compare_early_abort`.

    Returns:
        Markdown text.
    """
    timeout = (f"{report['timeout_s']:g} s" if report["timeout_s"] is not None
               else "no time limit")
    lines = [f"# Early abort on {report['problem']}: seconds saved", ""]
    if report.get("command"):
        lines += ["```bash", report["command"], "```", ""]
    lines += [_setup_text(report, timeout), "", *markdown_table(_HEAD, _rows(report))]
    t = report["total"]
    lines += ["", *_notes(t)]
    cf = [(s["seed"], r) for s in report["per_seed"] for r in s["counterfactual"]]
    if cf:
        head = ["seed", "trial", "configuration", "aborted after s", "estimated saved s",
                "full run s", "full run outcome", "measured saved s"]
        lines += ["", "Aborted trials and their counterfactual full runs:", "",
                  *markdown_table(head, (_counterfactual_cells(seed, r) for seed, r in cf))]
    crashes = ", ".join(f"{n} {k}" for k, n in t["crash_kinds_on"].items()) or "none"
    lines += ["", f"Crashes contained by isolation in the early-abort-on runs: {crashes} "
                  f"(each in its own process; the tuner went on)."]
    if report.get("limit_counterfactual_s") is not None:
        lines += _limit_section(report, timeout)
    return "\n".join(lines) + "\n"


def _setup_text(report: dict[str, Any], timeout: str) -> str:
    """The paragraph on the problem, the sampler, the rule and the machine."""
    m = report["machine"]
    rule = report["early_abort"]
    return (
        f"Problem `{report['problem']}`" + (f" ({report['source']})" if report["source"]
                                            else "") + f": `{report['evaluator']}`. Sampler "
        f"`{report['sampler']}`, {report['budget']} trials per run, seeds "
        f"{', '.join(map(str, report['seeds']))}, time limit per trial {timeout}. Early abort "
        f"on: k = {rule['before_feasible']:g} x the limit before the first feasible trial, "
        f"{rule['after_feasible']:g} x after; off: switched off. Measured on {m['cpus']} CPUs, "
        f"{m['platform']}, Python {m['python']}, {m['date']}.")


def _notes(t: Mapping[str, Any]) -> list[str]:
    """The notes under the per-seed table (``t``: the report's totals)."""
    return [
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


def _limit_section(report: dict[str, Any], timeout: str) -> list[str]:
    """The time-limit counterfactual: its summary and, if any, its re-run trials."""
    t = report["total"]
    lines = ["", f"Time limit counterfactual: every trial that hit the "
                 f"{timeout} limit was run again under "
                 f"{report['limit_counterfactual_s']:g} s ({t['limit_rerun_s']:.1f} s in "
                 f"all); the limit saved {t['limit_saved_s']:.1f} s (a lower bound where "
                 f"the re-run timed out again)."]
    lc = [(s["seed"], r) for s in report["per_seed"] for r in s.get("limit_counterfactual", [])]
    if lc:
        head = ["seed", "trial", "configuration", "limited run s", "longer run s",
                "longer run outcome", "measured saved s"]
        lines += ["", *markdown_table(head, (
            [str(seed), str(r["number"]), f"`{_short(r['config'])}`",
             f"{r['limited_cost_s']:.2f}", f"{r['long_cost_s']:.2f}",
             r["long_status"] + (f" ({r['long_crash_kind']})" if r["long_crash_kind"]
                                 else ""), f"{r['measured_saved_s']:.2f}"]
            for seed, r in lc))]
    return lines


def early_abort_table(report: dict[str, Any]) -> Table:
    """The per-seed comparison as a rich table.

    Args:
        report: The dict returned by :func:`~deploybench.early_abort.compare_early_abort`.

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
