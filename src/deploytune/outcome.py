"""The outcome model: what happened when a configuration was evaluated.

Crashed, ran-but-infeasible and feasible are different facts and are kept apart:

* :class:`Status` — ``feasible``, ``infeasible`` (ran, violated at least one constraint),
  ``crashed`` (with a :class:`CrashKind`) or ``aborted`` (stopped early by the tuner).
* :class:`Constraint` — parsed from strings such as ``"latency_p95_ms <= 20"``. Violations are
  normalised by the limit, so milliseconds and megabytes are never added together.
* :class:`Objective` — the metric to optimise and its direction.
* :func:`judge` turns an evaluator's metrics into an :class:`Outcome`;
  :func:`crash_kind_of` classifies an exception raised by an evaluator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Constraint",
    "CrashKind",
    "InvalidConfig",
    "Objective",
    "Outcome",
    "Status",
    "TransientError",
    "crash_kind_of",
    "judge",
    "parse_constraints",
]


class Status(StrEnum):
    """What became of one evaluation."""

    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    CRASHED = "crashed"
    ABORTED = "aborted"


class CrashKind(StrEnum):
    """Why an evaluation crashed; each kind calls for a different reaction of the tuner."""

    INVALID_CONFIG = "invalid_config"
    """Deterministic: the runtime rejects the combination (learn a rule, blacklist exactly)."""
    OOM = "oom"
    """Out of memory: near-monotone in batch size, context length, memory fraction."""
    TIMEOUT = "timeout"
    """The evaluation exceeded its wall-clock limit."""
    RUNTIME_ERROR = "runtime_error"
    """Any other failure of the evaluated configuration."""
    TRANSIENT = "transient"
    """An infrastructure hiccup (port in use, network): says nothing about the configuration."""


class InvalidConfig(Exception):
    """Raise from an evaluator when a configuration is invalid for the runtime.

    The trial is recorded as ``crashed`` with kind ``invalid_config``.
    """


class TransientError(Exception):
    """Raise from an evaluator for a failure that says nothing about the configuration.

    The trial is recorded as ``crashed`` with kind ``transient``; samplers do not learn from it.
    """


def crash_kind_of(exc: BaseException) -> CrashKind:
    """Classify an exception raised by an evaluator.

    ``MemoryError`` (or any ``*OutOfMemory*`` class, such as ``torch.cuda.OutOfMemoryError``)
    -> ``oom``, ``TimeoutError`` -> ``timeout``, :class:`InvalidConfig` ->
    ``invalid_config``, :class:`TransientError` -> ``transient``, anything else ->
    ``runtime_error``.
    """
    if isinstance(exc, MemoryError) or any(
            "OutOfMemory" in cls.__name__ for cls in type(exc).__mro__):
        # e.g. torch.cuda.OutOfMemoryError, which subclasses RuntimeError
        return CrashKind.OOM
    if isinstance(exc, TimeoutError):
        return CrashKind.TIMEOUT
    if isinstance(exc, InvalidConfig):
        return CrashKind.INVALID_CONFIG
    if isinstance(exc, TransientError):
        return CrashKind.TRANSIENT
    return CrashKind.RUNTIME_ERROR


_CONSTRAINT_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?P<op><=|>=|==|=<|=>|<|>|=)\s*"
    r"(?P<limit>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    """A hard constraint ``metric <= limit`` or ``metric >= limit``.

    Attributes:
        metric: The metric name, as returned by the evaluator.
        op: ``"<="`` (an upper cap) or ``">="`` (a floor).
        limit: The limit, in the metric's own unit.
    """

    metric: str
    op: str
    limit: float

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"constraint on {self.metric!r}: operator must be '<=' or '>='")
        if not math.isfinite(self.limit):
            raise ValueError(f"constraint on {self.metric!r}: the limit must be finite")

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse ``"latency_p95_ms <= 20"`` or ``"throughput >= 100"``.

        Raises:
            ValueError: naming the text and the expected form.
        """
        if isinstance(text, Constraint):
            return text
        if not isinstance(text, str):
            raise ValueError(f"constraint {text!r}: expected a string such as "
                             f"'latency_p95_ms <= 20'")
        m = _CONSTRAINT_RE.match(text)
        if m is None:
            raise ValueError(
                f"constraint {text!r}: cannot parse; write '<metric> <= <number>' or "
                f"'<metric> >= <number>', e.g. 'latency_p95_ms <= 20' or 'throughput >= 100'")
        op = m["op"]
        if op in ("<", ">", "==", "="):
            fix = {"<": "<=", ">": ">=", "==": "<= or >=", "=": "<= or >="}[op]
            raise ValueError(f"constraint {text!r}: operator {op!r} is not supported; "
                             f"use {fix} (constraints are inclusive caps or floors)")
        op = {"=<": "<=", "=>": ">="}.get(op, op)
        return cls(m["metric"], op, float(m["limit"]))

    @property
    def scale(self) -> float:
        """The unit that normalises violations: ``|limit|``, or 1 for a zero limit."""
        return abs(self.limit) if self.limit != 0 else 1.0

    def signed_violation(self, value: float) -> float:
        """Normalised signed distance to the limit: > 0 violated, <= 0 met (minus the margin).

        ``(value - limit) / |limit|`` for ``<=``, ``(limit - value) / |limit|`` for ``>=``.
        """
        d = value - self.limit if self.op == "<=" else self.limit - value
        return d / self.scale

    def violation(self, value: float) -> float:
        """Normalised violation, ``max(0, signed_violation)``; 0 when the constraint holds."""
        return max(0.0, self.signed_violation(value))

    def is_met(self, value: float) -> bool:
        """Whether ``value`` satisfies the constraint."""
        return self.signed_violation(value) <= 0.0

    def margin(self, value: float) -> float:
        """Distance to the limit in the metric's unit: positive = headroom, negative = overrun."""
        return self.limit - value if self.op == "<=" else value - self.limit

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.limit:g}"


def parse_constraints(constraints: Sequence[str | Constraint] | None) -> list[Constraint]:
    """Parse a list of constraint strings, rejecting two constraints of the same kind twice."""
    if constraints is None:
        return []
    if isinstance(constraints, (str, Constraint)):
        constraints = [constraints]
    out = [Constraint.parse(c) for c in constraints]  # type: ignore[arg-type]
    seen: set[tuple[str, str]] = set()
    for c in out:
        if (c.metric, c.op) in seen:
            raise ValueError(f"constraint {c}: {c.metric!r} already has a '{c.op}' constraint; "
                             f"keep only the tighter one")
        seen.add((c.metric, c.op))
    return out


@dataclass(frozen=True)
class Objective:
    """The metric to optimise and whether to maximise or minimise it."""

    metric: str
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError("objective: give the name of a metric, e.g. 'accuracy'")
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction: must be 'maximize' or 'minimize' "
                             f"(got {self.direction!r})")

    @property
    def sign(self) -> float:
        """+1 when maximising, -1 when minimising (``sign * value`` is always to maximise)."""
        return 1.0 if self.direction == "maximize" else -1.0

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return self.sign * a > self.sign * b


@dataclass
class Outcome:
    """The judged result of one evaluation, before it becomes a trial.

    The evaluator's side: :func:`deploytune.history.record` writes it onto the Optuna trial,
    and what is read back from the study is a :class:`~deploytune.history.TrialRecord` (which
    adds the trial's number and configuration and drops ``log`` and ``missing``).

    Attributes:
        status: feasible, infeasible, crashed or aborted.
        crash_kind: The kind of crash, for crashed trials only.
        metrics: Every metric the evaluator reported (partial ones for aborted trials).
        value: The objective value, when measured.
        violations: Constraint label -> normalised signed violation (> 0 violated).
        error: The error message of a crash, or the reason of an early abort.
        cost_s: Seconds the evaluation took (all attempts together).
        log: A bounded tail of the evaluation's stdout / stderr, kept for crashes.
        seconds_saved: For aborted trials, the estimated seconds the early abort saved.
        attempts: How many times the configuration was run (transient failures are retried).
        missing: Metrics that the objective or a constraint needs and that an evaluation
            which ran to its end did not report (such a trial is ``crashed/runtime_error``).
        rungs: Fidelity rung -> the metrics when the evaluation ended it, in the order reached
            (:class:`~deploytune.evaluators.base.Monitor`).
    """

    status: Status
    crash_kind: CrashKind | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None
    violations: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    cost_s: float = 0.0
    log: str = ""
    seconds_saved: float | None = None
    attempts: int = 1
    missing: tuple[str, ...] = ()
    rungs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def total_violation(self) -> float:
        """Sum of the positive normalised violations."""
        return sum(v for v in self.violations.values() if v > 0)

    @classmethod
    def crashed(cls, kind: CrashKind, error: str, cost_s: float = 0.0,
                metrics: Mapping[str, float] | None = None) -> Outcome:
        """A crashed outcome of ``kind`` with an error message."""
        return cls(Status.CRASHED, kind, dict(metrics or {}), error=error, cost_s=cost_s)

    def with_log(self, log: str) -> Outcome:
        """Set the log tail and return ``self`` (for chaining)."""
        self.log = log
        return self


def constraint_label(c: Constraint) -> str:
    """The key under which a constraint's violation is stored on a trial."""
    return f"{c.metric}{'_max' if c.op == '<=' else '_min'}"


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(
            value, "__float__")):
        raise TypeError(f"metric {name!r} is {value!r}, not a number")
    try:
        return float(value)
    except Exception as exc:  # a tensor whose conversion fails, a broken __float__, ...
        raise TypeError(f"metric {name!r} could not be read as a number: {exc}") from None


def judge(
    metrics: Mapping[str, Any],
    objective: Objective,
    constraints: Sequence[Constraint],
    cost_s: float = 0.0,
    aborted: bool = False,
) -> Outcome:
    """Turn an evaluator's metrics into an :class:`Outcome`.

    A metric needed by the objective or a constraint that is missing, not a number, or NaN makes
    the trial ``crashed/runtime_error`` with a message naming it: never a silent pass. With
    ``aborted`` the trial is ``aborted`` and missing metrics are allowed.
    """
    if not isinstance(metrics, Mapping):
        return Outcome.crashed(
            CrashKind.RUNTIME_ERROR,
            f"the evaluator returned {type(metrics).__name__}, expected a dict of metrics",
            cost_s)
    clean: dict[str, float] = {}
    bad: list[str] = []
    needed = [objective.metric] + [c.metric for c in constraints]
    for k, v in metrics.items():
        try:
            clean[str(k)] = _as_float(str(k), v)
        except (TypeError, ValueError) as exc:
            if str(k) in needed:  # extra non-numeric facts (e.g. "device": "cpu") are dropped
                bad.append(str(exc))
    if not aborted:
        missing = [m for m in dict.fromkeys(needed) if m not in clean]
        nan = [m for m in dict.fromkeys(needed) if m in clean and math.isnan(clean[m])]
        problems = bad + [f"metric {m!r} is missing from the evaluator's result" for m in missing]
        problems += [f"metric {m!r} is NaN" for m in nan]
        if problems:
            got = ", ".join(sorted(clean)) or "nothing"
            outcome = Outcome.crashed(CrashKind.RUNTIME_ERROR,
                                      "; ".join(problems) + f" (it returned: {got})", cost_s,
                                      clean)
            reported = {str(k) for k in metrics}
            outcome.missing = tuple(m for m in missing if m not in reported)
            return outcome
    violations = {constraint_label(c): c.signed_violation(clean[c.metric])
                  for c in constraints
                  if c.metric in clean and not math.isnan(clean[c.metric])}
    value = clean.get(objective.metric)
    if value is not None and math.isnan(value):
        value = None
    if aborted:
        status = Status.ABORTED
    elif all(v <= 0 for v in violations.values()):
        status = Status.FEASIBLE
    else:
        status = Status.INFEASIBLE
    return Outcome(status, None, clean, value, violations, None, cost_s)
