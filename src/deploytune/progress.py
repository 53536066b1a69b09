"""The live progress display of ``deploytune tune``.

One line that says where the study stands: trial n/N, the status of the last trial, the best
feasible value so far, counts of crashes / infeasible / aborted trials, elapsed and estimated
remaining time. Fed by :func:`deploytune.optimize`'s ``on_trial_start`` and ``callbacks``.

Nothing taken from the spec or a trial (metric names, configurations, values) is ever read as
rich markup: it is escaped, or printed as :class:`~rich.text.Text`.
"""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from deploytune.history import TrialRecord
from deploytune.outcome import Objective, Status
from deploytune.result import Result

__all__ = ["TuneProgress"]

_STYLE = {Status.FEASIBLE: "green", Status.INFEASIBLE: "yellow", Status.CRASHED: "red",
          Status.ABORTED: "bright_black"}


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


class TuneProgress:
    """A rich progress line for one tuning run (a context manager).

    Args:
        objective: The objective (for "best so far").
        budget: The number of evaluations, or ``None`` when only a time budget is set.
        previous: The study's result before this run (resumed trials are counted).
        console: Where to draw.
        enabled: ``False`` prints one plain line per trial instead (logs, CI).
    """

    def __init__(self, objective: Objective, budget: int | None, previous: Result | None,
                 console: Console, enabled: bool = True):
        self.objective = objective
        self.budget = budget
        self.console = console
        self.enabled = enabled
        self.counts: Counter[str] = Counter()
        self.best: TrialRecord | None = None
        self.done = 0
        self.durations: list[float] = []
        self.started = False
        """Whether a trial of this run has started."""
        self._trial_started = time.monotonic()
        self.last = "-"
        for rec in previous.trials if previous else ():
            self._count(rec)
        self._progress = Progress(
            TextColumn("[bold]trial"), MofNCompleteColumn(), BarColumn(bar_width=24),
            TextColumn("{task.fields[state]}"), TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"), console=console, transient=False,
            disable=not enabled)
        self._task = self._progress.add_task("tune", total=budget, completed=self.done,
                                             state=self._state(), eta="?")

    def _count(self, rec: TrialRecord) -> None:
        self.done += not rec.validation  # finalists' re-runs are not evaluations of the budget
        key = rec.status.value if rec.crash_kind is None else f"crashed/{rec.crash_kind.value}"
        self.counts[key] += 1
        if rec.status is Status.FEASIBLE and rec.value is not None and (
                self.best is None or self.objective.better(rec.value, self.best.value or 0.0)):
            self.best = rec

    def _state(self) -> str:
        crashed = sum(v for k, v in self.counts.items() if k.startswith("crashed"))
        # rendered as markup by the TextColumn: the user's metric name is escaped
        best = (f"{escape(self.objective.metric)}={self.best.value:.4g} (#{self.best.number})"
                if self.best is not None and self.best.value is not None else "none")
        return (f"last: {self.last} | best: {best} | crashed {crashed} infeasible "
                f"{self.counts['infeasible']} aborted {self.counts['aborted']}")

    def _eta(self) -> str:
        if self.budget is None or not self.durations:
            return "?"
        mean = sum(self.durations) / len(self.durations)
        return _fmt_s(mean * max(0, self.budget - self.done))

    def on_start(self, number: int, config: dict[str, Any]) -> None:
        """Called before trial ``number`` runs."""
        self._trial_started = time.monotonic()
        self.started = True
        if not self.enabled:
            self.console.print(Text(f"trial {number}: running {config}"), soft_wrap=True)

    def on_trial(self, rec: TrialRecord) -> None:
        """Called after each recorded trial."""
        self.durations.append(time.monotonic() - self._trial_started)
        self._count(rec)
        status = rec.status.value if rec.crash_kind is None else \
            f"crashed/{rec.crash_kind.value}"
        self.last = f"[{_STYLE[rec.status]}]#{rec.number} {status}[/]"
        self._progress.update(self._task, completed=self.done, state=self._state(),
                              eta=self._eta())
        if not self.enabled:
            value = "" if rec.value is None else f" {self.objective.metric}={rec.value:.4g}"
            rerun = "" if rec.repeat_of is None else \
                f" (finalist's re-run of #{rec.repeat_of})" if rec.validation else \
                f" (re-run of #{rec.repeat_of})"
            self.console.print(Text(f"trial {rec.number}{rerun}: {status}{value} "
                                    f"({rec.cost_s:.1f}s)"), soft_wrap=True)

    def __enter__(self) -> TuneProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()
