"""A self-contained HTML report of a deploytune study, with two figures.

:func:`write_report` writes into a folder:

* ``best_so_far.png``: the best feasible objective value against the trial number (a step
  line), every trial marked along the x axis in the colour of its outcome;
* ``timeline.png``: one bar per trial over wall-clock time, coloured by outcome and, for
  crashes, by crash kind;
* ``report.html``: a single file (figures embedded) with the problem, the spec, the summary and
  a table of every trial. Every piece of text taken from the study is HTML-escaped.

matplotlib is imported inside the drawing functions, and drawn through its Agg canvas without
``pyplot``: no display is needed, and the process's matplotlib backend is left alone. Metric
names are drawn as they are (a ``$`` never starts mathtext, see :func:`mpl_text`), and
objective values of any magnitude (``1e308``, ``inf``, ``nan``) are drawn or listed.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial

from deploytune.analysis.facts import SummaryFacts, summary_facts
from deploytune.analysis.formatting import fmt_num, fmt_seconds
from deploytune.analysis.loading import FINISHED, is_interrupted, load_result
from deploytune.analysis.summary import recommendation_lines
from deploytune.history import ATTR_ATTEMPTS, ATTR_COST, ATTR_ERROR, ATTR_LOG
from deploytune.outcome import CrashKind, Objective, Status
from deploytune.tuner import Result, TrialRecord

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

__all__ = ["CATEGORY_COLORS", "mpl_text", "write_report"]

BEST_SO_FAR_PNG = "best_so_far.png"
"""File name of the best-so-far figure."""
TIMELINE_PNG = "timeline.png"
"""File name of the timeline figure."""
REPORT_HTML = "report.html"
"""File name of the HTML report."""

INTERRUPTED = "interrupted"
"""Category of trials whose evaluation was interrupted."""

CATEGORY_COLORS: dict[str, str] = {
    Status.FEASIBLE.value: "#2ca02c",
    Status.INFEASIBLE.value: "#ff7f0e",
    Status.ABORTED.value: "#7f7f7f",
    f"crashed: {CrashKind.OOM.value}": "#d62728",
    f"crashed: {CrashKind.TIMEOUT.value}": "#9467bd",
    f"crashed: {CrashKind.RUNTIME_ERROR.value}": "#8c564b",
    f"crashed: {CrashKind.INVALID_CONFIG.value}": "#e377c2",
    f"crashed: {CrashKind.TRANSIENT.value}": "#17becf",
    INTERRUPTED: "#bcbd22",
}
"""Colour of each trial category in the figures and the HTML table (legend order)."""

_ERROR_CHARS = 300
_LOG_CHARS = 2000


@dataclass(frozen=True)
class _Row:
    """One finished trial of the study, as the report shows it."""

    number: int
    category: str
    record: TrialRecord | None
    frozen: FrozenTrial

    @property
    def start(self) -> datetime | None:
        return self.frozen.datetime_start

    @property
    def end(self) -> datetime | None:
        return self.frozen.datetime_complete


def _category(rec: TrialRecord) -> str:
    if rec.status is Status.CRASHED:
        return f"crashed: {(rec.crash_kind or CrashKind.RUNTIME_ERROR).value}"
    return rec.status.value


def _rows(study: optuna.Study, result: Result) -> list[_Row]:
    """Every finished trial: judged ones with their record, interrupted ones without."""
    records = {r.number: r for r in result.trials}
    rows = []
    for t in sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number):
        if is_interrupted(t):
            rows.append(_Row(t.number, INTERRUPTED, None, t))
        elif t.number in records:
            rec = records[t.number]
            rows.append(_Row(t.number, _category(rec), rec, t))
    return rows


# ------------------------------------------------------------------------------------ figures


def mpl_text(text: Any) -> str:
    """``text`` for a matplotlib label, drawn literally: each ``$`` is escaped, so a metric
    named ``$\\frac$`` never starts mathtext (which would fail or change it).

    Args:
        text: Any user-supplied name.

    Returns:
        The label text.
    """
    return str(text).replace("$", r"\$")


def _axis_scale(values: Sequence[float]) -> float:
    """1, or the power of ten that brings values of extreme magnitude (beyond 1e100, or below
    1e-100) to a range where matplotlib's axis arithmetic (limits, margins, transforms) cannot
    overflow."""
    big = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if big == 0.0 or 1e-100 <= big <= 1e100:
        return 1.0
    return 10.0 ** max(math.floor(math.log10(big)), -300)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _legend(ax: Any, categories: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    present = [c for c in CATEGORY_COLORS if c in set(categories)]
    if present:
        ax.legend(handles=[Patch(color=CATEGORY_COLORS[c], label=c) for c in present],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                  frameon=False)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#555555")


def _best_so_far_figure(rows: Sequence[_Row], objective: Objective, path: Path) -> Path:
    """Draw the best feasible objective value against the trial number.

    Args:
        rows: The finished trials.
        objective: The objective (its direction decides what "best" is).
        path: The PNG to write.

    Returns:
        ``path``.
    """
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure(8.0, 4.0)
    ax = fig.add_subplot()
    ax.set_xlabel("trial")
    metric = mpl_text(objective.metric)
    ax.set_title(f"best feasible {metric} so far ({objective.direction})")
    xs: list[int] = []
    ys: list[float] = []
    best: float | None = None
    feas_x: list[int] = []
    feas_y: list[float] = []
    not_finite: list[str] = []
    for row in rows:
        rec = row.record
        if (rec is not None and rec.status is Status.FEASIBLE and rec.value is not None
                and not math.isfinite(rec.value)):
            not_finite.append(f"trial {row.number}: {fmt_num(rec.value)}")
        elif (rec is not None and rec.status is Status.FEASIBLE and rec.value is not None
                and math.isfinite(rec.value)):
            feas_x.append(row.number)
            feas_y.append(rec.value)
            if best is None or objective.better(rec.value, best):
                best = rec.value
        if best is not None:
            xs.append(row.number)
            ys.append(best)
    scale = _axis_scale(feas_y)
    ax.set_ylabel(f"best feasible {metric}" + (f" (x {scale:.0e})" if scale != 1.0 else ""))
    if xs:
        ax.step(xs, [y / scale for y in ys], where="post", color=CATEGORY_COLORS["feasible"],
                linewidth=2, label="best so far")
        ax.scatter(feas_x, [y / scale for y in feas_y], s=14,
                   color=CATEGORY_COLORS["feasible"], alpha=0.5, zorder=3)
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo - 0.12 * (hi - lo), hi)  # room for the rug below the curve
    else:
        _empty(ax, "no feasible trial" if rows else "no finished trial")
        ax.set_yticks([])
    bad = [r for r in rows if r.category != Status.FEASIBLE.value]
    if bad:
        # the trials that were not feasible, as a rug along the x axis, coloured by outcome
        ax.scatter([r.number for r in bad], [0.03] * len(bad),
                   c=[CATEGORY_COLORS[r.category] for r in bad], marker="|", s=120,
                   transform=ax.get_xaxis_transform(), zorder=4)
    if rows:
        ax.set_xlim(rows[0].number - 0.5, rows[-1].number + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not_finite:
        shown = ", ".join(not_finite[:3]) + (", ..." if len(not_finite) > 3 else "")
        ax.text(0.01, 0.98, f"not drawn, feasible but not finite: {shown}",
                transform=ax.transAxes, ha="left", va="top", fontsize="small", color="#555555")
    _legend(ax, [r.category for r in rows])
    return _save(fig, path)


def _timeline_figure(rows: Sequence[_Row], path: Path) -> Path:
    """Draw one bar per trial from its start to its end, coloured by outcome.

    Args:
        rows: The finished trials (those without start or end times are skipped).
        path: The PNG to write.

    Returns:
        ``path``.
    """
    from matplotlib.ticker import MaxNLocator

    timed = [(r, r.start, r.end) for r in rows if r.start is not None and r.end is not None]
    fig = _new_figure(8.0, max(3.0, min(12.0, 1.5 + 0.12 * len(timed))))
    ax = fig.add_subplot()
    ax.set_xlabel("seconds since the first trial started")
    ax.set_ylabel("trial")
    ax.set_title("trials over wall-clock time")
    if timed:
        t0 = min(start for _, start, _ in timed)
        starts = [(start - t0).total_seconds() for _, start, _ in timed]
        spans = [max(0.0, (end - start).total_seconds()) for _, start, end in timed]
        colors = [CATEGORY_COLORS[r.category] for r, _, _ in timed]
        numbers = [r.number for r, _, _ in timed]
        ax.barh(numbers, spans, left=starts, height=0.8, color=colors)
        # a tick at each start keeps very short trials visible
        ax.scatter(starts, numbers, c=colors, marker="|", s=40, zorder=3)
        end = max((a + b for a, b in zip(starts, spans, strict=True)), default=0.0)
        pad = 0.03 * end if end > 0 else 1.0
        ax.set_xlim(-pad, end + pad)
        ax.invert_yaxis()
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        _empty(ax, "no finished trial with start and end times")
        ax.set_yticks([])
    _legend(ax, [r.category for r, _, _ in timed])
    return _save(fig, path)


# --------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;padding:1em;overflow:auto}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em}
.bad{color:#b00}.good{color:#070}.hint{font-weight:bold}
img{max-width:100%;height:auto;border:1px solid #eee}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num_cell(v: float | None) -> str:
    return f'<td class="num">{_e(fmt_num(v))}</td>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table; ``rows`` hold ready-made ``<td>`` cells."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(head: Sequence[str], items: Mapping[str, Any], *, numbers: bool) -> str:
    """Two columns; with ``numbers``, floats are shortened (metrics), else shown exactly."""
    rows = []
    for k, v in items.items():
        cell = _num_cell(v) if numbers and isinstance(v, float) else f"<td>{_e(v)}</td>"
        rows.append([f"<td>{_e(k)}</td>", cell])
    return _table(head, rows)


def _summary_html(f: SummaryFacts) -> str:
    parts = [f"<p>{_e(f.counts_line)}</p>", f"<p>{_e(f.cost_line)}</p>"]
    if f.best is not None:
        parts.append(f'<p class="good">best {_e(f.objective.metric)} = '
                     f"<b>{_e(fmt_num(f.best.value))}</b> (trial {f.best.number})</p>")
        parts.append("<h3>configuration</h3>" + _kv_table(["param", "value"], f.best.config,
                                                         numbers=False))
        parts.append("<h3>metrics</h3>" + _kv_table(["metric", "value"], f.best.metrics,
                                                   numbers=True))
        if f.margins:
            rows = [[f"<td>{_e(m.constraint)}</td>", _num_cell(m.value),
                     _num_cell(m.margin) if m.margin is not None else "<td>not measured</td>",
                     f'<td class="num">{"" if m.percent is None else f"{m.percent:.1f}%"}</td>']
                    for m in f.margins]
            parts.append("<h3>margins</h3>"
                         + _table(["constraint", "value", "margin", "% of limit"], rows))
        return "\n".join(parts)
    parts.append('<p class="bad"><b>no feasible configuration found</b></p>')
    if f.closest is None:
        parts.append(f"<p>{_e(f.no_metrics_line)}</p>")
    else:
        parts.append(f"<p>{_e(f.closest_line)}</p>")
        rows = [[f"<td>{_e(c)}</td>", _num_cell(v), _num_cell(s)]
                for c, v, s in f.closest_misses]
        parts.append(_table(["constraint missed", "value", "past the limit by"], rows))
        parts.append(f'<p class="hint">hint: {_e(f.hint)}</p>')
    if f.common_crash is not None:
        kind, n, example = f.common_crash
        parts.append(f"<p>most common crash: {_e(kind)} ({n} trials)"
                     + (f", e.g. <code>{_e(example)}</code>" if example else "") + "</p>")
    return "\n".join(parts)


def _params_text(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def _truncate(text: str | None, limit: int = _ERROR_CHARS) -> str:
    if not text:
        return ""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_cell(error: Any, log: Any) -> str:
    """The truncated error and, when the trial kept one, its log tail folded away."""
    out = f"<code>{_e(_truncate(error if isinstance(error, str) else None))}</code>"
    if isinstance(log, str) and log.strip():
        tail = log[-_LOG_CHARS:]
        out += f"<details><summary>log</summary><pre>{_e(tail)}</pre></details>"
    return out


def _trials_html(rows: Sequence[_Row]) -> str:
    out = []
    for row in rows:
        rec = row.record
        swatch = f'<span class="swatch" style="background:{CATEGORY_COLORS[row.category]}">' \
                 "</span>"
        if rec is None:
            status, kind, value = INTERRUPTED, "", None
            config: Mapping[str, Any] = row.frozen.params
            cost = row.frozen.user_attrs.get(ATTR_COST)
            error = row.frozen.user_attrs.get(ATTR_ERROR)
        else:
            status = rec.status.value
            kind = rec.crash_kind.value if rec.crash_kind else ""
            value, config, cost, error = rec.value, rec.config, rec.cost_s, rec.error
        attempts = row.frozen.user_attrs.get(ATTR_ATTEMPTS)
        cost_text = fmt_num(float(cost)) if isinstance(cost, (int, float)) else ""
        if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts > 1:
            cost_text += f" ({attempts} attempts)"
        out.append([f'<td class="num">{row.number}</td>', f"<td>{swatch}{_e(status)}</td>",
                    f"<td>{_e(kind)}</td>", _num_cell(value),
                    f"<td>{_e(_params_text(config))}</td>",
                    f'<td class="num">{_e(cost_text)}</td>',
                    f"<td>{_error_cell(error, row.frozen.user_attrs.get(ATTR_LOG))}</td>"])
    return _table(["trial", "status", "crash kind", "objective", "params", "cost (s)", "error"],
                  out)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _recommendation_html(result: Result) -> str:
    """What to deploy and how sure the runs make it (the summary's lines, escaped)."""
    rec = result.recommendation
    lines = recommendation_lines(result, rec)
    if not lines:
        return ""
    css = "good" if rec is not None and rec.reliable else "bad"
    return (f'<h2>recommendation</h2>\n<p class="{css}"><b>{_e(lines[0])}</b></p>\n'
            f"<pre>{_e(chr(10).join(lines[1:]))}</pre>")


def _html(title: str, facts: SummaryFacts, spec: Mapping[str, Any] | None, figures: Sequence[str],
          trials: str, recommendation: str = "") -> str:
    spec_html = ""
    if spec is not None:
        text = json.dumps(spec, indent=2, default=str, ensure_ascii=False)
        spec_html = f"<h2>spec</h2>\n<pre>{_e(text)}</pre>"
    total = fmt_seconds(facts.spent_s)
    interrupted = f" and {facts.interrupted} interrupted" if facts.interrupted else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p>{_e(facts.problem)}</p>
{spec_html}
<h2>summary</h2>
{_summary_html(facts)}
{recommendation}
<h2>best feasible value so far</h2>
{figures[0]}
<h2>timeline</h2>
{figures[1]}
<h2>trials</h2>
<p>{facts.total} judged trials{interrupted}, {_e(total)} of evaluation.</p>
{trials}
</body>
</html>
"""


def write_report(study: optuna.Study, out_dir: Path, *,
                 spec: dict[str, Any] | None = None) -> Path:
    """Write ``best_so_far.png``, ``timeline.png`` and a self-contained ``report.html``.

    Running and waiting trials are skipped; interrupted trials appear in the timeline and
    the trial table but in none of the counts.

    Args:
        study: An Optuna study written by :func:`deploytune.optimize`.
        out_dir: The folder to write into (created if needed; files are overwritten).
        spec: The tuning spec to show as JSON in the report, if any.

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: When the study was not written by deploytune (no ``dt.setup``).
    """
    import matplotlib

    result = load_result(study)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _rows(study, result)
    with matplotlib.rc_context({"text.usetex": False}):  # names are drawn as they are
        best_png = _best_so_far_figure(rows, result.objective, out_dir / BEST_SO_FAR_PNG)
        timeline_png = _timeline_figure(rows, out_dir / TIMELINE_PNG)
    title = f"deploytune report: {study.study_name}"
    facts = summary_facts(result, title)
    figures = [_img(best_png, f"best feasible {result.objective.metric} so far"),
               _img(timeline_png, "trials over wall-clock time")]
    path = out_dir / REPORT_HTML
    # text from a study may hold lone surrogates (undecodable bytes of an error): escaped
    path.write_text(_html(title, facts, spec, figures, _trials_html(rows),
                          _recommendation_html(result)), encoding="utf-8",
                    errors="backslashreplace")
    return path
