"""``optimize()``: the ask / evaluate / record loop, and its :class:`Result`."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from deploytune.history import (
    ATTR_ERROR,
    ATTR_METRICS,
    ATTR_STATUS,
    observation_of,
    record,
)
from deploytune.outcome import (
    Constraint,
    CrashKind,
    Objective,
    Outcome,
    Status,
    crash_kind_of,
    judge,
    parse_constraints,
)
from deploytune.space import Space

__all__ = ["Evaluate", "Result", "TrialRecord", "optimize"]

Evaluate = Callable[[dict[str, Any]], Mapping[str, Any]]
"""An evaluator: configuration -> metrics. Raising an exception means the trial crashed."""

DEFAULT_STUDY_NAME = "deploytune"
_STUDY_ATTR_SETUP = "dt.setup"


@dataclass(frozen=True)
class TrialRecord:
    """One evaluation, as reported in a :class:`Result`.

    Attributes:
        number: The Optuna trial number.
        config: The evaluated configuration.
        status: feasible, infeasible, crashed or aborted.
        crash_kind: For crashed trials, the kind of crash.
        metrics: Metrics reported by the evaluator.
        value: The objective value, if measured.
        violations: Constraint label -> normalised signed violation (> 0 = violated).
        error: Error message of a crash.
        cost_s: Seconds spent evaluating.
    """

    number: int
    config: dict[str, Any]
    status: Status
    crash_kind: CrashKind | None
    metrics: dict[str, float]
    value: float | None
    violations: dict[str, float]
    error: str | None
    cost_s: float

    @classmethod
    def from_trial(cls, t: FrozenTrial) -> TrialRecord | None:
        """Read a finished Optuna trial; ``None`` if it is not finished."""
        obs = observation_of(t)
        if obs is None:
            return None
        raw = t.user_attrs.get(ATTR_METRICS, {}) or {}
        metrics = {k: float(v) for k, v in raw.items()}
        error = t.user_attrs.get(ATTR_ERROR)
        return cls(obs.number, obs.config, obs.status, obs.crash_kind, metrics, obs.value,
                   obs.violations, error, obs.cost_s)


@dataclass
class Result:
    """What :func:`optimize` found.

    Attributes:
        trials: Every finished evaluation, in trial order.
        objective: The objective that was optimised.
        constraints: The hard constraints.
        study: The Optuna study that holds the history.
    """

    trials: list[TrialRecord]
    objective: Objective
    constraints: list[Constraint] = field(default_factory=list)
    study: optuna.Study | None = None

    @property
    def best_trial(self) -> TrialRecord | None:
        """The best feasible trial; ``None`` when nothing was feasible."""
        best: TrialRecord | None = None
        for t in self.trials:
            if t.status is not Status.FEASIBLE or t.value is None or math.isnan(t.value):
                continue
            if best is None or self.objective.better(t.value, best.value):  # type: ignore[arg-type]
                best = t
        return best

    @property
    def best_config(self) -> dict[str, Any] | None:
        """Configuration of the best feasible trial, or ``None``."""
        b = self.best_trial
        return dict(b.config) if b else None

    @property
    def best_value(self) -> float | None:
        """Objective value of the best feasible trial, or ``None``."""
        b = self.best_trial
        return b.value if b else None

    @property
    def waste(self) -> float:
        """Fraction of trials that were not feasible (crashed, infeasible or aborted)."""
        if not self.trials:
            return 0.0
        return sum(t.status is not Status.FEASIBLE for t in self.trials) / len(self.trials)

    def count(self, status: Status) -> int:
        """Number of trials with ``status``."""
        return sum(t.status is status for t in self.trials)

    def margins(self) -> dict[str, float]:
        """For the best trial: constraint text -> headroom in the metric's unit (>= 0)."""
        b = self.best_trial
        if b is None:
            return {}
        return {str(c): c.margin(b.metrics[c.metric]) for c in self.constraints
                if c.metric in b.metrics}

    def summary(self) -> str:
        """A short human-readable summary."""
        lines = [f"{len(self.trials)} trials: {self.count(Status.FEASIBLE)} feasible, "
                 f"{self.count(Status.INFEASIBLE)} infeasible, {self.count(Status.CRASHED)} "
                 f"crashed, {self.count(Status.ABORTED)} aborted (waste {self.waste:.0%})"]
        b = self.best_trial
        if b is None:
            lines.append("no feasible configuration found")
        else:
            lines.append(f"best {self.objective.metric} = {b.value:g} (trial {b.number}): "
                         f"{b.config}")
            lines += [f"  {c}: margin {m:g}" for c, m in self.margins().items()]
        return "\n".join(lines)

    @classmethod
    def from_study(cls, study: optuna.Study, objective: Objective,
                   constraints: Sequence[Constraint]) -> Result:
        """Collect a result from every finished trial of ``study``."""
        records = [r for r in (TrialRecord.from_trial(t) for t in study.get_trials(deepcopy=False))
                   if r is not None]
        return cls(records, objective, list(constraints), study)


def _as_space(space: Space | Mapping[str, Any]) -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, Mapping):
        return Space.from_dict(space)
    raise TypeError(f"space: expected a deploytune.Space or its dict form, "
                    f"got {type(space).__name__}")


def _check_setup(study: optuna.Study, setup: dict[str, Any]) -> None:
    """Refuse to mix a study with trials of a different problem definition."""
    existing = study.user_attrs.get(_STUDY_ATTR_SETUP)
    if existing is None:
        if not study.trials:
            study.set_user_attr(_STUDY_ATTR_SETUP, setup)
        return
    for key in ("objective", "direction", "constraints", "space"):
        if existing.get(key) != setup.get(key):
            raise ValueError(
                f"study {study.study_name!r} already holds trials of a different {key} "
                f"({existing.get(key)!r} vs {setup.get(key)!r}); use another study name or "
                f"storage to start a new study, nothing was changed")


def evaluate_once(evaluate: Evaluate, config: dict[str, Any], objective: Objective,
                  constraints: Sequence[Constraint]) -> Outcome:
    """Run ``evaluate`` on ``config`` in this process and judge the result.

    Any exception is a crash of the trial, classified by :func:`crash_kind_of`; the caller
    never sees it.
    """
    start = time.perf_counter()
    try:
        metrics = evaluate(dict(config))
    except (Exception, SystemExit) as exc:
        cost = time.perf_counter() - start
        tb = traceback.format_exception_only(type(exc), exc)
        return Outcome.crashed(crash_kind_of(exc), "".join(tb).strip(), cost)
    cost = time.perf_counter() - start
    return judge(metrics, objective, constraints, cost)


def optimize(
    evaluate: Evaluate,
    space: Space | Mapping[str, Any],
    objective: str = "objective",
    direction: str = "maximize",
    constraints: Sequence[str | Constraint] | None = None,
    budget: int = 25,
    sampler: str | optuna.samplers.BaseSampler | None = "default",
    seed: int | None = None,
    storage: str | optuna.storages.BaseStorage | None = None,
    *,
    study_name: str | None = None,
    callbacks: Sequence[Callable[[TrialRecord], None]] = (),
) -> Result:
    """Find the best feasible configuration of ``space`` in ``budget`` evaluations.

    Args:
        evaluate: ``config -> dict of metrics``. An exception is a crash of that trial:
            ``MemoryError`` -> oom, ``TimeoutError`` -> timeout, :class:`InvalidConfig` ->
            invalid_config, anything else -> runtime_error. The tuner never dies from it.
        space: A :class:`Space` or its dict form.
        objective: The metric to optimise.
        direction: ``"maximize"`` or ``"minimize"``.
        constraints: Hard constraints such as ``"latency_p95_ms <= 20"``.
        budget: Total number of evaluations in the study. On a study that already holds
            trials, only the missing ones are run.
        sampler: A registered sampler name (``deploytune.samplers.available()``), an Optuna
            sampler instance, or ``None`` for the default.
        seed: Seed of the sampler.
        storage: ``None`` for in-memory, or an Optuna storage URL / object
            (``"sqlite:///study.db"``).
        study_name: Name of the study in ``storage`` (default ``"deploytune"``).
        callbacks: Called with each new :class:`TrialRecord` after it is recorded.

    Returns:
        A :class:`Result` over every finished trial of the study.

    Example:
        >>> result = deploytune.optimize(evaluate, space, objective="accuracy",
        ...                              constraints=["latency_p95_ms <= 20"], budget=25)
        >>> result.best_config, result.best_value
    """
    from deploytune.samplers import make_sampler

    space_obj = _as_space(space)
    obj = Objective(objective, direction)
    cons = parse_constraints(constraints)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget: must be a positive number of evaluations (got {budget!r})")
    sampler_obj = (sampler if isinstance(sampler, optuna.samplers.BaseSampler)
                   else make_sampler(sampler, space=space_obj, seed=seed, budget=budget))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, sampler=sampler_obj, direction=obj.direction,  # type: ignore[arg-type]
        study_name=study_name or (DEFAULT_STUDY_NAME if storage is not None else None),
        load_if_exists=True,
    )
    _check_setup(study, {"objective": obj.metric, "direction": obj.direction,
                         "constraints": [str(c) for c in cons], "space": space_obj.to_dict()})
    done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    for _ in range(max(0, budget - done)):
        trial = study.ask()
        try:
            config = space_obj.suggest(trial)
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            raise
        try:
            outcome = evaluate_once(evaluate, config, obj, cons)
        except BaseException:
            trial.set_user_attr(ATTR_STATUS, Status.ABORTED.value)
            trial.set_user_attr(ATTR_ERROR, "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            raise
        frozen = record(study, trial, outcome)
        rec = TrialRecord.from_trial(frozen)
        assert rec is not None
        for cb in callbacks:
            cb(rec)
    return Result.from_study(study, obj, cons)

