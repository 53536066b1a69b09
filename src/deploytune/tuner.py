"""``optimize()``: the ask / evaluate / record loop.

Each round reads the study and queues the re-run that :mod:`deploytune.validation` asks for
(:mod:`deploytune.schedule`), asks the sampler for a trial, evaluates it
(:func:`deploytune.execution.run_trial`: retries, early abort, the pruner) and records it
(:func:`deploytune.history.record`). What it found is a :class:`~deploytune.result.Result`
(re-exported here, like :class:`~deploytune.history.TrialRecord`).

An exception raised by the evaluation is a crash of that trial, never of the tuner:
``MemoryError`` -> oom, ``TimeoutError`` -> timeout, :class:`InvalidConfig` -> invalid_config,
:class:`TransientError` -> transient, anything else -> runtime_error.

Example:
    >>> result = deploytune.optimize(evaluate, space, objective="accuracy",
    ...                              constraints=["latency_p95_ms <= 20"], budget=25)
    >>> result.best_config, result.best_value
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from deploytune.early_abort import EarlyAbort, parse_early_abort
from deploytune.evaluators.base import AbortCheck, Evaluator, FunctionEvaluator, Monitor
from deploytune.evaluators.classify import Rule, parse_rules
from deploytune.execution import run_trial
from deploytune.feasibility import DEFAULT_CONFIDENCE, check_confidence
from deploytune.history import ATTR_CONFIDENCE, ATTR_SETUP, ATTR_WORKER, TrialRecord, record
from deploytune.monitoring import make_check
from deploytune.outcome import Constraint, CrashKind, Objective, Outcome, parse_constraints
from deploytune.parallel.coordination import Coordination
from deploytune.parallel.heartbeat import DEFAULT_INTERVAL_S as HEARTBEAT_S
from deploytune.parallel.leases import LeaseImpossible, Resources
from deploytune.parallel.storage import open_storage
from deploytune.problem import claimable, difference, setup_of
from deploytune.promotion import record_predicted_end
from deploytune.recovery import (
    claim_next_trial,
    interrupt_trial,
    recover_stale_trials,
    worker_identity,
)
from deploytune.result import Result
from deploytune.schedule import StudySnapshot, queue_rerun
from deploytune.setting_error import SettingError
from deploytune.space import Space
from deploytune.validation import Validation, parse_validation

__all__ = [
    "Evaluate",
    "MetricNotReported",
    "Result",
    "SamplerFailed",
    "TrialRecord",
    "TuningStopped",
    "evaluate_once",
    "optimize",
]

Evaluate = Callable[..., Mapping[str, Any]]
"""An evaluation function: ``config -> metrics`` or ``(config, report) -> metrics``. Raising
an exception means the trial crashed."""

DEFAULT_STUDY_NAME = "deploytune"


class TuningStopped(RuntimeError):
    """The tuner stopped before its budget for a reason the user has to act on.

    The message is one line. Nothing recorded is lost: the trial that was starting or running
    is recorded as interrupted (not an evaluation) and its whole configuration, if it had one,
    is queued again, so running again resumes.
    """


class SamplerFailed(TuningStopped):
    """The sampler raised while proposing a configuration (a bug of the sampler or its
    options); no evaluation ran and none was counted."""


class MetricNotReported(TuningStopped):
    """The first evaluation that ran to its end did not report a metric that the objective or
    a constraint names (a typo in the spec, most likely)."""


def _as_space(space: Space | Mapping[str, Any]) -> Space:
    """``space`` as a :class:`Space` (its dict form parsed); a :class:`TypeError` otherwise."""
    if isinstance(space, Space):
        return space
    if isinstance(space, Mapping):
        return Space.from_dict(space)
    raise TypeError(f"space: expected a deploytune.Space or its dict form, "
                    f"got {type(space).__name__}")


def _sampler_of(sampler: str | optuna.samplers.BaseSampler | None, space: Space,
                seed: int | None, budget: int | None) -> optuna.samplers.BaseSampler:
    """``sampler`` as it is when it is a sampler object, else built by the registry."""
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    from deploytune.samplers import make_sampler

    return make_sampler(sampler, space=space, seed=seed, budget=budget)


def _check_setup(study: optuna.Study, setup: dict[str, Any]) -> None:
    """Record ``setup`` on a new study; refuse a study that holds another problem
    (:mod:`deploytune.problem`)."""
    recorded = study.user_attrs.get(ATTR_SETUP)
    trials = study.get_trials(deepcopy=False)
    if claimable(recorded, setup, trials):
        if recorded != setup:
            study.set_user_attr(ATTR_SETUP, setup)
        return
    key = difference(recorded, setup)
    if key is not None and recorded is not None:
        raise ValueError(
            f"study {study.study_name!r} already holds trials of a different {key} "
            f"({recorded.get(key)!r} vs {setup.get(key)!r}); use another study name or "
            f"storage to start a new study, nothing was changed")


def evaluate_once(evaluate: Evaluate | Evaluator, config: dict[str, Any], objective: Objective,
                  constraints: Sequence[Constraint]) -> Outcome:
    """Run ``evaluate`` on ``config`` (in this process for a plain function) and judge it.

    Any exception is a crash of the trial, classified by :func:`crash_kind_of`; the caller
    never sees it. No retries, no early abort: see :func:`deploytune.execution.run_trial`.
    """
    evaluator = evaluate if isinstance(evaluate, Evaluator) else FunctionEvaluator(evaluate)
    return run_trial(evaluator, config, objective, constraints, retries=0)


_STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, optuna.exceptions.StorageInternalError)
"""Failures of the storage rather than of the sampler (SQLAlchemy's are added when present)."""
try:
    import sqlalchemy.exc

    _STORAGE_ERRORS += (sqlalchemy.exc.SQLAlchemyError,)
except ImportError:  # pragma: no cover - Optuna's RDB storage needs SQLAlchemy
    pass


def _start_trial(study: optuna.Study, space: Space, worker: dict[str, Any],
                 sampler: optuna.samplers.BaseSampler) -> tuple[optuna.Trial, dict[str, Any]]:
    """Ask for the next trial, owned by ``worker`` from its first instant, and its
    configuration.

    Raises:
        SamplerFailed: The sampler raised; the trial is recorded as interrupted (never as a
            crashed evaluation) and its queued configuration, if whole, queued again.
        KeyboardInterrupt: The same records, then the interrupt goes on.
    """
    claimed = claim_next_trial(study, worker)
    trial: optuna.Trial | None = None
    try:
        trial = study.ask()
        if claimed is None or trial.number != claimed.number:  # new, or popped by another
            trial.set_user_attr(ATTR_WORKER, worker)
        return trial, space.suggest(trial)
    except _STORAGE_ERRORS:
        raise  # the storage failed, not the sampler: nothing can be recorded either
    except BaseException as exc:
        number = trial.number if trial is not None else claimed.number if claimed else None
        reason = ("stopped by Ctrl-C" if isinstance(exc, KeyboardInterrupt)
                  else f"the sampler failed ({type(exc).__name__})")
        _abandon(study, trial, number, reason, space)
        if isinstance(exc, Exception):
            name = getattr(sampler, "name", type(sampler).__name__)
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise SamplerFailed(
                f"the sampler {name} failed while proposing "
                f"{'a trial' if number is None else f'trial {number}'} "
                f"({type(exc).__name__}: {text[:300]}); nothing was evaluated or counted and "
                f"the study is unchanged; run again with another sampler (e.g. sampler: "
                f"random) to go on") from exc
        raise


def _abandon(study: optuna.Study, trial: optuna.Trial | None, number: int | None, reason: str,
             space: Space) -> None:
    """Record the trial ``number`` that never reached its evaluation as interrupted. With
    ``number`` ``None`` (``ask`` was stopped on a new trial, before it returned), the trial is
    the one running without an owner: the caller holds the study lock and every other worker
    stamps its trials before it lets go of it."""
    if trial is None and number is None:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if ATTR_WORKER not in t.user_attrs:
                interrupt_trial(study, t, reason, space)
        return
    frozen = trial if trial is not None else next(
        (t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if frozen is None or (not isinstance(frozen, optuna.Trial)
                          and frozen.state is not TrialState.RUNNING):
        return  # still queued: nothing happened to it
    interrupt_trial(study, frozen, reason, space)


def _missing_metric_message(number: int, outcome: Outcome, objective: Objective,
                            constraints: Sequence[Constraint]) -> str:
    """The one-line message of :class:`MetricNotReported` for trial ``number``."""
    import difflib

    metric = outcome.missing[0]
    users = ([f"the objective ({objective.direction} {metric})"]
             if objective.metric == metric else [])
    users += [f"the constraint '{c}'" for c in constraints if c.metric == metric]
    reported = sorted(outcome.metrics)
    close = difflib.get_close_matches(metric, reported, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"trial {number} ran to its end but its result has no metric {metric!r}, which "
            f"{' and '.join(users) or 'the spec'} needs{hint}; it reported: "
            f"{', '.join(reported) or 'nothing'}; fix the metric name in the spec or the "
            f"evaluator and run again (the trial was not counted, its configuration is queued)")


@dataclass(frozen=True)
class _Settings:
    """:func:`optimize`'s arguments, parsed and checked once: what its loop reads."""

    space: Space
    objective: Objective
    constraints: list[Constraint]
    budget: int | None
    time_budget_s: float | None
    retries: int
    rules: list[Rule]
    early: EarlyAbort
    confidence: float
    validation: Validation
    use_pruner: bool
    on_trial_start: Callable[[int, dict[str, Any]], None] | None
    callbacks: Sequence[Callable[[TrialRecord], None]]


def _check_budgets(budget: int | None, time_budget_s: float | None, retries: int) -> None:
    """Refuse a budget, time budget or retry count that is not a positive (retries: >= 0)
    number, and the absence of both budgets, with a one-line :class:`ValueError`."""
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 1):
        raise ValueError(f"budget: must be a positive number of evaluations (got {budget!r})")
    if time_budget_s is not None and (isinstance(time_budget_s, bool) or not isinstance(
            time_budget_s, (int, float)) or not time_budget_s > 0):
        raise ValueError(f"time_budget_s: must be a positive number of seconds "
                         f"(got {time_budget_s!r})")
    if budget is None and time_budget_s is None:
        raise ValueError("budget: give a number of evaluations, time_budget_s, or both")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries: must be an integer >= 0 (got {retries!r})")


def _parse_settings(
    space: Space | Mapping[str, Any], objective: str, direction: str,
    constraints: Sequence[str | Constraint] | None, budget: int | None,
    time_budget_s: float | None, retries: int, rules: Sequence[Rule | Mapping[str, Any]],
    early_abort: EarlyAbort | bool | Mapping[str, Any] | None, confidence: float,
    validation: Validation | Mapping[str, Any] | bool | None, use_pruner: bool,
    on_trial_start: Callable[[int, dict[str, Any]], None] | None,
    callbacks: Sequence[Callable[[TrialRecord], None]],
) -> _Settings:
    """:func:`optimize`'s arguments checked and parsed (see its docstring), in the order of
    its parameters; the first mistake raises a one-line :class:`ValueError`."""
    space_obj = _as_space(space)
    obj = Objective(objective, direction)
    cons = parse_constraints(constraints)
    _check_budgets(budget, time_budget_s, retries)
    try:
        early = parse_early_abort(early_abort)
    except SettingError as exc:  # named as optimize()'s argument
        raise SettingError(("early_abort", *exc.path), exc.message) from None
    return _Settings(space_obj, obj, cons, budget, time_budget_s, retries, parse_rules(rules),
                     early, check_confidence(confidence),
                     parse_validation(validation), use_pruner, on_trial_start, callbacks)


def _open_study(storage: str | optuna.storages.BaseStorage | None, study_name: str | None,
                sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner | None,
                settings: _Settings, coord: Coordination) -> optuna.Study:
    """Under the study lock: create or load the study, check and record its problem and
    confidence, and recover the trials a killed tuner left running
    (:mod:`deploytune.recovery`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(storage)  # under a lock of its own
    with coord.held():
        return _create_or_load(opened, study_name, sampler, pruner, settings)


def _create_or_load(storage: optuna.storages.BaseStorage | None, study_name: str | None,
                    sampler: optuna.samplers.BaseSampler,
                    pruner: optuna.pruners.BasePruner | None, settings: _Settings
                    ) -> optuna.Study:
    study = optuna.create_study(
        storage=storage, sampler=sampler,
        direction=settings.objective.direction,  # type: ignore[arg-type]
        study_name=study_name, load_if_exists=True, pruner=pruner or optuna.pruners.NopPruner(),
    )
    _check_setup(study, setup_of(settings.objective, settings.constraints, settings.space))
    if study.user_attrs.get(ATTR_CONFIDENCE) != settings.confidence:
        study.set_user_attr(ATTR_CONFIDENCE, settings.confidence)
    recover_stale_trials(study, settings.space)
    return study


def _search(study: optuna.Study, settings: _Settings, evaluator: Evaluator,
            sampler: optuna.samplers.BaseSampler, worker: dict[str, Any],
            coord: Coordination) -> None:
    """The loop: queue the re-run validation asks for, then ask for a trial, evaluate it and
    record it, until the budget is spent and no finalist is left to run again. Reading the
    study, deciding and asking happen under the study lock (:mod:`deploytune.parallel`);
    while other workers' running trials hold the rest of the budget, wait for them."""
    from deploytune.samplers._base import SpaceSampler

    final_runs = 0  # finalists' re-runs of this call
    if isinstance(sampler, SpaceSampler):
        sampler.warm_up()  # a slow first import, outside the study lock
    while True:
        with coord.held():
            coord.recover(study, settings.space)
            snapshot = StudySnapshot.of(study)
            searching = snapshot.searching(settings.budget, settings.time_budget_s)
            started = None
            if searching or not snapshot.running:
                if not queue_rerun(study, snapshot.trials, settings.objective,
                                   settings.constraints, settings.confidence,
                                   settings.validation, searching, final_runs):
                    break
                started = _start_trial(study, settings.space, worker, sampler)
        if started is None:
            coord.wait()
            continue
        rec = _run_next_trial(study, settings, evaluator, started, snapshot, coord)
        if rec is None:
            continue
        final_runs += rec.validation
        for cb in settings.callbacks:
            cb(rec)


def _run_next_trial(study: optuna.Study, settings: _Settings, evaluator: Evaluator,
                    started: tuple[optuna.Trial, dict[str, Any]], snapshot: StudySnapshot,
                    coord: Coordination) -> TrialRecord | None:
    """Evaluate the trial just asked for and record it; its :class:`TrialRecord` (``None``:
    another worker took this one for dead and queued it again while it ran).

    Raises:
        MetricNotReported: No evaluation of the study has reported every metric yet and this
            one misses one too (recorded as interrupted, its configuration queued again).
    """
    trial, config = started
    check = make_check(settings.early, settings.objective, settings.constraints,
                       snapshot.history, trial, settings.use_pruner)
    outcome = _evaluate(study, trial, config, evaluator, settings, check,
                        snapshot.full_run_costs, coord)
    record_predicted_end(outcome, snapshot.history, settings.objective, settings.constraints,
                         settings.early.min_pairs)
    if outcome.missing and not snapshot.any_ran:
        interrupt_trial(study, trial, "stopped: a metric the spec names was not "
                        "reported", settings.space)
        raise MetricNotReported(_missing_metric_message(
            trial.number, outcome, settings.objective, settings.constraints))
    if study._storage.get_trial(trial._trial_id).state.is_finished():
        return None  # recorded as interrupted by another worker: its re-run counts instead
    rec = TrialRecord.from_trial(record(study, trial, outcome))
    assert rec is not None
    return rec


def _evaluate(study: optuna.Study, trial: optuna.Trial, config: dict[str, Any],
              evaluator: Evaluator, settings: _Settings,
              check: AbortCheck, full_run_costs: Sequence[float], coord: Coordination) -> Outcome:
    """Run ``config`` (retries, early abort and pruner included; beating on the trial and
    holding its devices' lease) and judge it.

    Raises:
        BaseException: Whatever stopped it (Ctrl-C, an ``on_trial_start`` that raised), after
            recording the trial as interrupted and queueing its configuration again.
    """
    try:
        devices = coord.devices_needed(config)
    except LeaseImpossible as exc:
        return Outcome.crashed(CrashKind.INVALID_CONFIG, str(exc))
    try:
        with coord.running(study, trial, devices):
            if settings.on_trial_start is not None:
                settings.on_trial_start(trial.number, dict(config))
            return run_trial(evaluator, config, settings.objective, settings.constraints,
                             new_monitor=functools.partial(Monitor, check),
                             rules=settings.rules, retries=settings.retries,
                             full_run_costs=full_run_costs)
    except BaseException as exc:
        reason = "stopped by Ctrl-C" if isinstance(exc, KeyboardInterrupt) else \
            f"stopped by {type(exc).__name__}"
        interrupt_trial(study, trial, reason, settings.space)
        raise


def optimize(
    evaluate: Evaluate | Evaluator, space: Space | Mapping[str, Any],
    objective: str = "objective", direction: str = "maximize",
    constraints: Sequence[str | Constraint] | None = None, budget: int | None = 25,
    sampler: str | optuna.samplers.BaseSampler | None = "default", seed: int | None = None,
    storage: str | optuna.storages.BaseStorage | None = None, *,
    study_name: str | None = None, callbacks: Sequence[Callable[[TrialRecord], None]] = (),
    time_budget_s: float | None = None, retries: int = 2,
    rules: Sequence[Rule | Mapping[str, Any]] = (),
    early_abort: EarlyAbort | bool | Mapping[str, Any] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    on_trial_start: Callable[[int, dict[str, Any]], None] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    validation: Validation | Mapping[str, Any] | bool | None = False,
    resources: Resources | Mapping[str, Any] | None = None, heartbeat_s: float = HEARTBEAT_S,
) -> Result:
    """Find the best feasible configuration of ``space`` in ``budget`` evaluations; returns a
    :class:`Result` over every finished trial of the study (an example is in the module
    docstring).

    Args:
        evaluate: ``config -> dict of metrics`` (or ``(config, report) -> dict`` to stream
            intermediate measurements), run in this process; or an
            :class:`~deploytune.evaluators.base.Evaluator` such as ``IsolatedEvaluator`` (a
            child process with a time limit and a memory cap) or ``CommandEvaluator``. An
            exception is a crash of that trial, of a kind the module docstring lists; the
            tuner never dies from it.
        space: A :class:`Space` or its dict form.
        objective: The metric to optimise.
        direction: ``"maximize"`` or ``"minimize"``.
        constraints: Hard constraints such as ``"latency_p95_ms <= 20"``.
        budget: Total number of evaluations in the study (``None``: no limit, then give
            ``time_budget_s``). On a study that already holds trials only the missing ones
            are run; interrupted trials do not count.
        sampler: A registered sampler name (``deploytune.samplers.available()``), an Optuna
            sampler instance, or ``None`` for the default.
        seed: Seed of the sampler.
        storage: ``None`` for in-memory, or an Optuna storage URL / object
            (``"sqlite:///study.db"``).
        study_name: Name of the study in ``storage`` (default ``"deploytune"``).
        callbacks: Called with each new :class:`TrialRecord` after it is recorded.
        time_budget_s: No new trial starts once the study's trials have taken this many
            seconds in total (resumed studies included).
        retries: How many times a ``transient`` failure is retried within its trial.
        rules: Crash classification rules (:class:`~deploytune.evaluators.classify.Rule` or
            ``{"pattern": ..., "kind": ...}``), tried before the built-in ones.
        early_abort: The early-abort rule (:class:`~deploytune.early_abort.EarlyAbort`);
            ``None``/``True`` for the defaults (k = 5, then 3), ``False`` to switch it off.
        pruner: An Optuna pruner applied to the streamed objective (reports with a ``step``).
        on_trial_start: Called with ``(trial number, config)`` before each evaluation.
        confidence: The chance constraint: a configuration counts as reliably feasible when a
            fresh run meets every constraint with at least this probability
            (:mod:`deploytune.feasibility`); the result's ``recommendation`` is chosen by it.
        validation: Re-runs of uncertain incumbents during the search (evaluations of the
            budget) and of the finalists after it (on top of the budget):
            :class:`~deploytune.validation.Validation`, a mapping of its fields, ``True`` for
            its defaults (what ``deploytune tune`` runs), or ``False`` (the default here: exactly
            ``budget`` evaluations, each a new configuration unless the sampler repeats one).
        resources: This machine's devices and how many a trial leases
            (:class:`~deploytune.parallel.leases.Resources` or its dict form).
        heartbeat_s: Seconds between a running trial's heartbeats (:mod:`deploytune.parallel`).

    Raises:
        KeyboardInterrupt: After recording the running trial as interrupted (call again: resumes).
    """
    settings = _parse_settings(space, objective, direction, constraints, budget,
                               time_budget_s, retries, rules, early_abort, confidence,
                               validation, pruner is not None, on_trial_start, callbacks)
    evaluator = evaluate if isinstance(evaluate, Evaluator) else FunctionEvaluator(evaluate)
    sampler_obj = _sampler_of(sampler, settings.space, seed, budget)
    coord = Coordination(storage, study_name or (DEFAULT_STUDY_NAME if storage else None),
                         heartbeat_s=heartbeat_s, resources=resources)
    try:
        study = _open_study(storage, coord.study_name, sampler_obj, pruner, settings, coord)
        _search(study, settings, evaluator, sampler_obj, worker_identity(), coord)
    finally:
        coord.close()
        if evaluator is not evaluate:
            evaluator.close()
    return Result.from_study(study, settings.objective, settings.constraints, settings.confidence)
