"""``optimize()``: the ask / evaluate / record loop, and its :class:`Result`."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import optuna
from optuna.trial import FrozenTrial, TrialState

from deploytune.early_abort import EarlyAbort, parse_early_abort
from deploytune.evaluators.base import Evaluator, FunctionEvaluator, Monitor
from deploytune.evaluators.classify import Rule, parse_rules
from deploytune.execution import run_trial
from deploytune.feasibility import (
    DEFAULT_CONFIDENCE,
    Recommendation,
    assess,
    check_confidence,
    next_to_validate,
    recommend,
)
from deploytune.history import (
    ATTR_ATTEMPTS,
    ATTR_CONFIDENCE,
    ATTR_ERROR,
    ATTR_METRICS,
    ATTR_REPEAT_OF,
    ATTR_SECONDS_SAVED,
    ATTR_SETUP,
    ATTR_VALIDATION,
    ATTR_WORKER,
    is_interrupted,
    observation_of,
    observations,
    record,
)
from deploytune.outcome import (
    Constraint,
    CrashKind,
    Objective,
    Outcome,
    Status,
    parse_constraints,
)
from deploytune.problem import claimable, difference, setup_of
from deploytune.recovery import (
    claim_next_trial,
    interrupt_trial,
    recover_stale_trials,
    worker_identity,
)
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
        error: Error message of a crash, or the reason of an early abort.
        cost_s: Seconds spent evaluating.
        seconds_saved: For aborted trials, the estimated seconds the abort saved.
        attempts: How many times the configuration was run (transient retries).
        repeat_of: For a deliberate re-run, the number of the configuration's first trial.
        validation: Whether it is a finalist's re-run after the search's budget.
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
    seconds_saved: float | None = None
    attempts: int = 1
    repeat_of: int | None = None
    validation: bool = False

    @classmethod
    def from_trial(cls, t: FrozenTrial) -> TrialRecord | None:
        """Read a finished Optuna trial; ``None`` if it is not finished."""
        obs = observation_of(t)
        if obs is None:
            return None
        raw = t.user_attrs.get(ATTR_METRICS, {}) or {}
        metrics = {k: float(v) for k, v in raw.items()}
        error = t.user_attrs.get(ATTR_ERROR)
        saved = t.user_attrs.get(ATTR_SECONDS_SAVED)
        repeat_of = t.user_attrs.get(ATTR_REPEAT_OF)
        return cls(obs.number, obs.config, obs.status, obs.crash_kind, metrics, obs.value,
                   obs.violations, error, obs.cost_s,
                   float(saved) if isinstance(saved, (int, float)) else None,
                   int(t.user_attrs.get(ATTR_ATTEMPTS, 1) or 1),
                   int(repeat_of) if isinstance(repeat_of, int) else None,
                   bool(t.user_attrs.get(ATTR_VALIDATION, False)))


@dataclass
class Result:
    """What :func:`optimize` found.

    Attributes:
        trials: Every finished evaluation, in trial order.
        objective: The objective that was optimised.
        constraints: The hard constraints.
        study: The Optuna study that holds the history.
        interrupted: Trials cut short by a stopped tuner (not evaluations; their
            configurations were queued again).
        confidence: The chance constraint's level (see :attr:`recommendation`).
    """

    trials: list[TrialRecord]
    objective: Objective
    constraints: list[Constraint] = field(default_factory=list)
    study: optuna.Study | None = None
    interrupted: int = 0
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def recommendation(self) -> Recommendation | None:
        """The configuration to deploy: every run of each configuration pooled, the best
        pessimistic objective bound among those that meet the chance constraint
        (:mod:`deploytune.feasibility`); ``None`` when nothing was feasible. Check its
        ``reliable``: ``False`` says no configuration met the chance constraint."""
        return recommend(assess(self.trials, self.objective, self.constraints, self.confidence),
                         self.objective, self.confidence)

    @property
    def best_trial(self) -> TrialRecord | None:
        """The best feasible *observed* run; ``None`` when nothing was feasible. One lucky
        run of a noisy configuration can be it: deploy :attr:`recommendation`."""
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
        rec = self.recommendation
        if rec is not None:
            lines.append(f"recommended ({'' if rec.reliable else 'NOT '}reliably feasible: "
                         f"P(feasible) {rec.runs.p_feasible:.2f}, {rec.runs.runs} runs): "
                         f"{rec.config}")
        return "\n".join(lines)

    @classmethod
    def from_study(cls, study: optuna.Study, objective: Objective,
                   constraints: Sequence[Constraint],
                   confidence: float = DEFAULT_CONFIDENCE) -> Result:
        """Collect a result from every finished trial of ``study``."""
        trials = study.get_trials(deepcopy=False)
        records = [r for r in (TrialRecord.from_trial(t) for t in trials) if r is not None]
        interrupted = sum(t.state.is_finished() and is_interrupted(t) for t in trials)
        return cls(records, objective, list(constraints), study, interrupted, confidence)


def _as_space(space: Space | Mapping[str, Any]) -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, Mapping):
        return Space.from_dict(space)
    raise TypeError(f"space: expected a deploytune.Space or its dict form, "
                    f"got {type(space).__name__}")


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


@dataclass(frozen=True)
class _Progress:
    """What the loop needs to know about the study before each trial, read in one pass."""

    evaluations: int
    """Finished trials that count against the budget."""
    any_ran: bool
    """Whether some evaluation reported every metric the objective and constraints need."""
    seconds_spent: float
    """Wall-clock seconds of every finished trial (interrupted ones included)."""
    any_feasible: bool
    full_run_costs: list[float]
    """Durations of the trials that ran to the end (feasible or infeasible)."""
    trials: list[FrozenTrial]
    """Every trial of the study, as read for this snapshot."""

    @classmethod
    def of(cls, study: optuna.Study) -> _Progress:
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        obs = observations(study, finished)
        counted = [t for t in finished if not is_interrupted(t)]
        return cls(
            evaluations=sum(not t.user_attrs.get(ATTR_VALIDATION, False) for t in counted),
            any_ran=any(o.status in (Status.FEASIBLE, Status.INFEASIBLE) for o in obs),
            seconds_spent=sum((t.datetime_complete - t.datetime_start).total_seconds()
                              for t in finished if t.datetime_start and t.datetime_complete),
            any_feasible=any(o.feasible for o in obs),
            full_run_costs=[o.cost_s for o in obs if o.cost_s > 0
                            and o.status in (Status.FEASIBLE, Status.INFEASIBLE)],
            trials=trials)


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
    """Record the trial ``number`` that never reached its evaluation as interrupted (``None``:
    ``ask`` failed on a new trial, which recovery records once it is an orphan)."""
    frozen = trial if trial is not None else next(
        (t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if frozen is None or (not isinstance(frozen, optuna.Trial)
                          and frozen.state is not TrialState.RUNNING):
        return  # still queued: nothing happened to it
    interrupt_trial(study, frozen, reason, space)


def _missing_metric_message(number: int, outcome: Outcome, objective: Objective,
                            constraints: Sequence[Constraint]) -> str:
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


_MAX_STEP = 2**31 - 1
"""The largest step Optuna's relational storages keep (a 32-bit integer column)."""


def _usable_step(step: Any) -> TypeGuard[int]:
    """Whether a streamed ``step`` can go to the pruner: an integer from 0 to 2**31 - 1.

    Anything else (-1, a 30-digit number, 2.5, ``True``) is the evaluator's mistake; the
    report still counts for early abort, only the pruner does not see it."""
    return (isinstance(step, int) and not isinstance(step, bool)
            and 0 <= step <= _MAX_STEP)


def _make_check(early: EarlyAbort, objective: Objective, constraints: Sequence[Constraint],
                any_feasible: bool, trial: optuna.Trial,
                use_pruner: bool) -> Callable[[Mapping[str, float], int | None], str | None]:
    def check(partial: Mapping[str, float], step: int | None) -> str | None:
        reason = early.reason(partial, constraints, any_feasible)
        if reason is not None:
            return reason
        if use_pruner and _usable_step(step) and objective.metric in partial:
            value = partial[objective.metric]
            if math.isfinite(value):
                trial.report(value, step)
                if trial.should_prune():
                    return f"pruned at step {step} ({objective.metric} = {value:g})"
        return None
    return check


def _queue_rerun(study: optuna.Study, trials: Sequence[FrozenTrial], objective: Objective,
                 constraints: Sequence[Constraint], confidence: float, validation: Validation,
                 searching: bool, final_runs: int) -> bool:
    """Queue the re-run :mod:`deploytune.validation` asks for, if any; ``False`` when the
    study is done (the budget spent and no finalist left to run again, or ``final_runs``,
    this call's finalists' re-runs, at the settings' most). ``trials``: the study's trials,
    as just read.

    A trial already waiting in the queue (a resumed study's, a user's) goes first while the
    search runs; after it, only a finalist's re-run waiting first (re-queued by a resume) does.
    """
    waiting = [t for t in trials if t.state is TrialState.WAITING]
    if not searching and (final_runs >= validation.max_final_runs or (
            waiting and not waiting[0].user_attrs.get(ATTR_VALIDATION, False))):
        return False
    if waiting or (searching and not (validation.during_search and validation.repeats > 0)):
        return True
    records = [r for r in (TrialRecord.from_trial(t) for t in trials) if r is not None]
    assessed = assess(records, objective, constraints, confidence)
    target = next_to_validate(assessed, objective, confidence,
                              1 if searching else validation.finalists, validation.repeats)
    if target is None:
        return searching
    runs = next(a for a in assessed if a.config == target)
    if searching and runs.reliable(confidence):
        return True  # sure enough for now: the finalists' re-runs will check it
    attrs: dict[str, Any] = {ATTR_REPEAT_OF: runs.numbers[0]}
    if not searching:
        attrs[ATTR_VALIDATION] = True
    study.enqueue_trial(target, user_attrs=attrs, skip_if_exists=False)
    return True


def optimize(
    evaluate: Evaluate | Evaluator,
    space: Space | Mapping[str, Any],
    objective: str = "objective",
    direction: str = "maximize",
    constraints: Sequence[str | Constraint] | None = None,
    budget: int | None = 25,
    sampler: str | optuna.samplers.BaseSampler | None = "default",
    seed: int | None = None,
    storage: str | optuna.storages.BaseStorage | None = None,
    *,
    study_name: str | None = None,
    callbacks: Sequence[Callable[[TrialRecord], None]] = (),
    time_budget_s: float | None = None,
    retries: int = 2,
    rules: Sequence[Rule | Mapping[str, Any]] = (),
    early_abort: EarlyAbort | bool | Mapping[str, Any] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    on_trial_start: Callable[[int, dict[str, Any]], None] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    validation: Validation | Mapping[str, Any] | bool | None = False,
) -> Result:
    """Find the best feasible configuration of ``space`` in ``budget`` evaluations.

    Args:
        evaluate: ``config -> dict of metrics`` (or ``(config, report) -> dict`` to stream
            intermediate measurements), run in this process; or an
            :class:`~deploytune.evaluators.base.Evaluator` such as
            :class:`~deploytune.evaluators.isolated.IsolatedEvaluator` (a child process with a
            time limit and a memory cap) or
            :class:`~deploytune.evaluators.command.CommandEvaluator`. An exception is a crash
            of that trial: ``MemoryError`` -> oom, ``TimeoutError`` -> timeout,
            :class:`InvalidConfig` -> invalid_config, :class:`TransientError` -> transient,
            anything else -> runtime_error. The tuner never dies from it.
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

    Returns:
        A :class:`Result` over every finished trial of the study.

    Raises:
        KeyboardInterrupt: After recording the running trial as interrupted and queueing its
            configuration again: calling ``optimize`` again resumes the study.

    Example:
        >>> result = deploytune.optimize(evaluate, space, objective="accuracy",
        ...                              constraints=["latency_p95_ms <= 20"], budget=25)
        >>> result.best_config, result.best_value
    """
    from deploytune.samplers import make_sampler

    space_obj = _as_space(space)
    obj = Objective(objective, direction)
    cons = parse_constraints(constraints)
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
    rule_list = parse_rules(rules)
    early = parse_early_abort(early_abort)
    confidence = check_confidence(confidence)
    checks = parse_validation(validation)
    evaluator = evaluate if isinstance(evaluate, Evaluator) else FunctionEvaluator(evaluate)
    sampler_obj = (sampler if isinstance(sampler, optuna.samplers.BaseSampler)
                   else make_sampler(sampler, space=space_obj, seed=seed, budget=budget))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, sampler=sampler_obj, direction=obj.direction,  # type: ignore[arg-type]
        study_name=study_name or (DEFAULT_STUDY_NAME if storage is not None else None),
        load_if_exists=True, pruner=pruner or optuna.pruners.NopPruner(),
    )
    _check_setup(study, setup_of(obj, cons, space_obj))
    if study.user_attrs.get(ATTR_CONFIDENCE) != confidence:
        study.set_user_attr(ATTR_CONFIDENCE, confidence)
    recover_stale_trials(study, space_obj)
    worker = worker_identity()
    final_runs = 0  # finalists' re-runs of this call
    try:
        while True:
            progress = _Progress.of(study)
            searching = not (budget is not None and progress.evaluations >= budget) and not (
                time_budget_s is not None and progress.seconds_spent >= time_budget_s)
            if not _queue_rerun(study, progress.trials, obj, cons, confidence, checks,
                                searching, final_runs):
                break
            trial, config = _start_trial(study, space_obj, worker, sampler_obj)
            check = _make_check(early, obj, cons, progress.any_feasible, trial,
                                pruner is not None)
            try:
                if on_trial_start is not None:
                    on_trial_start(trial.number, dict(config))
                outcome = run_trial(evaluator, config, obj, cons,
                                    new_monitor=functools.partial(Monitor, check),
                                    rules=rule_list, retries=retries,
                                    full_run_costs=progress.full_run_costs)
            except BaseException as exc:
                reason = "stopped by Ctrl-C" if isinstance(exc, KeyboardInterrupt) else \
                    f"stopped by {type(exc).__name__}"
                interrupt_trial(study, trial, reason, space_obj)
                raise
            if outcome.missing and not progress.any_ran:
                interrupt_trial(study, trial, "stopped: a metric the spec names was not "
                                "reported", space_obj)
                raise MetricNotReported(_missing_metric_message(trial.number, outcome, obj,
                                                                cons))
            frozen = record(study, trial, outcome)
            rec = TrialRecord.from_trial(frozen)
            assert rec is not None
            final_runs += rec.validation
            for cb in callbacks:
                cb(rec)
    finally:
        if evaluator is not evaluate:
            evaluator.close()
    return Result.from_study(study, obj, cons, confidence)
