"""Isolation overhead: the milliseconds one trial costs an isolated evaluator.

Every case evaluates a trivial configuration (the function :func:`trivial`, or a command that
prints ``{"x": 1}``) through :func:`deploytune.execution.run_trial`, the full path the tuner
takes: spawn the child, speak the protocol, read the metrics, classify, judge. The in-process
:class:`~deploytune.evaluators.base.FunctionEvaluator` is the reference; the others pay for a
new process per trial:

* ``function``: :class:`~deploytune.evaluators.base.FunctionEvaluator` on :func:`trivial`;
* ``isolated``: :class:`~deploytune.evaluators.isolated.IsolatedEvaluator` on :func:`trivial`;
* ``isolated+memory``: the same with ``memory_mb`` set (``RLIMIT_AS`` in the child);
* ``command-python``: :class:`~deploytune.evaluators.command.CommandEvaluator` running
  ``{python} -c "print('{"x": 1}')"``;
* ``command-echo``: the same running ``/bin/echo '{"x": 1}'``.

Each case is run once untimed (lazy imports, page cache), then ``repeats`` times timed with
:func:`time.perf_counter`; the median, the 95th percentile, the minimum and the maximum are
reported in milliseconds.

This module is also the isolated cases' target module, imported by every child process: it
imports at the top only what the child has loaded already (the rest is imported where used),
so that the numbers measure the isolation, not this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploybench._markdown import markdown_table
from deploytune.evaluators.base import Evaluator, FunctionEvaluator
from deploytune.outcome import Objective, Status

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_REPEATS",
    "IsolationCase",
    "default_cases",
    "isolation_markdown",
    "isolation_overhead",
    "isolation_table",
    "machine_info",
    "percentile",
    "time_trials",
    "trivial",
]

DEFAULT_REPEATS = 50
"""Timed trials per case by default."""

DEFAULT_MEMORY_MB = 2048.0
"""The memory cap of the ``isolated+memory`` case (MiB)."""

_OBJECTIVE = Objective("x", "maximize")


def trivial(config: dict[str, Any]) -> dict[str, float]:
    """The cheapest possible evaluation function: ignores ``config``.

    Args:
        config: The configuration (unused).

    Returns:
        ``{"x": 1.0}``.
    """
    return {"x": 1.0}


@dataclass(frozen=True)
class IsolationCase:
    """One evaluator whose per-trial cost is measured.

    Attributes:
        key: Short name used in the tables (``"isolated+memory"``).
        label: What the case runs, in words.
        make: Builds a fresh evaluator (closed after the measurement).
    """

    key: str
    label: str
    make: Callable[[], Evaluator]


def default_cases(memory_mb: float = DEFAULT_MEMORY_MB) -> list[IsolationCase]:
    """The five cases of the module docstring, in-process reference first.

    Args:
        memory_mb: The memory cap of the ``isolated+memory`` case (MiB).

    Returns:
        The cases.
    """
    from deploytune.evaluators.command import CommandEvaluator
    from deploytune.evaluators.isolated import IsolatedEvaluator

    return [
        IsolationCase("function", "FunctionEvaluator(trivial), in-process reference",
                      lambda: FunctionEvaluator(trivial)),
        IsolationCase("isolated", "IsolatedEvaluator(trivial)",
                      lambda: IsolatedEvaluator(trivial)),
        IsolationCase("isolated+memory", f"IsolatedEvaluator(trivial, memory_mb={memory_mb:g})",
                      lambda: IsolatedEvaluator(trivial, memory_mb=memory_mb)),
        IsolationCase("command-python", "CommandEvaluator({python} -c print(...))",
                      lambda: CommandEvaluator(["{python}", "-c", "print('{{\"x\": 1}}')"])),
        IsolationCase("command-echo", "CommandEvaluator(/bin/echo '{\"x\": 1}')",
                      lambda: CommandEvaluator(["/bin/echo", '{{"x": 1}}'])),
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated.

    Args:
        values: At least one number.
        q: The percentile, between 0 and 100.

    Returns:
        The interpolated value (numpy's default ``linear`` method).

    Raises:
        ValueError: For an empty sequence or ``q`` outside [0, 100].
    """
    import numpy as np  # not at the top: this module is the isolated cases' child target

    if not values:
        raise ValueError("percentile: no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: q must be in [0, 100] (got {q!r})")
    return float(np.percentile(values, q))


def time_trials(evaluator: Evaluator, repeats: int, warmup: int = 1,
                config: dict[str, Any] | None = None) -> list[float]:
    """Milliseconds of ``run_trial(evaluator, config, ...)``, ``warmup`` untimed runs first.

    Args:
        evaluator: The evaluator; it must return the metric ``x`` (any value).
        repeats: Timed runs, at least 1.
        warmup: Untimed runs before them.
        config: The configuration evaluated (default ``{}``).

    Returns:
        One wall-clock duration in milliseconds per timed run.

    Raises:
        RuntimeError: When a run is not feasible (the evaluator crashed or returned no ``x``):
            a broken setup must not be reported as a fast one.
        ValueError: For ``repeats < 1`` or ``warmup < 0``.
    """
    from deploytune.execution import run_trial

    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1 (got {repeats!r})")
    if warmup < 0:
        raise ValueError(f"warmup: must be >= 0 (got {warmup!r})")
    cfg = dict(config or {})
    times: list[float] = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        outcome = run_trial(evaluator, cfg, _OBJECTIVE, (), retries=0)
        elapsed = time.perf_counter() - start
        if outcome.status is not Status.FEASIBLE:
            raise RuntimeError(f"trial {i} was {outcome.status.value}: "
                               f"{outcome.error or 'no metric x'}")
        if i >= warmup:
            times.append(1000.0 * elapsed)
    return times


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU count, platform, Python, date.

    Returns:
        A JSON-serialisable dict.
    """
    import datetime
    import os
    import platform
    import sys

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "date": datetime.date.today().isoformat(),
    }


def isolation_overhead(
    repeats: int = DEFAULT_REPEATS,
    cases: Sequence[IsolationCase] | None = None,
    out_dir: str | Path | None = None,
    console: Console | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Measure the per-trial wall-clock cost of each case.

    Args:
        repeats: Timed trials per case (after one untimed warm-up).
        cases: The evaluators to measure (default: :func:`default_cases`).
        out_dir: If given, ``isolation.md`` and ``isolation.json`` are written there.
        console: If given, the table is printed there.
        command: The command line that reproduces the measurement, for the report.

    Returns:
        ``{"repeats", "machine", "command", "rows"}``; one row per case: ``case``,
        ``evaluator`` (its ``describe()``), ``label``, ``repeats``, ``median_ms``, ``p95_ms``,
        ``min_ms``, ``max_ms``, ``mean_ms``, ``overhead_ms`` (median minus the first case's
        median) and ``error`` (``None``, or why the case could not be measured; its times are
        then ``None``).

    Raises:
        ValueError: For ``repeats < 1``.
    """
    import statistics
    from pathlib import Path

    from deploybench.runs import dumps_strict, write_text

    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1 (got {repeats!r})")
    rows: list[dict[str, Any]] = []
    for case in (cases if cases is not None else default_cases()):
        row: dict[str, Any] = {"case": case.key, "label": case.label, "evaluator": "",
                               "repeats": repeats, "median_ms": None, "p95_ms": None,
                               "min_ms": None, "max_ms": None, "mean_ms": None,
                               "overhead_ms": None, "error": None}
        evaluator: Evaluator | None = None
        try:
            evaluator = case.make()
            row["evaluator"] = evaluator.describe()
            ms = time_trials(evaluator, repeats)
        except Exception as exc:  # reported in the table
            row["error"] = f"{type(exc).__name__}: {exc}"
        else:
            row.update(median_ms=statistics.median(ms), p95_ms=percentile(ms, 95),
                       min_ms=min(ms), max_ms=max(ms), mean_ms=statistics.fmean(ms))
        finally:
            if evaluator is not None:
                evaluator.close()
        rows.append(row)
    reference = rows[0]["median_ms"] if rows else None
    for row in rows:
        if reference is not None and row["median_ms"] is not None:
            row["overhead_ms"] = row["median_ms"] - reference
    report = {"repeats": repeats, "machine": machine_info(), "command": command, "rows": rows}
    if out_dir is not None:
        out = Path(out_dir)
        write_text(out / "isolation.json", dumps_strict(report, indent=1) + "\n")
        write_text(out / "isolation.md", isolation_markdown(report))
    if console is not None:
        console.print(isolation_table(report))
    return report


def _cells(row: dict[str, Any]) -> list[str]:
    if row["error"]:
        return [row["case"], "error", "", "", ""]
    return [row["case"], f"{row['median_ms']:.2f}", f"{row['p95_ms']:.2f}",
            f"{row['min_ms']:.2f}", f"{row['overhead_ms']:+.2f}"]


_HEAD = ["evaluator", "median ms", "p95 ms", "min ms", "median - in-process ms"]


def isolation_markdown(report: dict[str, Any]) -> str:
    """The measurement as a markdown table with the command, machine and date.

    Args:
        report: The dict returned by :func:`isolation_overhead`.

    Returns:
        Markdown text; cases that failed are listed under the table.
    """
    m = report["machine"]
    lines = ["# Isolated evaluation: per-trial overhead", ""]
    if report.get("command"):
        lines += ["```bash", report["command"], "```", ""]
    lines += [f"Wall-clock milliseconds of one `run_trial` (spawn, protocol, classify, judge) "
              f"of a trivial evaluation returning `{{\"x\": 1}}`: one warm-up, then "
              f"{report['repeats']} timed trials per evaluator. Measured on {m['cpus']} CPUs, "
              f"{m['platform']}, Python {m['python']}, {m['date']}.", "",
              *markdown_table(_HEAD, (_cells(r) for r in report["rows"]))]
    lines += ["", "Evaluators:", ""]
    lines += [f"- `{r['case']}`: {r['label']}" + (f" (`{r['evaluator']}`)" if r["evaluator"]
                                                   else "") for r in report["rows"]]
    errors = [r for r in report["rows"] if r["error"]]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {r['case']}: `{r['error']}`" for r in errors]
    return "\n".join(lines) + "\n"


def isolation_table(report: dict[str, Any]) -> Table:
    """The measurement as a rich table.

    Args:
        report: The dict returned by :func:`isolation_overhead`.

    Returns:
        A :class:`rich.table.Table`.
    """
    from rich.table import Table

    t = Table(title=f"Per-trial overhead of isolated evaluation "
                    f"({report['repeats']} trials each, ms)")
    for i, name in enumerate(_HEAD):
        t.add_column(name, justify="left" if i == 0 else "right")
    for row in report["rows"]:
        t.add_row(*_cells(row))
    return t
