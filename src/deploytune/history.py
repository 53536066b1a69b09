"""How outcomes live on an Optuna study, and how samplers read them back.

Recording (:func:`record`):

* feasible / infeasible -> ``COMPLETE`` with the objective value and, per constraint, the
  normalised signed violation (see "Constraint format" below);
* aborted -> ``PRUNED`` with its partial constraint values;
* crashed -> ``FAIL``.

Every trial also carries user attributes (prefix ``dt.``): status, crash kind, metrics, error
message and cost in seconds. Nothing else is stored anywhere: samplers rebuild all their state
from this history (:func:`observations`), which is what makes resume, shared PostgreSQL studies
and Ray Tune's ``OptunaSearch`` work without extra code.

Trials written by plain Optuna code (no ``dt.`` attributes) are read as well: ``COMPLETE``
without violated constraints is feasible, ``COMPLETE`` with a positive constraint infeasible,
``FAIL`` a runtime error and ``PRUNED`` aborted.

Constraint format (written only by :func:`_write_constraints`): the violations go into the
trial system attribute ``"constraints"`` as a list, ordered as the labels in the user attribute
``dt.constraint_labels``. This is the form Optuna's own ``constraints_func`` path writes
(``optuna.samplers._base._process_constraints_after_trial``); Optuna 5 reads it as
``FrozenTrial.constraints == {"0": v0, "1": v1, ...}``, so ``study.best_trial`` and its samplers
see feasibility, and it is the only place optuna-dashboard (0.21, ``_serializer.py``
``CONSTRAINTS_KEY``) reads constraints from. Optuna 5's named form (``trial.set_constraint``,
attributes ``"constraints:<label>"``) is not written too: Optuna merges both forms, so every
constraint would appear twice in ``trial.constraints``. An infinite violation is stored as the
largest float (the dashboard sends the list as JSON, which has no infinity) and read back as
infinite. Studies recorded in the named form (earlier deploytune) are still read by name; their
finished trials cannot be rewritten (Optuna refuses attribute writes on finished trials), so the
dashboard shows no constraint values for them.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from deploytune.outcome import CrashKind, Outcome, Status

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ATTR_ATTEMPTS",
    "ATTR_CONFIDENCE",
    "ATTR_CONSTRAINT_LABELS",
    "ATTR_COST",
    "ATTR_CRASH_KIND",
    "ATTR_ERROR",
    "ATTR_FRESH_OF",
    "ATTR_HEARTBEAT",
    "ATTR_INTERRUPTED",
    "ATTR_LEASE",
    "ATTR_LOG",
    "ATTR_METRICS",
    "ATTR_REPEAT_OF",
    "ATTR_REQUEUED_FROM",
    "ATTR_RUNGS",
    "ATTR_SECONDS_SAVED",
    "ATTR_SETUP",
    "ATTR_STATUS",
    "ATTR_VALIDATION",
    "ATTR_WORKER",
    "OPTUNA_CONSTRAINTS_ATTR",
    "OPTUNA_FIXED_PARAMS_ATTR",
    "TrialRecord",
    "is_interrupted",
    "observation_of",
    "observations",
    "record",
    "trial_records",
]

ATTR_STATUS = "dt.status"
ATTR_CRASH_KIND = "dt.crash_kind"
ATTR_METRICS = "dt.metrics"
ATTR_ERROR = "dt.error"
ATTR_COST = "dt.cost_s"
ATTR_LOG = "dt.log"
ATTR_SECONDS_SAVED = "dt.seconds_saved"
ATTR_ATTEMPTS = "dt.attempts"
ATTR_INTERRUPTED = "dt.interrupted"
ATTR_REQUEUED_FROM = "dt.requeued_from"
ATTR_WORKER = "dt.worker"
ATTR_CONSTRAINT_LABELS = "dt.constraint_labels"
ATTR_CONFIDENCE = "dt.confidence"
"""Study user attribute: the chance constraint's level the study was tuned with."""
ATTR_REPEAT_OF = "dt.repeat_of"
"""On a deliberate re-run of a configuration: the number of its first trial."""
ATTR_VALIDATION = "dt.validation"
"""On a finalist's re-run after the search's budget (not an evaluation of the budget)."""
ATTR_HEARTBEAT = "dt.heartbeat"
"""On a running trial: a count its worker raises every few seconds
(:mod:`deploytune.parallel.heartbeat`)."""
ATTR_LEASE = "dt.lease"
"""On a trial that leased devices: ``{"host", "kind", "devices"}``
(:mod:`deploytune.parallel.leases`)."""
ATTR_SETUP = "dt.setup"
"""Study user attribute: the objective, direction and constraints the study was made for."""
ATTR_RUNGS = "dt.rungs"
"""On a trial whose evaluation passed fidelity rungs: rung name -> the metrics when it ended, in
the order reached (:class:`~deploytune.evaluators.base.Monitor`)."""
ATTR_FRESH_OF = "dt.fresh_of"
"""Study user attribute: the name of the study that ``deploytune tune --fresh`` started this one
next to (the family's first name)."""

OPTUNA_CONSTRAINTS_ATTR = "constraints"
"""Trial system attribute holding the constraint values as a list: Optuna's
``_CONSTRAINTS_KEY`` and optuna-dashboard's ``CONSTRAINTS_KEY`` (both private, hence a copy)."""
OPTUNA_FIXED_PARAMS_ATTR = "fixed_params"
"""Trial system attribute in which Optuna keeps the parameters a trial was queued with
(``study.enqueue_trial``); :mod:`deploytune.recovery` reads it to queue a whole configuration
again."""

_ERROR_MAX_CHARS = 2000
_LOG_MAX_CHARS = 8000
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
_FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial, read back from the study (:meth:`from_trial`): what the samplers
    see and what a :class:`~deploytune.result.Result` holds.

    The first seven fields may be given by position; the others only by name.

    Attributes:
        number: The Optuna trial number.
        config: The evaluated configuration (the trial's params).
        status: feasible, infeasible, crashed or aborted.
        crash_kind: For crashed trials, the kind of crash.
        value: The objective value (measured even when infeasible), if any.
        violations: Constraint label -> normalised signed violation (> 0 violated).
        cost_s: Seconds spent on the evaluation.
        metrics: Metrics reported by the evaluator.
        error: Error message of a crash, or the reason of an early abort.
        seconds_saved: For aborted trials, the estimated seconds the abort saved.
        attempts: How many times the configuration was run (transient retries).
        repeat_of: For a deliberate re-run, the number of the configuration's first trial.
        validation: Whether it is a finalist's re-run after the search's budget.
        rungs: Rung name -> the metrics when the evaluation ended that fidelity rung, in the
            order reached (empty for an evaluation without rungs).
    """

    number: int
    config: dict[str, Any]
    status: Status
    crash_kind: CrashKind | None = None
    value: float | None = None
    violations: dict[str, float] = field(default_factory=dict)
    cost_s: float = 0.0
    _: KW_ONLY
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds_saved: float | None = None
    attempts: int = 1
    repeat_of: int | None = None
    validation: bool = False
    rungs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """Whether the evaluation ran and met every constraint."""
        return self.status is Status.FEASIBLE

    @property
    def crashed(self) -> bool:
        """Whether the evaluation crashed (any kind, transient included)."""
        return self.status is Status.CRASHED

    @property
    def transient(self) -> bool:
        """Whether it was a transient failure that says nothing about the configuration."""
        return self.crash_kind is CrashKind.TRANSIENT

    @property
    def bad(self) -> bool:
        """Crashed (not transiently), infeasible or aborted."""
        return not self.feasible and not self.transient

    @property
    def total_violation(self) -> float:
        """Sum of positive normalised violations (0 for feasible trials)."""
        return sum(v for v in self.violations.values() if v > 0)

    @classmethod
    def from_trial(cls, t: FrozenTrial) -> TrialRecord | None:
        """The record of a finished trial; ``None`` for running or waiting ones and for
        interrupted ones (see :func:`is_interrupted`). Trials written by plain Optuna code
        are read as the module docstring says."""
        if t.state not in _FINISHED or is_interrupted(t):
            return None
        attrs = t.user_attrs
        violations = _violations_of(t)
        cost = float(attrs.get(ATTR_COST, 0.0) or 0.0)
        status, kind = _status_of(t, violations)
        value = t.value if t.state is TrialState.COMPLETE and t.values is not None else None
        if value is None and status is Status.ABORTED:
            steps = t.intermediate_values
            value = steps[max(steps)] if steps else None
        raw_metrics = attrs.get(ATTR_METRICS, {}) or {}
        saved = attrs.get(ATTR_SECONDS_SAVED)
        repeat_of = attrs.get(ATTR_REPEAT_OF)
        return cls(
            t.number, dict(t.params), status, kind, value, violations, cost,
            metrics={k: float(v) for k, v in raw_metrics.items()},
            error=attrs.get(ATTR_ERROR),
            seconds_saved=float(saved) if isinstance(saved, (int, float)) else None,
            attempts=int(attrs.get(ATTR_ATTEMPTS, 1) or 1),
            repeat_of=int(repeat_of) if isinstance(repeat_of, int) else None,
            validation=bool(attrs.get(ATTR_VALIDATION, False)),
            rungs=_rungs_of(attrs.get(ATTR_RUNGS)))



def _rungs_of(stored: Any) -> dict[str, dict[str, float]]:
    """The ``dt.rungs`` attribute as read back: rung -> numeric metrics; anything else
    dropped."""
    if not isinstance(stored, dict):
        return {}
    return {str(rung): {str(k): float(v) for k, v in metrics.items()
                        if isinstance(v, (int, float, str)) and not isinstance(v, bool)
                        and _is_number(v)}
            for rung, metrics in stored.items() if isinstance(metrics, dict)}


def _is_number(v: float | str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def record(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> FrozenTrial:
    """Write ``outcome`` onto the running ``trial`` and finish it."""
    trial.set_user_attr(ATTR_STATUS, outcome.status.value)
    trial.set_user_attr(ATTR_COST, round(float(outcome.cost_s), 6))
    trial.set_user_attr(ATTR_METRICS, {k: _json_float(v) for k, v in outcome.metrics.items()})
    if outcome.crash_kind is not None:
        trial.set_user_attr(ATTR_CRASH_KIND, outcome.crash_kind.value)
    if outcome.error:
        trial.set_user_attr(ATTR_ERROR, outcome.error[-_ERROR_MAX_CHARS:])
    if outcome.log and outcome.status is Status.CRASHED:
        trial.set_user_attr(ATTR_LOG, outcome.log[-_LOG_MAX_CHARS:])
    if outcome.seconds_saved is not None and math.isfinite(outcome.seconds_saved):
        trial.set_user_attr(ATTR_SECONDS_SAVED, round(float(outcome.seconds_saved), 3))
    if outcome.attempts != 1:
        trial.set_user_attr(ATTR_ATTEMPTS, int(outcome.attempts))
    if outcome.rungs:
        trial.set_user_attr(ATTR_RUNGS, {r: {k: _json_float(v) for k, v in m.items()}
                                         for r, m in outcome.rungs.items()})
    if outcome.status is Status.CRASHED:
        return study.tell(trial, state=TrialState.FAIL, skip_if_finished=False)
    _write_constraints(trial, outcome.violations)
    if outcome.status is Status.ABORTED:
        if outcome.value is not None and math.isfinite(outcome.value):
            with warnings.catch_warnings():  # a pruner may already have reported step 0
                warnings.simplefilter("ignore")
                trial.report(outcome.value, step=0)  # the partial objective survives the prune
        return study.tell(trial, state=TrialState.PRUNED)
    assert outcome.value is not None
    return study.tell(trial, outcome.value)


def _write_constraints(trial: optuna.Trial, violations: dict[str, float]) -> None:
    """Store ``violations`` on the running ``trial`` as described in the module docstring.

    The list under :data:`OPTUNA_CONSTRAINTS_ATTR` is read by Optuna (feasibility, samplers,
    ``study.best_trial``) and by optuna-dashboard; the labels, in the same order, go to the user
    attribute :data:`ATTR_CONSTRAINT_LABELS` so that :func:`observation_of` reads them back by
    name. Nothing is written when there are no constraints.
    """
    if not violations:
        return
    labels = list(violations)
    values = [float(violations[label]) for label in labels]
    if any(math.isnan(v) for v in values):
        raise ValueError(f"constraint violations cannot be NaN: {violations}")
    values = [max(-_FLOAT_MAX, min(_FLOAT_MAX, v)) for v in values]  # JSON has no infinity
    trial.set_user_attr(ATTR_CONSTRAINT_LABELS, labels)
    # NOTE: Optuna 5 has no public setter for the list form (Trial.set_system_attr is gone);
    # this is the storage call its own _process_constraints_after_trial makes.
    trial.storage.set_trial_system_attr(trial._trial_id, OPTUNA_CONSTRAINTS_ATTR, values)


def _violations_of(t: FrozenTrial) -> dict[str, float]:
    """Constraint label -> violation of a finished trial, in any of the formats it may have."""
    raw = t.system_attrs.get(OPTUNA_CONSTRAINTS_ATTR)
    labels = t.user_attrs.get(ATTR_CONSTRAINT_LABELS)
    if isinstance(raw, (list, tuple)) and isinstance(labels, list) and len(labels) == len(raw):
        return {str(label): _unclamp(float(v)) for label, v in zip(labels, raw, strict=True)}
    # pre-labels deploytune studies (named attributes) and plain Optuna trials
    return {k: float(v) for k, v in t.constraints.items()}


def _unclamp(v: float) -> float:
    """Undo the clamping of infinite violations done by :func:`_write_constraints`."""
    return math.copysign(math.inf, v) if abs(v) >= _FLOAT_MAX else v


def _json_float(v: float) -> float | str:
    """Standard JSON has no infinities or NaN: store those as strings."""
    return v if math.isfinite(v) else str(v)


def is_interrupted(t: FrozenTrial) -> bool:
    """Whether the trial was cut short by the tuner being stopped (Ctrl-C, SIGKILL).

    Such a trial says nothing about its configuration, which was queued again; it is not an
    evaluation and does not count against the budget.
    """
    return bool(t.user_attrs.get(ATTR_INTERRUPTED, False))


def _status_of(t: FrozenTrial,
               violations: dict[str, float]) -> tuple[Status, CrashKind | None]:
    """The status and crash kind of a finished trial: as recorded (``dt.status``), else from
    its Optuna state and constraint values (a trial written by plain Optuna code)."""
    raw_status = t.user_attrs.get(ATTR_STATUS)
    if raw_status is not None:
        status = Status(raw_status)
        kind_raw = t.user_attrs.get(ATTR_CRASH_KIND)
        kind = CrashKind(kind_raw) if kind_raw else None
        if status is Status.CRASHED and kind is None:
            kind = CrashKind.RUNTIME_ERROR
        return status, kind
    if t.state is TrialState.FAIL:
        return Status.CRASHED, CrashKind.RUNTIME_ERROR
    if t.state is TrialState.PRUNED:
        return Status.ABORTED, None
    feasible = all(v <= 0 for v in violations.values())
    return (Status.FEASIBLE if feasible else Status.INFEASIBLE), None


def observation_of(t: FrozenTrial) -> TrialRecord | None:
    """:meth:`TrialRecord.from_trial`, under the samplers' name."""
    return TrialRecord.from_trial(t)


def trial_records(trials: Iterable[FrozenTrial]) -> list[TrialRecord]:
    """The records of the finished, not interrupted ones of ``trials``, in their order."""
    return [r for r in (TrialRecord.from_trial(t) for t in trials) if r is not None]


def observations(
    study: optuna.Study, trials: Sequence[FrozenTrial] | None = None
) -> list[TrialRecord]:
    """All finished trials of ``study`` (or of ``trials``) as observations, by trial number."""
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=_FINISHED)
    out = trial_records(trials)
    out.sort(key=lambda o: o.number)
    return out
