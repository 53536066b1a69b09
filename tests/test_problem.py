"""Tests of deploytune.problem: when a study's recorded problem may be reused or claimed."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from deploytune.history import ATTR_INTERRUPTED
from deploytune.outcome import Objective, parse_constraints
from deploytune.problem import claimable, difference, setup_of
from deploytune.space import Space

SPACE = Space.from_dict({"x": {"type": "float", "low": 0, "high": 1}})
SETUP = setup_of(Objective("acc", "maximize"), parse_constraints(["p95_ms <= 20"]), SPACE)


def _trial(state: TrialState, interrupted: bool = False) -> optuna.trial.FrozenTrial:
    return create_trial(state=state, params={"x": 0.5},
                        distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
                        value=1.0 if state is TrialState.COMPLETE else None,
                        user_attrs={ATTR_INTERRUPTED: True} if interrupted else {})


def test_difference_names_the_first_key_that_differs() -> None:
    assert difference(SETUP, SETUP) is None
    assert difference(None, SETUP) is None
    other = setup_of(Objective("acc", "minimize"), parse_constraints(["p95_ms <= 30"]), SPACE)
    assert difference(other, SETUP) == "direction"
    assert difference({**SETUP, "constraints": ("p95_ms <= 20",)}, SETUP) is None  # as stored


def test_a_study_with_no_evaluation_and_the_same_space_may_be_claimed() -> None:
    typo = {**SETUP, "objective": "acc_typo"}
    assert claimable(typo, SETUP, [_trial(TrialState.FAIL, interrupted=True),
                                   _trial(TrialState.WAITING)])
    assert not claimable(typo, SETUP, [_trial(TrialState.COMPLETE)])
    assert not claimable({**typo, "space": {}}, SETUP, [_trial(TrialState.FAIL, True)])
    assert claimable(None, SETUP, [_trial(TrialState.WAITING)])
    assert not claimable(None, SETUP, [_trial(TrialState.COMPLETE)])
