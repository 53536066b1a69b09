"""Sampler settings are checked when the sampler is built (issue 16, item 3): a bad option
fails before any trial, naming the option, instead of failing mid-run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from deploytune.samplers import make_sampler
from deploytune.samplers._options import check_optuna_options, check_settings
from deploytune.space import Space

SPACE = Space.from_dict({"x": {"type": "float", "low": 0, "high": 1},
                         "c": {"type": "categorical", "choices": ["a", "b"]}})


@dataclass(frozen=True)
class _Settings:
    n: int = 3
    p: float = 0.5
    on: bool = True
    mode: str = "a"
    horizon: int | None = None
    scales: tuple[float, ...] = (0.1,)


@pytest.mark.parametrize(("change", "message"), [
    ({"n": 2.5}, "n must be an integer"),
    ({"n": True}, "n must be an integer"),
    ({"n": 0}, "n must be a number >= 1"),
    ({"p": float("nan")}, "p must be a finite number"),
    ({"p": float("inf")}, "p must be a finite number"),
    ({"p": "0.5"}, "p must be a finite number"),
    ({"p": 1.5}, "p must be a number between 0 and 1"),
    ({"on": 1}, "on must be true or false"),
    ({"mode": 3}, "mode must be a string"),
    ({"mode": "z"}, "mode must be one of a, b"),
    ({"horizon": -1}, "horizon must be a number >= 0"),
    ({"scales": ()}, "scales must be a non-empty list of finite numbers"),
    ({"scales": (0.1, -2.0)}, "scales must be a number >= 0"),
])
def test_each_bad_field_is_named(change: dict[str, Any], message: str) -> None:
    settings = _Settings(**change)
    with pytest.raises(ValueError, match=f"^demo: option {message}"):
        check_settings(settings, owner="demo", ranges={
            "n": (1, None), "p": (0, 1), "horizon": (0, None), "scales": (0, None)},
            choices={"mode": ("a", "b")})


def test_good_settings_pass() -> None:
    check_settings(_Settings(horizon=4), owner="demo", ranges={"n": (1, None), "p": (0, 1)})


@pytest.mark.parametrize(("name", "message"), [
    ("cabo[coverage_until=-1]", "cabo: option coverage_until must be a number between 0 and 1"),
    ("cabo[violation_trend=.nan]", "cabo: option violation_trend must be a finite number"),
    ("cabo[random_probability=2]", "cabo: option random_probability"),
    ("cabo[n_trees=abc]", "cabo: option n_trees must be an integer"),
    ("cabo[pof_floor=0.5]", r"^cabo: unknown option\(s\) pof_floor; choose from .*n_trees"),
    ("tba[patience=-1]", "tba: option patience must be a number >= 0"),
    ("tpe[n_startup_trials=-5]", "tpe: option n_startup_trials must be an integer >= 0"),
    ("ctpe[n_ei_candidates=0]", "ctpe: option n_ei_candidates must be an integer >= 1"),
    ("tba-tpe[tpe_options={n_startup_trials: -1}]", "n_startup_trials must be an integer"),
])
def test_registered_samplers_reject_bad_options_when_built(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_sampler(name, space=SPACE, seed=0, budget=10)


def test_default_settings_of_every_registered_sampler_pass() -> None:
    from deploytune.samplers import available

    for name in available():
        if name == "gp":
            continue  # needs the optional PyTorch; its options go through the same check
        make_sampler(name, space=SPACE, seed=0, budget=10)


def test_optuna_options_pass_through_when_sane() -> None:
    check_optuna_options({"n_startup_trials": 0, "multivariate": True, "gamma_x": 0.3},
                         owner="tpe")
