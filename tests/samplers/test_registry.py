"""The sampler registry: names, ``name[key=value;...]`` options, errors; the catalogue."""

from __future__ import annotations

import pytest

from deploytune.samplers import DEFAULT_SAMPLER, available, is_known, make_sampler, parse_name
from deploytune.samplers.cabo import CaboSampler
from deploytune.samplers.catalogue import (
    NO_DESCRIPTION,
    describe,
    is_experimental,
    listed,
)
from deploytune.space import Categorical, Float, Space


@pytest.fixture
def space() -> Space:
    return Space([Categorical("backend", choices=("a", "b")), Float("x", low=0.0, high=1.0)])


def test_parse_plain_name_has_no_options() -> None:
    assert parse_name("cabo") == ("cabo", {})
    assert parse_name("  tba-tpe ") == ("tba-tpe", {})


def test_parse_options_are_typed_yaml_scalars() -> None:
    name, options = parse_name(
        "cabo[coverage_until=0.5; coverage=false ;n_trees=24;signature_rule=hard]")
    assert name == "cabo"
    assert options == {"coverage_until": 0.5, "coverage": False, "n_trees": 24,
                       "signature_rule": "hard"}
    assert parse_name("cabo[]") == ("cabo", {})


@pytest.mark.parametrize("text, part", [("cabo[coverage_until]", "coverage_until"),
                                        ("cabo[=1]", "=1"),
                                        ("cabo[coverage_until=]", "coverage_until="),
                                        ("cabo[coverage_until=0.5", "malformed"),
                                        ("cabo]", "malformed")])
def test_malformed_options_name_the_part_and_the_form(text: str, part: str) -> None:
    with pytest.raises(ValueError, match="key=value") as err:
        parse_name(text)
    assert part in str(err.value)
    assert not is_known(text)


def test_is_known_accepts_options_on_registered_names_only() -> None:
    assert "cabo" in available()
    assert is_known("cabo") and is_known("cabo[coverage_until=0.5]") and is_known("default")
    assert not is_known("nope[coverage_until=0.5]") and not is_known("nope")


def test_make_sampler_applies_options_from_the_name(space: Space) -> None:
    sampler = make_sampler("cabo[coverage_until=0.5;violation_trend=0.7]", space=space,
                           seed=0, budget=10)
    assert isinstance(sampler, CaboSampler)
    assert sampler.settings.coverage_until == 0.5 and sampler.settings.violation_trend == 0.7
    # keyword options win over options in the name
    sampler = make_sampler("cabo[coverage_until=0.5]", space=space, seed=0,
                           coverage_until=0.25)
    assert isinstance(sampler, CaboSampler) and sampler.settings.coverage_until == 0.25


def test_make_sampler_errors_name_the_problem(space: Space) -> None:
    with pytest.raises(ValueError, match=r"unknown name 'nope\[x=1\]'"):
        make_sampler("nope[x=1]", space=space)
    with pytest.raises(ValueError, match=r"unknown option.*no_such_knob"):
        make_sampler("cabo[no_such_knob=1]", space=space)


def test_every_registered_sampler_has_a_description() -> None:
    # A new sampler fails here until samplers/catalogue.py says what it is for.
    missing = [n for n in available() if describe(n) == NO_DESCRIPTION]
    assert not missing, f"add these to samplers/catalogue.py CATALOGUE: {missing}"
    for name in available():
        text = describe(name)
        assert text.strip() and "\n" not in text, name


def test_a_new_sampler_is_one_register_call(space: Space,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """What CONTRIBUTING.md shows: a factory and its line, registered, are listed, described
    and buildable by name (in a copy of the registry, so other tests do not see it)."""
    from deploytune import samplers
    from deploytune.samplers.random import UniformSampler

    monkeypatch.setattr(samplers, "_REGISTRY", dict(samplers.registered()))
    samplers.register("my-sampler", lambda space, seed=None, budget=None, **kw:
                      UniformSampler(space, seed), "my sampler, for the test")
    samplers.register("undescribed", lambda space, seed=None, budget=None, **kw:
                      UniformSampler(space, seed))
    assert "my-sampler" in listed() and describe("my-sampler") == "my sampler, for the test"
    assert describe("undescribed") == NO_DESCRIPTION
    assert isinstance(make_sampler("my-sampler", space=space, seed=0), UniformSampler)
    assert listed()[:2] == ["cabo", "default"]


def test_unknown_name_falls_back_to_no_description() -> None:
    assert describe("no-such-sampler") == NO_DESCRIPTION
    assert not is_experimental("no-such-sampler")


def test_default_list_leaves_out_the_experimental_samplers() -> None:
    default, every = listed(), listed(include_experimental=True)
    assert default[0] == "cabo" and every[0] == "cabo"
    assert describe("cabo").startswith("the default")
    assert describe("default").startswith(f"= {DEFAULT_SAMPLER}")
    assert "cabo-no-crash" not in default and "cabo-no-crash" in every
    assert "tba-tpe-gate" not in every  # removed from the code (docs/algorithm.md)
    assert "cabo-ratio-cost" not in every  # removed from the code (docs/benchmarks.md)
    for name in ("random", "tpe", "ctpe", "gp", "smac", "tba", "tba-tpe", "tba-tpe-paper",
                 "default"):
        assert name in default, name
    assert all(is_experimental(n) for n in every if n.startswith("cabo-no-"))
    assert sorted(every) == available()
    assert set(every) - set(default) == {n for n in every if is_experimental(n)}


def test_experimental_samplers_still_run(space: Space) -> None:
    assert is_experimental("cabo-no-crash") and is_known("cabo-no-crash")
    sampler = make_sampler("cabo-no-crash", space=space, seed=0, budget=10)
    assert isinstance(sampler, CaboSampler) and not sampler.settings.crash_model
