"""What :func:`deploytune.optimize`'s loop reads from the study before each trial: where the
study stands (:class:`StudySnapshot`) and which re-run to queue next (:func:`queue_rerun`, the
policy of :mod:`deploytune.validation`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from deploytune.evaluators.estimated import ESTIMATE_RUNG
from deploytune.feasibility import assess, next_to_validate
from deploytune.history import (
    ATTR_REPEAT_OF,
    ATTR_VALIDATION,
    TrialRecord,
    is_interrupted,
    observations,
    trial_records,
)
from deploytune.outcome import Constraint, Objective, Status
from deploytune.validation import Validation

__all__ = ["FREE_ESTIMATE_STOPS", "StudySnapshot", "queue_rerun"]

FREE_ESTIMATE_STOPS = 4
"""Trials stopped at their estimate that are free, per trial of the budget: a trial the
estimator rules out costs no evaluation, so the budget counts the evaluations that ran; the cap
keeps a study whose estimator rules out everything from running forever."""


@dataclass(frozen=True)
class StudySnapshot:
    """What the loop needs to know about the study before each trial, read in one pass."""

    evaluations: int
    """Finished trials that count against the budget, before :attr:`estimate_stops` are
    taken off."""
    any_ran: bool
    """Whether some evaluation reported every metric the objective and constraints need."""
    seconds_spent: float
    """Wall-clock seconds of every finished trial (interrupted ones included)."""
    any_feasible: bool
    """Whether some evaluation was feasible."""
    full_run_costs: list[float]
    """Durations of the trials that ran to the end (feasible or infeasible)."""
    trials: list[FrozenTrial]
    """Every trial of the study, as read for this snapshot."""
    history: list[TrialRecord]
    """The finished evaluations (:func:`~deploytune.history.observations`)."""
    running: int = 0
    """Trials of the budget being evaluated now (by other workers: this one's are recorded
    before it reads the study again)."""
    estimate_stops: int = 0
    """Trials stopped by the rung rule at their estimate, before any evaluation ran
    (:mod:`deploytune.evaluators.estimated`): up to :data:`FREE_ESTIMATE_STOPS` per trial of
    the budget, they do not count against it."""

    @classmethod
    def of(cls, study: optuna.Study) -> StudySnapshot:
        """Read ``study`` now."""
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
            trials=trials,
            history=obs,
            running=sum(t.state is TrialState.RUNNING
                        and not t.user_attrs.get(ATTR_VALIDATION, False) for t in trials),
            estimate_stops=sum(o.status is Status.ABORTED and list(o.rungs) == [ESTIMATE_RUNG]
                               for o in obs))

    def searching(self, budget: int | None, time_budget_s: float | None) -> bool:
        """Whether the search's budget (evaluations, seconds; ``None``: no limit) is not
        spent yet: the evaluations being run count as spent."""
        free = 0 if budget is None else min(self.estimate_stops, FREE_ESTIMATE_STOPS * budget)
        return not (budget is not None and self.evaluations - free + self.running >= budget
                    ) and not (
            time_budget_s is not None and self.seconds_spent >= time_budget_s)


def queue_rerun(study: optuna.Study, trials: Sequence[FrozenTrial], objective: Objective,
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
    assessed = assess(trial_records(trials), objective, constraints, confidence)
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
