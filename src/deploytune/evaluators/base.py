"""What every evaluator shares: the streaming :class:`Monitor`, the raw :class:`Evaluation`
it returns, and the :class:`Evaluator` contract.

An evaluator runs one configuration and reports *facts*: the metrics it measured, or the error
it died of, with what it already knows about the crash (a timeout it enforced, a signal, an
exception class), plus a bounded tail of its logs. Judging those facts against the objective and
the constraints, applying the user's classification rules and retrying transient failures is
the tuner's job (:mod:`deploytune.tuner`), so every evaluator behaves the same.

While it runs, an evaluator streams intermediate measurements to a :class:`Monitor` (for
example p95 latency after the warm-up, then after each measurement pass). The monitor holds the
tuner's early-abort rule: when it decides to stop, :meth:`Monitor.report` raises
:class:`AbortTrial`. In-process evaluators let that exception unwind the user's function;
isolated evaluators kill the child's process group and return the partial metrics.
"""

from __future__ import annotations

import inspect
import math
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deploytune.outcome import CrashKind, crash_kind_of

__all__ = [
    "AbortTrial",
    "Evaluation",
    "Evaluator",
    "FunctionEvaluator",
    "Monitor",
    "Report",
    "numeric_metrics",
]

Report = Callable[..., None]
"""The ``report`` callable handed to evaluation functions: ``report(metrics, step=None,
rung=None)`` or ``report(p95_ms=12.0, step=1)``; ``rung`` names the fidelity rung the
measurements end (see :class:`Monitor`)."""

AbortCheck = Callable[[Mapping[str, float], "int | None", "str | None"], "str | None"]
"""A rule deciding early abort: (partial metrics so far, step, rung the report ends or None)
-> reason to abort, or None."""


class AbortTrial(Exception):
    """Raised by :meth:`Monitor.report` when the tuner stops the trial early.

    Attributes:
        reason: Why, e.g. ``"latency_p95_ms = 130 > 5 x limit 20"``.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite-or-infinite numeric entries of ``metrics`` (bools and non-numbers dropped)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        f = float(v)
        if not math.isnan(f):
            out[str(k)] = f
    return out


class Monitor:
    """Receives one trial's streamed measurements and applies the early-abort rule.

    **Rungs.** An evaluation may pass through named fidelity rungs on its way to the end, each
    a cheaper, noisier version of the full measurement: ``boot`` (the server started and
    answered one request: its memory, its KV cache), ``short`` (a few requests), a number of
    timed windows, ... A report that ends a rung names it (``report(metrics, rung="short")``);
    the metrics streamed so far are then kept as that rung's (:attr:`rungs`), recorded with the
    trial, and the tuner decides whether the run goes on (is promoted) or stops there
    (:mod:`deploytune.promotion`). The end of the evaluation is the top rung.

    Args:
        check: Called after every report with the merged partial metrics, the step and the
            rung the report ends (or ``None``); a non-empty string return aborts the trial with
            that reason. ``None`` never aborts.

    Attributes:
        partial: The latest value of every numeric metric streamed so far.
        reports: How many reports arrived.
        started: ``time.monotonic()`` when the monitor was created (the trial's start).
        rungs: Rung name -> the partial metrics when that rung ended, in the order reached.
        rung: The last rung reached (``None``: none yet).
    """

    def __init__(self, check: AbortCheck | None = None):
        self._check = check
        self.partial: dict[str, float] = {}
        self.reports = 0
        self.started = time.monotonic()
        self.abort_reason: str | None = None
        self.rungs: dict[str, dict[str, float]] = {}
        self.rung: str | None = None

    def report(self, metrics: Mapping[str, Any] | None = None, step: int | None = None,
               rung: str | None = None, **kw: Any) -> None:
        """Stream intermediate measurements; raise :class:`AbortTrial` to stop the trial.

        Non-numeric values are ignored; so is a ``rung`` that is not a non-empty string. After
        an abort every further call raises again.
        """
        merged = dict(metrics or {})
        merged.update(kw)
        self.partial.update(numeric_metrics(merged))
        self.reports += 1
        if not (isinstance(rung, str) and rung.strip()):
            rung = None
        if rung is not None and self.abort_reason is None:
            self.rung = rung = rung.strip()
            self.rungs[rung] = dict(self.partial)
        if self.abort_reason is None and self._check is not None:
            self.abort_reason = self._check(dict(self.partial), step, rung) or None
        if self.abort_reason is not None:
            raise AbortTrial(self.abort_reason)

    def estimate(self, metrics: Mapping[str, Any], rung: str) -> None:
        """Hand over an estimator's prediction as ``rung`` (before the evaluation starts; see
        :mod:`deploytune.evaluators.estimated`): kept in :attr:`rungs` and judged by the check
        (with ``step`` ``None``), but not merged into :attr:`partial`, and not the rung the
        evaluation reached (:attr:`rung`). Raises :class:`AbortTrial` when the check stops
        the trial here.
        """
        predicted = numeric_metrics(metrics)
        self.rungs[rung] = predicted
        if self.abort_reason is None and self._check is not None:
            self.abort_reason = self._check(dict(predicted), None, rung) or None
        if self.abort_reason is not None:
            raise AbortTrial(self.abort_reason)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the trial started."""
        return time.monotonic() - self.started


@dataclass
class Evaluation:
    """The raw facts of one evaluation, before the tuner judges them.

    Attributes:
        metrics: Final metrics; for an aborted or crashed run, the partial ones streamed so far.
        error: Why the run crashed; ``None`` when it ran to the end (or was aborted).
        crash_kind: The evaluator's own classification of the crash when it knows one (it
            enforced a timeout, the child ran out of memory, an exception class); ``None``
            leaves it to the tuner's rules (default ``runtime_error``).
        aborted: The reason, when the monitor stopped the run early.
        log: A bounded tail of the run's stdout / stderr (empty for in-process runs).
        cost_s: Wall-clock seconds the run took.
        info: Extra facts worth keeping on the trial (exit code, signal name, pid, ...).
    """

    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    crash_kind: CrashKind | None = None
    aborted: str | None = None
    log: str = ""
    cost_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def crashed(self) -> bool:
        """Whether the run crashed (aborted runs did not)."""
        return self.error is not None


class Evaluator(ABC):
    """Runs one configuration and returns an :class:`Evaluation`; never raises for a crash.

    Subclasses: :class:`FunctionEvaluator` (in this process),
    :class:`~deploytune.evaluators.isolated.IsolatedEvaluator` (a Python function in a fresh
    child process), :class:`~deploytune.evaluators.command.CommandEvaluator` (an argv command).
    ``KeyboardInterrupt`` must propagate (after cleaning up any child process).
    """

    timeout_s: float | None = None
    """The wall-clock limit of one evaluation, in seconds (``None``: none). The evaluators
    that enforce one set it; the tuner reads it to estimate the seconds an early abort saved."""

    @abstractmethod
    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Run ``config``, streaming intermediate measurements to ``monitor``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (worker processes, servers). Called once, at the end."""

    def describe(self) -> str:
        """One line for reports, e.g. ``"python examples.toy:evaluate (isolated, 60 s)"``."""
        return type(self).__name__


def _accepts_report(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes a second argument (or a ``report`` keyword) for streaming."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = list(sig.parameters.values())
    if any(p.name == "report" for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def call_evaluation_function(fn: Callable[..., Any], config: dict[str, Any],
                             report: Report) -> Any:
    """Call ``fn(config)`` or, when it accepts one, ``fn(config, report)``."""
    if _accepts_report(fn):
        return fn(config, report)
    return fn(config)


class FunctionEvaluator(Evaluator):
    """Calls a Python function in this process: ``fn(config) -> metrics`` or
    ``fn(config, report) -> metrics``.

    Fast, but a segfault or a hang takes the tuner down with it: use
    :class:`~deploytune.evaluators.isolated.IsolatedEvaluator` for anything real. Exceptions
    are crashes, classified by :func:`~deploytune.outcome.crash_kind_of`.
    """

    def __init__(self, fn: Callable[..., Mapping[str, Any]]):
        if not callable(fn):
            raise TypeError(f"evaluate: expected a callable config -> metrics, "
                            f"got {type(fn).__name__}")
        self.fn = fn

    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Call the function, turning exceptions into a crashed :class:`Evaluation`."""
        start = time.perf_counter()
        try:
            metrics = call_evaluation_function(self.fn, dict(config), monitor.report)
        except AbortTrial as exc:
            return Evaluation(dict(monitor.partial), aborted=exc.reason,
                              cost_s=time.perf_counter() - start)
        except (Exception, SystemExit) as exc:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return Evaluation(dict(monitor.partial), error=text, crash_kind=crash_kind_of(exc),
                              cost_s=time.perf_counter() - start,
                              info={"exception": type(exc).__name__})
        cost = time.perf_counter() - start
        if not isinstance(metrics, Mapping):
            return Evaluation({}, error=f"the evaluator returned {type(metrics).__name__}, "
                              f"expected a dict of metrics", cost_s=cost)
        return Evaluation(dict(metrics), cost_s=cost)

    def describe(self) -> str:
        """``python <module>.<name> (in-process)``."""
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"python {getattr(self.fn, '__module__', '?')}:{name} (in-process)"
