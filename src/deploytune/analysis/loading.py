"""Reading a study written by :func:`deploytune.optimize` back as a
:class:`~deploytune.tuner.Result`, interrupted trials left out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

from deploytune.feasibility import DEFAULT_CONFIDENCE
from deploytune.history import ATTR_CONFIDENCE, ATTR_INTERRUPTED, ATTR_SETUP, ATTR_STATUS
from deploytune.outcome import Objective, Status, parse_constraints
from deploytune.tuner import Result

if TYPE_CHECKING:
    import optuna

__all__ = ["FINISHED", "interrupted_numbers", "is_interrupted", "load_result"]

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
"""The states of a finished trial."""


def load_result(study: optuna.Study) -> Result:
    """Rebuild the :class:`~deploytune.tuner.Result` of a study written by deploytune.

    The objective, its direction and the constraints are read from the study's ``dt.setup``
    user attribute. Interrupted trials (``dt.interrupted``) are left out, as are running and
    waiting ones.

    Args:
        study: An Optuna study created by :func:`deploytune.optimize`.

    Returns:
        The result over every finished, non-interrupted trial.

    Raises:
        ValueError: When the study has no (or a malformed) ``dt.setup`` attribute.
    """
    setup = study.user_attrs.get(ATTR_SETUP)
    if not isinstance(setup, dict) or not setup.get("objective"):
        raise ValueError(
            f"study {study.study_name!r} was not written by deploytune: it has no "
            f"{ATTR_SETUP!r} user attribute (objective, direction, constraints); run "
            f"deploytune.optimize on it, or build a Result with Result.from_study(study, "
            f"objective, constraints)")
    try:
        objective = Objective(str(setup["objective"]), str(setup.get("direction", "maximize")))
        constraints = parse_constraints(list(setup.get("constraints") or []))
    except ValueError as exc:
        raise ValueError(f"study {study.study_name!r}: its {ATTR_SETUP!r} user attribute is "
                         f"malformed: {exc}") from exc
    confidence = study.user_attrs.get(ATTR_CONFIDENCE, DEFAULT_CONFIDENCE)
    result = Result.from_study(study, objective, constraints,
                               confidence if isinstance(confidence, float) and 0 < confidence < 1
                               else DEFAULT_CONFIDENCE)
    interrupted = interrupted_numbers(study)
    if interrupted:
        result.trials = [t for t in result.trials if t.number not in interrupted]
        if hasattr(result, "interrupted"):
            result.interrupted = len(interrupted)
    return result


def is_interrupted(trial: FrozenTrial) -> bool:
    """Whether a trial's evaluation was interrupted rather than judged.

    A trial is interrupted when it carries ``dt.interrupted = True``, or when it is a failed
    trial marked ``aborted`` (how studies written before that attribute existed recorded a
    Ctrl-C).
    """
    attrs = trial.user_attrs
    if attrs.get(ATTR_INTERRUPTED) is True:
        return True
    return trial.state is TrialState.FAIL and attrs.get(ATTR_STATUS) == Status.ABORTED.value


def interrupted_numbers(study: optuna.Study | None) -> set[int]:
    """The numbers of the finished trials of ``study`` that were interrupted (none without a
    study)."""
    if study is None:
        return set()
    return {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)
            if is_interrupted(t)}
