"""The sampler registry: names, ``name[key=value;...]`` options, errors."""

from __future__ import annotations

import pytest

from deploytune.samplers import available, is_known, make_sampler, parse_name
from deploytune.samplers.cabo import CaboSampler
from deploytune.space import Categorical, Float, Space


@pytest.fixture
def space() -> Space:
    return Space([Categorical("backend", choices=("a", "b")), Float("x", low=0.0, high=1.0)])


def test_parse_plain_name_has_no_options() -> None:
    assert parse_name("cabo") == ("cabo", {})
    assert parse_name("  tba-tpe ") == ("tba-tpe", {})


def test_parse_options_are_typed_yaml_scalars() -> None:
    name, options = parse_name("cabo[pof_floor=0.5; coverage=false ;n_trees=24;cost_mode=ratio]")
    assert name == "cabo"
    assert options == {"pof_floor": 0.5, "coverage": False, "n_trees": 24, "cost_mode": "ratio"}
    assert parse_name("cabo[]") == ("cabo", {})


@pytest.mark.parametrize("text, part", [("cabo[pof_floor]", "pof_floor"),
                                        ("cabo[=1]", "=1"),
                                        ("cabo[pof_floor=]", "pof_floor="),
                                        ("cabo[pof_floor=0.5", "malformed"),
                                        ("cabo]", "malformed")])
def test_malformed_options_name_the_part_and_the_form(text: str, part: str) -> None:
    with pytest.raises(ValueError, match="key=value") as err:
        parse_name(text)
    assert part in str(err.value)
    assert not is_known(text)


def test_is_known_accepts_options_on_registered_names_only() -> None:
    assert "cabo" in available()
    assert is_known("cabo") and is_known("cabo[pof_floor=0.5]") and is_known("default")
    assert not is_known("nope[pof_floor=0.5]") and not is_known("nope")


def test_make_sampler_applies_options_from_the_name(space: Space) -> None:
    sampler = make_sampler("cabo[pof_floor=0.5;exploit_after=0.7]", space=space, seed=0,
                           budget=10)
    assert isinstance(sampler, CaboSampler)
    assert sampler.settings.pof_floor == 0.5 and sampler.settings.exploit_after == 0.7
    # keyword options win over options in the name
    sampler = make_sampler("cabo[pof_floor=0.5]", space=space, seed=0, pof_floor=0.25)
    assert isinstance(sampler, CaboSampler) and sampler.settings.pof_floor == 0.25


def test_make_sampler_errors_name_the_problem(space: Space) -> None:
    with pytest.raises(ValueError, match=r"unknown name 'nope\[x=1\]'"):
        make_sampler("nope[x=1]", space=space)
    with pytest.raises(ValueError, match=r"unknown option.*no_such_knob"):
        make_sampler("cabo[no_such_knob=1]", space=space)
