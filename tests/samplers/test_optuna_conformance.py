"""Optuna's own sampler test classes (``optuna.testing.pytest_samplers``), subclassed for every
registered sampler (issue 17, item 4).

deploytune's samplers propose whole configurations of a :class:`~deploytune.space.Space`. These
test classes suggest parameters of their own (``x``, ``y``, ...) with distributions that change
from test to test, so the sampler's space here declares one parameter the tests never suggest:
every parameter of the tests is then one the space does not declare, answered the way the
samplers answer for any such parameter (an independent draw, from ``sample_independent`` or
within ``sample_relative``). What this checks: value types and bounds, steps and log scales,
conditional and ``PartialFixedSampler`` use, NaN objectives, ``sample_relative`` answering for
the whole search space it is given, and the refusal of multi-objective studies.
``tests/samplers/test_optuna_contract.py`` checks the samplers' own path (their space).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

import deploytune
from deploytune.samplers import make_sampler
from deploytune.space import Space

SPACE = Space.from_dict({"unused_by_optuna_tests": {"type": "float", "low": -1, "high": 1}})
# cabo's ablations and the gated tba-tpe variants share their sampler's code paths here
NAMES = [n for n in deploytune.available_samplers()
         if n != "default" and not n.startswith("cabo-")]


def _factory(name: str) -> Callable[[], BaseSampler]:
    return lambda: make_sampler(name, space=SPACE, seed=0, budget=20)


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestBasic(BasicSamplerTestCase):
    """Optuna's basic sampler tests."""

    @pytest.fixture
    def sampler(self, name: str) -> Callable[[], BaseSampler]:
        return _factory(name)


class TestRelative(RelativeSamplerTestCase):
    """Optuna's relative-sampling tests."""

    @pytest.fixture
    def sampler(self, name: str) -> Callable[[], BaseSampler]:
        return _factory(name)


class TestSingleObjectiveOnly(SingleOnlySamplerTestCase):
    """Every sampler but random refuses multi-objective studies with ``ValueError``."""

    @pytest.fixture(params=[n for n in NAMES if n != "random"])
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return _factory(str(request.param))
