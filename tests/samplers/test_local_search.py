"""The shared local search (cabo, smac) and forest wrapper of the samplers."""

from __future__ import annotations

import numpy as np
import pytest

from deploytune.samplers._forest import Forest
from deploytune.samplers._local_search import local_search
from deploytune.space import Config


def _score(configs: list[Config]) -> np.ndarray:
    """Higher the nearer ``x`` is to 7."""
    return np.array([-abs(c["x"] - 7) for c in configs], dtype=float)


def _steps(config: Config, rng: np.random.Generator) -> list[Config]:
    return [{"x": config["x"] - 1}, {"x": config["x"] + 1}]


def test_climbs_to_the_best_and_returns_every_neighbour_scored() -> None:
    found = local_search([{"x": 0}], _score, _steps, np.random.default_rng(0), steps=20)
    assert {"x": 7} in found and {"x": 8} in found  # climbed to 7, looked past it, stopped
    assert {"x": 9} not in found


def test_step_limit_admit_and_acceptance_rule() -> None:
    rng = np.random.default_rng(0)
    assert local_search([{"x": 0}], _score, _steps, rng, steps=2)[-1] == {"x": 2}
    odd = local_search([{"x": 0}], _score, _steps, rng, steps=5,
                       admit=lambda c: c["x"] > 0 and c["x"] % 2 == 1)
    assert odd == [{"x": 1}]  # from 0 only 1 is admitted; from 1 both moves are even
    never = local_search([{"x": 0}], _score, _steps, rng, steps=5,
                         accept=lambda new, old: False)
    assert never == [{"x": -1}, {"x": 1}]
    assert local_search([], _score, _steps, rng, steps=5) == []


def test_starts_are_rated_once_by_their_own_scorer() -> None:
    rated: list[list[Config]] = []

    def rate(configs: list[Config]) -> np.ndarray:
        rated.append(list(configs))
        return _score(configs)

    local_search([{"x": 0}, {"x": 10}], _score, _steps, np.random.default_rng(0), steps=3,
                 rate_starts=rate)
    assert rated == [[{"x": 0}, {"x": 10}]]


@pytest.mark.parametrize("kind", ["ExtraTreesRegressor", "RandomForestRegressor"])
def test_forest_mean_and_variance_are_those_of_the_trees(kind: str) -> None:
    import sklearn.ensemble

    rng = np.random.default_rng(1)
    x, y = rng.random((30, 3)), rng.random(30)
    forest = Forest(getattr(sklearn.ensemble, kind), x, y, seed=2**32 + 5, n_estimators=7)
    per_tree = np.stack([t.predict(x[:5]) for t in forest.estimator.estimators_])
    mean, var = forest.mean_and_variance(x[:5])
    assert np.array_equal(mean, per_tree.mean(axis=0))
    assert np.array_equal(var, per_tree.var(axis=0))
    assert np.array_equal(forest.mean(x[:5]), mean)
    assert forest.estimator.random_state == 5
