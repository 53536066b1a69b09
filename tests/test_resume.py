"""A study interrupted at any moment and resumed proposes what an uninterrupted one would
(deploytune's samplers draw by the number of non-interrupted trials: samplers/_base.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import deploytune
from deploytune.history import is_interrupted
from deploytune.samplers import make_sampler
from tests.toy import CONSTRAINTS, FORBIDDEN, SPACE_DICT, toy_evaluate

SPACE = deploytune.Space.from_dict(SPACE_DICT, forbidden=FORBIDDEN)
BUDGET = 8


def _run(storage: str, evaluate: Any = toy_evaluate, sampler: Any = None,
         sampler_name: str = "cabo") -> None:
    deploytune.optimize(evaluate, SPACE, objective="accuracy", constraints=CONSTRAINTS,
                        budget=BUDGET, sampler=sampler or sampler_name, seed=3,
                        storage=storage, study_name="s")


def _evaluated(storage: str) -> list[dict[str, Any]]:
    study = optuna.load_study(study_name="s", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return [t.params for t in trials if t.state.is_finished() and not is_interrupted(t)]


@pytest.mark.slow
@pytest.mark.parametrize("sampler_name", ["cabo", "random", "smac"])
@pytest.mark.parametrize("moment", ["ask", "evaluation"])
def test_resume_after_ctrl_c_proposes_what_an_uninterrupted_run_would(
        tmp_path: Path, moment: str, sampler_name: str) -> None:
    plain = f"sqlite:///{tmp_path / 'plain.db'}"
    _run(plain, sampler_name=sampler_name)
    cut = f"sqlite:///{tmp_path / 'cut.db'}"
    calls = [0]
    if moment == "ask":
        sampler = make_sampler(sampler_name, space=SPACE, seed=3, budget=BUDGET)
        propose = sampler.propose

        def stopping_propose(study: optuna.Study, trial: Any) -> Any:
            calls[0] += 1
            if calls[0] == 5:
                raise KeyboardInterrupt
            return propose(study, trial)

        sampler.propose = stopping_propose  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            _run(cut, sampler=sampler)
    else:
        def stopping_evaluate(config: dict[str, Any]) -> dict[str, float]:
            calls[0] += 1
            if calls[0] == 5:
                raise KeyboardInterrupt
            return toy_evaluate(config)

        with pytest.raises(KeyboardInterrupt):
            _run(cut, evaluate=stopping_evaluate, sampler_name=sampler_name)
    interrupted = [t for t in optuna.load_study(study_name="s", storage=cut).trials
                   if is_interrupted(t)]
    assert len(interrupted) == 1 and interrupted[0].state is TrialState.FAIL
    _run(cut, sampler_name=sampler_name)
    assert _evaluated(cut) == _evaluated(plain)
