"""Every registered sampler keeps Optuna's sampler contract where users meet it (issue 17,
item 4): a history with trials that do not fit the space, ``PartialFixedSampler``,
``reseed_rng`` and pickling. Each check failed for some samplers before."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

import deploytune
from deploytune.samplers import make_sampler
from deploytune.space import Space

SPACE = Space.from_dict({"x": {"type": "float", "low": 0, "high": 1},
                         "y": {"type": "int", "low": 1, "high": 8},
                         "c": {"type": "categorical", "choices": ["a", "b"]}})
SAMPLERS = [s for s in deploytune.available_samplers()
            if s != "default" and not s.startswith("cabo-")]
TRIALS = {"gp": 5}


def _objective(trial: optuna.Trial) -> float:
    return (trial.suggest_float("x", 0, 1) + trial.suggest_int("y", 1, 8)
            + float(trial.suggest_categorical("c", ["a", "b"]) == "a"))


def _sampler(name: str) -> optuna.samplers.BaseSampler:
    return make_sampler(name, space=SPACE, seed=0, budget=20)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


@pytest.mark.parametrize("name", SAMPLERS)
def test_trials_that_do_not_fit_the_space_are_skipped(name: str) -> None:
    """A trial added with a subset of the parameters, or with a value outside the declared
    range, made cabo, smac, tba and tba-tpe raise KeyError and ctpe/tpe/gp ValueError on every
    later ask."""
    study = optuna.create_study(sampler=_sampler(name))
    study.add_trial(create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                                 value=1.0))
    study.add_trial(create_trial(
        params={"x": 5.0, "y": 20, "c": "a"},
        distributions={"x": FloatDistribution(0, 10), "y": IntDistribution(1, 30),
                       "c": CategoricalDistribution(["a", "b"])}, value=2.0))
    study.optimize(_objective, n_trials=TRIALS.get(name, 8))
    assert all(SPACE.fits(t.params) for t in study.trials[2:])


@pytest.mark.parametrize("name", SAMPLERS)
def test_partial_fixed_sampler_fixes_the_parameter(name: str) -> None:
    """``sample_relative`` returned parameters outside its ``search_space`` argument, so
    Optuna refused every trial under ``PartialFixedSampler``."""
    study = optuna.create_study(sampler=_sampler(name))
    study.optimize(_objective, n_trials=2)
    study.sampler = optuna.samplers.PartialFixedSampler({"y": 3}, study.sampler)
    study.optimize(_objective, n_trials=3)
    assert [t.params["y"] for t in study.trials[2:]] == [3, 3, 3]


@pytest.mark.parametrize("name", SAMPLERS)
def test_reseed_rng_changes_the_draws(name: str) -> None:
    """``reseed_rng`` (called by Optuna in forked workers) did nothing in tba and tba-tpe, whose
    annealer kept the old seed."""
    sampler = _sampler(name)
    first = optuna.create_study(sampler=sampler)
    first.optimize(_objective, n_trials=3)
    sampler.reseed_rng()
    second = optuna.create_study(sampler=sampler)
    second.optimize(_objective, n_trials=3)
    assert [t.params for t in first.trials] != [t.params for t in second.trials]


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_pickled_sampler_proposes_what_the_original_would(name: str) -> None:
    """tpe, ctpe and gp held local functions and could not be pickled (Ray Tune's
    OptunaSearch pickles its sampler)."""
    sampler = _sampler(name)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective, n_trials=3)
    copy: Any = pickle.loads(pickle.dumps(sampler))
    a = optuna.create_study(sampler=sampler)
    b = optuna.create_study(sampler=copy)
    for s in (a, b):
        for t in study.trials:
            s.add_trial(t)
        s.optimize(_objective, n_trials=2)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


@pytest.mark.parametrize("name", [*SAMPLERS, "default"])
@pytest.mark.slow
def test_every_proposal_is_on_the_declared_grid(name: str) -> None:
    """Parameters with a ``step`` take only grid values, whatever the sampler (issue 17)."""
    space = Space.from_dict({
        "batch": {"type": "int", "low": 8, "high": 256, "step": 8, "memory": "increasing"},
        "frac": {"type": "float", "low": 0.5, "high": 0.95, "step": 0.05},
        "mode": {"type": "categorical", "choices": ["a", "b"]}})

    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        if config["batch"] > 200:
            raise MemoryError("out of memory")
        return {"objective": config["batch"] * config["frac"], "lat": config["batch"] / 10}

    result = deploytune.optimize(evaluate, space, constraints=["lat <= 15"],
                                 budget=TRIALS.get(name, 14), sampler=name, seed=0)
    assert all(space.is_valid(t.config) for t in result.trials), [t.config for t in
                                                                   result.trials]
