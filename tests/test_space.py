"""Tests of deploytune.space: definitions, validation, sampling, moves and the Optuna bridge."""

from __future__ import annotations

import builtins
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploytune import Categorical, Float, Int, Space

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The example space of the contract: categorical / int / float, log scales, a conditional child,
# a child with two parents (all conditions must hold) and a forbidden combination.
EXAMPLE: dict[str, dict[str, Any]] = {
    "backend": {"type": "categorical", "choices": ["eager", "compile", "onnxruntime"]},
    "precision": {"type": "categorical", "choices": ["fp32", "fp16", "int8"]},
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
    "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager", "onnxruntime"]}},
    "compile_mode": {"type": "categorical", "choices": ["default", "max-autotune"],
                     "when": {"backend": ["compile"]}},
    "cuda_graphs": {"type": "categorical", "choices": [True, False],
                    "when": {"backend": ["compile"], "compile_mode": ["max-autotune"]}},
    "mem_fraction": {"type": "float", "low": 0.1, "high": 0.95},
    "lr_scale": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
}
FORBIDDEN = [{"backend": ["compile"], "precision": ["int8"]}]


@pytest.fixture
def space() -> Space:
    return Space.from_dict(EXAMPLE, forbidden=FORBIDDEN)


@pytest.fixture
def plain_space() -> Space:
    """The example space without forbidden combinations (every resolved config is valid)."""
    return Space.from_dict(EXAMPLE)


def _samples(space: Space, n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


# --------------------------------------------------------------------------------- definition


def test_example_space_structure(space: Space) -> None:
    assert space.names == list(EXAMPLE)  # declaration order = dict order
    assert len(space) == len(EXAMPLE)
    assert isinstance(space["backend"], Categorical)
    assert isinstance(space["batch_size"], Int)
    assert isinstance(space["mem_fraction"], Float)
    assert space["batch_size"].log is True
    assert space["lr_scale"].log is True
    assert space["threads"].when == {"backend": ("eager", "onnxruntime")}
    assert space["cuda_graphs"].when == {"backend": ("compile",),
                                         "compile_mode": ("max-autotune",)}
    assert space.is_conditional
    assert "threads" in space
    assert "nope" not in space
    assert space.forbidden == ({"backend": ("compile",), "precision": ("int8",)},)


def test_space_from_param_objects_with_forbidden() -> None:
    s = Space(
        [Categorical("backend", choices=("eager", "compile")),
         Categorical("precision", choices=("fp32", "int8")),
         Int("threads", when={"backend": ("eager",)}, low=1, high=4)],
        forbidden=[{"backend": ["compile"], "precision": ["int8"]}],
    )
    assert s.names == ["backend", "precision", "threads"]
    assert s.is_forbidden({"backend": "compile", "precision": "int8"})
    assert not s.is_forbidden({"backend": "eager", "precision": "int8", "threads": 2})


def test_declaration_order_follows_dict_order() -> None:
    spec = {
        "z": {"type": "int", "low": 0, "high": 3},
        "a": {"type": "categorical", "choices": ["x", "y"]},
        "m": {"type": "float", "low": 0.0, "high": 1.0, "when": {"a": ["x"]}},
    }
    s = Space.from_dict(spec)
    assert s.names == ["z", "a", "m"]
    assert [p.name for p in s] == ["z", "a", "m"]
    rng = np.random.default_rng(1)
    for _ in range(20):
        c = s.sample(rng)
        keys = list(c)
        assert keys == [n for n in s.names if n in c]  # configs keep declaration order


INVALID_DEFINITIONS = [
    pytest.param({"precision": {"type": "categorical", "choices": []}},
                 r"'precision', choices: expected a non-empty list", id="empty-choices"),
    pytest.param({"bs": {"type": "int", "low": 8, "high": 1}},
                 r"'bs'.*low \(8\) > high \(1\)", id="int-low-gt-high"),
    pytest.param({"frac": {"type": "float", "low": 0.9, "high": 0.1}},
                 r"'frac'.*low \(0\.9\) > high \(0\.1\)", id="float-low-gt-high"),
    pytest.param({"bs": {"type": "int", "low": 0, "high": 64, "log": True}},
                 r"'bs'.*log scale needs low > 0", id="int-log-low-zero"),
    pytest.param({"lr": {"type": "float", "low": -1.0, "high": 1.0, "log": True}},
                 r"'lr'.*log scale needs low > 0", id="float-log-low-negative"),
    pytest.param({"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}},
                 r"'lr'.*log scale needs low > 0", id="float-log-low-zero"),
    pytest.param({"threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager"]}}},
                 r"'threads'.*unknown parent 'backend'", id="unknown-parent"),
    pytest.param({"backend": {"type": "categorical", "choices": ["eager"]},
                  "threads": {"type": "int", "low": 1, "high": 8, "when": {"backnd": ["eager"]}}},
                 r"'threads'.*unknown parent 'backnd'", id="misspelt-parent"),
    pytest.param({"threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager"]}},
                  "backend": {"type": "categorical", "choices": ["eager", "compile"]}},
                 r"'threads'.*parent 'backend' is declared after it", id="child-before-parent"),
    pytest.param({"bs": {"type": "int", "low": 1, "high": 8, "lgo": True}},
                 r"'bs'.*unknown key.*'lgo'", id="unknown-key-int"),
    pytest.param({"backend": {"type": "categorical", "choices": ["a"], "low": 1}},
                 r"'backend'.*unknown key.*'low'", id="unknown-key-categorical"),
    pytest.param({"bs": {"type": "integer", "low": 1, "high": 8}},
                 r"'bs', type: must be categorical, int or float", id="unknown-type"),
    pytest.param({"bs": {"low": 1, "high": 8}},
                 r"'bs', type: missing; add type", id="missing-type"),
    pytest.param({"bs": {"type": "int", "low": 1}},
                 r"'bs', high: missing", id="missing-high"),
    pytest.param({"bs": {"type": "int", "low": 1.5, "high": 8}},
                 r"'bs', low: expected a whole number", id="int-float-bound"),
    pytest.param({"bs": {"type": "int", "low": True, "high": 8}},
                 r"'bs', low: expected a whole number", id="int-bool-bound"),
    pytest.param({"lr": {"type": "float", "low": "0.1", "high": 1.0}},
                 r"'lr', low: expected a number", id="float-string-bound"),
    pytest.param({"lr": {"type": "float", "low": 0.0, "high": math.inf}},
                 r"'lr'.*finite", id="float-infinite-bound"),
    pytest.param({"lr": {"type": "float", "low": math.nan, "high": 1.0}},
                 r"'lr'.*finite", id="float-nan-bound"),
    pytest.param({"bs": {"type": "int", "low": 1, "high": 8, "log": "yes"}},
                 r"'bs', log: expected true or false", id="log-not-bool"),
    pytest.param({"backend": {"type": "categorical", "choices": ["a", "b", "a"]}},
                 r"'backend'.*'a' is listed twice", id="duplicate-choice"),
    pytest.param({"backend": {"type": "categorical", "choices": "eager"}},
                 r"'backend', choices: expected a non-empty list", id="choices-not-list"),
    pytest.param({"backend": {"type": "categorical", "choices": [["eager"]]}},
                 r"'backend'.*choices must be str, int, (finite )?float, bool or None",
                 id="choice-type"),
    pytest.param({"backend": {"type": "categorical", "choices": ["eager"]},
                  "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["tvm"]}}},
                 r"'threads'.*'tvm'.*outside 'backend''s domain", id="when-value-out-of-domain"),
    pytest.param({"backend": {"type": "categorical", "choices": ["eager"]},
                  "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": []}}},
                 r"'threads'.*no allowed values for parent 'backend'", id="when-empty-values"),
    pytest.param({"threads": {"type": "int", "low": 1, "high": 8, "when": ["backend"]}},
                 r"'threads', when: expected a mapping", id="when-not-mapping"),
    pytest.param({"threads": {"type": "int", "low": 1, "high": 8, "when": {"threads": [1]}}},
                 r"'threads', when.threads: a parameter cannot depend on itself",
                 id="when-self"),
    pytest.param({"bs": 8}, r"'bs'.*expected a mapping", id="definition-not-mapping"),
    pytest.param({"": {"type": "int", "low": 1, "high": 8}},
                 r"names must be non-empty strings", id="empty-name"),
    pytest.param({}, r"no parameters", id="empty-space"),
]


@pytest.mark.parametrize(("spec", "match"), INVALID_DEFINITIONS)
def test_invalid_definitions_raise_value_error_naming_param_and_problem(
        spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Space.from_dict(spec)


def test_duplicate_names_rejected() -> None:
    with pytest.raises(ValueError, match=r"'batch_size'.*declared twice"):
        Space([Int("batch_size", low=1, high=8), Categorical("batch_size", choices=("a",))])


def test_param_objects_are_checked_like_dicts() -> None:
    with pytest.raises(ValueError, match=r"'bs'.*low \(9\) > high \(2\)"):
        Space([Int("bs", low=9, high=2)])
    with pytest.raises(ValueError, match=r"'precision', choices: expected a non-empty list"):
        Space([Categorical("precision", choices=())])
    with pytest.raises(ValueError, match=r"'threads'.*declared after it"):
        Space([Int("threads", when={"backend": ("eager",)}, low=1, high=2),
               Categorical("backend", choices=("eager",))])


def test_spec_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="expected a mapping"):
        Space.from_dict([("bs", {"type": "int", "low": 1, "high": 2})])  # type: ignore[arg-type]


INVALID_FORBIDDEN = [
    pytest.param([{"backnd": ["compile"]}], r"forbidden combination #0.*unknown parameter 'backnd'",
                 id="unknown-name"),
    pytest.param([{"backend": ["tvm"]}], r"forbidden combination #0.*'tvm'.*domain of 'backend'",
                 id="value-out-of-domain"),
    pytest.param([{"backend": ["eager"]}, {"batch_size": [128]}],
                 r"forbidden combination #1.*128.*domain of 'batch_size'", id="second-rule"),
    pytest.param([{}], r"forbidden combination #0.*non-empty mapping", id="empty-rule"),
    pytest.param(["backend"], r"forbidden combination #0.*non-empty mapping",
                 id="rule-not-mapping"),
    pytest.param([{"backend": []}], r"forbidden combination #0: gives no values",
                 id="no-values"),
]


@pytest.mark.parametrize(("forbidden", "match"), INVALID_FORBIDDEN)
def test_invalid_forbidden_combinations(forbidden: list[Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Space.from_dict(EXAMPLE, forbidden=forbidden)


def test_forbidden_single_value_is_accepted() -> None:
    s = Space.from_dict(EXAMPLE, forbidden=[{"backend": "compile", "precision": "int8"}])
    assert s.forbidden == ({"backend": ("compile",), "precision": ("int8",)},)


def test_no_eval_of_strings() -> None:
    payload = "setattr(__import__('builtins'), 'DEPLOYTUNE_PWNED', 1) or 1"
    specs = [
        {"bs": {"type": "int", "low": payload, "high": 8}},
        {"lr": {"type": "float", "low": 0.0, "high": payload}},
        {"bs": {"type": "int", "low": 1, "high": 8, "log": payload}},
        {"bs": {"type": payload, "low": 1, "high": 8}},
    ]
    for spec in specs:
        with pytest.raises(ValueError):
            Space.from_dict(spec)
    # A string choice stays a string, it is never evaluated.
    s = Space.from_dict({"c": {"type": "categorical", "choices": [payload]}})
    assert s.sample(np.random.default_rng(0)) == {"c": payload}
    assert not hasattr(builtins, "DEPLOYTUNE_PWNED")


# ----------------------------------------------------------------------------------- sampling


def test_samples_respect_conditions_and_bounds(space: Space) -> None:
    samples = _samples(space, 2000)
    seen: dict[str, set[Any]] = {n: set() for n in space.names}
    for c in samples:
        assert space.problems(c) == []
        backend = c["backend"]
        assert ("threads" in c) == (backend in ("eager", "onnxruntime"))
        assert ("compile_mode" in c) == (backend == "compile")
        # two parents: both must hold
        assert ("cuda_graphs" in c) == (backend == "compile"
                                        and c.get("compile_mode") == "max-autotune")
        assert isinstance(c["batch_size"], int) and 1 <= c["batch_size"] <= 64
        assert isinstance(c["mem_fraction"], float) and 0.1 <= c["mem_fraction"] <= 0.95
        assert 1e-4 <= c["lr_scale"] <= 1.0
        if "threads" in c:
            assert isinstance(c["threads"], int) and 1 <= c["threads"] <= 8
        for k, v in c.items():
            seen[k].add(v)
    assert seen["backend"] == {"eager", "compile", "onnxruntime"}
    assert seen["precision"] == {"fp32", "fp16", "int8"}
    assert seen["cuda_graphs"] == {True, False}
    assert seen["threads"] == set(range(1, 9))
    assert 1 in seen["batch_size"] and 64 in seen["batch_size"]


def test_sampling_is_reproducible(space: Space) -> None:
    assert _samples(space, 50, seed=7) == _samples(space, 50, seed=7)
    assert _samples(space, 50, seed=7) != _samples(space, 50, seed=8)


def test_log_int_samples_favour_small_values() -> None:
    log_space = Space.from_dict({"bs": {"type": "int", "low": 1, "high": 64, "log": True}})
    lin_space = Space.from_dict({"bs": {"type": "int", "low": 1, "high": 64}})
    n = 4000
    log_vals = [c["bs"] for c in _samples(log_space, n)]
    lin_vals = [c["bs"] for c in _samples(lin_space, n)]
    assert all(1 <= v <= 64 for v in log_vals)
    small_log = sum(v <= 4 for v in log_vals) / n
    small_lin = sum(v <= 4 for v in lin_vals) / n
    # uniform: 4/64 = 6%; log-uniform: log(4.5)/log(64.5) ~ 36%
    assert small_lin < 0.10
    assert small_log > 0.25
    assert small_log > 3 * small_lin
    counts = Counter(log_vals)
    assert counts[1] > 4 * n / 64  # 1 alone far more often than uniform's 1/64
    assert counts[64] > 0  # the top is still reachable
    # roughly uniform in log space: the geometric midpoint 8 splits the mass near half-half
    assert 0.35 < sum(v <= 8 for v in log_vals) / n < 0.65


def test_log_float_samples_are_log_uniform() -> None:
    s = Space.from_dict({"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}})
    vals = [c["lr"] for c in _samples(s, 3000)]
    assert all(1e-5 <= v <= 1e-1 for v in vals)
    below_mid = sum(v < 1e-3 for v in vals) / len(vals)  # geometric midpoint
    assert 0.44 < below_mid < 0.56
    assert sum(v < 1e-4 for v in vals) / len(vals) > 0.2  # uniform would give ~0.1%


def test_forbidden_combinations_never_sampled() -> None:
    s = Space.from_dict(
        {"backend": {"type": "categorical", "choices": ["eager", "compile"]},
         "precision": {"type": "categorical", "choices": ["fp32", "int8"]},
         "threads": {"type": "int", "low": 1, "high": 2, "when": {"backend": ["eager"]}}},
        forbidden=[{"backend": ["compile"], "precision": ["int8"]},
                   {"threads": [2], "precision": ["fp32"]}],
    )
    pairs = set()
    for c in _samples(s, 1000):
        assert not s.is_forbidden(c)
        assert not (c["backend"] == "compile" and c["precision"] == "int8")
        assert not (c.get("threads") == 2 and c["precision"] == "fp32")
        pairs.add((c["backend"], c["precision"], c.get("threads")))
    assert pairs == {("compile", "fp32", None), ("eager", "fp32", 1), ("eager", "int8", 1),
                     ("eager", "int8", 2)}


def test_forbidden_rule_on_inactive_param_does_not_match() -> None:
    s = Space.from_dict(EXAMPLE, forbidden=[{"threads": [1, 2, 3]}])
    assert s.is_forbidden({"backend": "eager", "threads": 2})
    assert not s.is_forbidden({"backend": "compile"})


def test_sampling_a_fully_forbidden_space_raises() -> None:
    s = Space.from_dict({"a": {"type": "categorical", "choices": ["x", "y"]}},
                        forbidden=[{"a": ["x", "y"]}])
    with pytest.raises(ValueError, match="forbidden"):
        s.sample(np.random.default_rng(0), max_tries=20)


# --------------------------------------------------------------------------------- validation


def _valid_eager() -> dict[str, Any]:
    return {"backend": "eager", "precision": "fp16", "batch_size": 8, "threads": 4,
            "mem_fraction": 0.5, "lr_scale": 0.01}


def test_valid_config_has_no_problems(space: Space) -> None:
    c = _valid_eager()
    assert space.problems(c) == []
    assert space.is_valid(c)
    assert space.validate(c) is None


def test_missing_active_parameter(space: Space) -> None:
    c = _valid_eager()
    del c["threads"]
    problems = space.problems(c)
    assert len(problems) == 1 and "'threads'" in problems[0] and "missing" in problems[0]
    with pytest.raises(ValueError, match=r"'threads' is active but missing"):
        space.validate(c)
    assert not space.is_valid(c)


def test_inactive_parameter_set(space: Space) -> None:
    c = _valid_eager()
    c["compile_mode"] = "default"
    with pytest.raises(ValueError, match=r"'compile_mode' is set but inactive"):
        space.validate(c)
    c = {"backend": "compile", "precision": "fp16", "batch_size": 8, "threads": 4,
         "compile_mode": "default", "mem_fraction": 0.5, "lr_scale": 0.01}
    with pytest.raises(ValueError, match=r"'threads' is set but inactive"):
        space.validate(c)


def test_two_parent_condition_needs_both(space: Space) -> None:
    base = {"backend": "compile", "precision": "fp16", "batch_size": 8,
            "mem_fraction": 0.5, "lr_scale": 0.01}
    assert space.problems({**base, "compile_mode": "max-autotune", "cuda_graphs": True}) == []
    assert space.problems({**base, "compile_mode": "default"}) == []
    with pytest.raises(ValueError, match=r"'cuda_graphs' is set but inactive"):
        space.validate({**base, "compile_mode": "default", "cuda_graphs": True})
    with pytest.raises(ValueError, match=r"'cuda_graphs' is active but missing"):
        space.validate({**base, "compile_mode": "max-autotune"})


@pytest.mark.parametrize(("name", "value"), [
    ("batch_size", 0), ("batch_size", 65), ("batch_size", 2.5), ("batch_size", "8"),
    ("batch_size", True), ("precision", "int4"), ("threads", 9), ("mem_fraction", 0.05),
    ("mem_fraction", 1.5), ("mem_fraction", math.nan), ("mem_fraction", "0.5"),
    ("lr_scale", 2.0), ("backend", None),
])
def test_out_of_domain(space: Space, name: str, value: Any) -> None:
    c = _valid_eager()
    c[name] = value
    problems = space.problems(c)
    assert any(f"{name!r}" in p and "outside its domain" in p for p in problems), problems
    with pytest.raises(ValueError, match=rf"'{name}'.*outside its domain"):
        space.validate(c)


def test_bool_choice_is_not_int() -> None:
    s = Space.from_dict({"flag": {"type": "categorical", "choices": [True, False]},
                         "n": {"type": "categorical", "choices": [1, 2]}})
    assert s.is_valid({"flag": True, "n": 1})
    assert not s.is_valid({"flag": 1, "n": 1})
    assert not s.is_valid({"flag": True, "n": True})


def test_unknown_name(space: Space) -> None:
    c = {**_valid_eager(), "nproc": 2}
    assert any("'nproc'" in p and "not a parameter" in p for p in space.problems(c))
    with pytest.raises(ValueError, match=r"'nproc' is not a parameter"):
        space.validate(c)


def test_forbidden_config_is_invalid(space: Space) -> None:
    c = {"backend": "compile", "precision": "int8", "batch_size": 8, "compile_mode": "default",
         "mem_fraction": 0.5, "lr_scale": 0.01}
    assert space.is_forbidden(c)
    with pytest.raises(ValueError, match="forbidden"):
        space.validate(c)
    assert Space.from_dict(EXAMPLE).is_valid(c)


def test_validate_lists_every_problem(space: Space) -> None:
    c = {"backend": "eager", "precision": "int4", "batch_size": 8, "compile_mode": "default",
         "mem_fraction": 0.5, "lr_scale": 0.01, "bogus": 1}
    with pytest.raises(ValueError) as info:
        space.validate(c)
    msg = str(info.value)
    for fragment in ("'bogus'", "'threads'", "'compile_mode'", "'precision'"):
        assert fragment in msg


# ----------------------------------------------------------------------------------- complete


def test_complete_drops_inactive_and_fills_active(space: Space) -> None:
    rng = np.random.default_rng(0)
    partial = {"backend": "compile", "precision": "fp16", "threads": 4, "batch_size": 16}
    for _ in range(50):
        c = space.complete(partial, rng)
        assert "threads" not in c
        assert c["backend"] == "compile" and c["precision"] == "fp16" and c["batch_size"] == 16
        assert "compile_mode" in c and "mem_fraction" in c and "lr_scale" in c
        assert space.problems(c) == []
    assert partial == {"backend": "compile", "precision": "fp16", "threads": 4, "batch_size": 16}


def test_complete_of_empty_config_is_a_valid_config(plain_space: Space) -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        assert plain_space.problems(plain_space.complete({}, rng)) == []


def test_complete_keeps_a_full_valid_config(space: Space) -> None:
    c = _valid_eager()
    assert space.complete(c, np.random.default_rng(0)) == c


def test_complete_ignores_unknown_names(space: Space) -> None:
    c = space.complete({**_valid_eager(), "bogus": 3}, np.random.default_rng(0))
    assert "bogus" not in c and space.problems(c) == []


# ----------------------------------------------------------------------------------- neighbor


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Parameters present in both configurations whose value changed."""
    return [k for k in old if k in new and old[k] != new[k]]


@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.0])
@pytest.mark.parametrize("p_structural", [0.0, 0.3, 1.0])
def test_neighbor_changes_exactly_one_active_param_and_stays_valid(
        plain_space: Space, temperature: float, p_structural: float) -> None:
    rng = np.random.default_rng(11)
    for _ in range(150):
        c = plain_space.sample(rng)
        snapshot = dict(c)
        n = plain_space.neighbor(c, rng, temperature, p_structural)
        assert c == snapshot  # the input is not mutated
        assert plain_space.problems(n) == [], (c, n)
        changed = _changed(c, n)
        assert len(changed) == 1, (c, n)
        moved = plain_space[changed[0]]
        if p_structural == 1.0:
            assert isinstance(moved, Categorical)
        if p_structural == 0.0:
            assert isinstance(moved, (Int, Float))
        # hierarchy side effects only: the rest are exactly the children (de)activated
        for k in set(c) ^ set(n):
            assert plain_space[k].when, k


def test_neighbor_structural_move_resolves_hierarchy(plain_space: Space) -> None:
    rng = np.random.default_rng(5)
    c = {"backend": "eager", "precision": "fp16", "batch_size": 8, "threads": 4,
         "mem_fraction": 0.5, "lr_scale": 0.01}
    single = Space.from_dict({k: EXAMPLE[k] for k in ("backend", "threads")})
    for _ in range(50):
        n = single.neighbor({"backend": "eager", "threads": 4}, rng, 1.0, 1.0)
        assert n["backend"] != "eager"
        if n["backend"] == "compile":
            assert "threads" not in n
        else:
            assert n["threads"] == 4  # still active: value kept
    for _ in range(50):
        assert plain_space.problems(plain_space.neighbor(c, rng, 1.0, 1.0)) == []


def test_neighbor_uses_allowed_values() -> None:
    s = Space.from_dict({k: EXAMPLE[k] for k in ("backend", "batch_size")})
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = s.neighbor({"backend": "eager", "batch_size": 8}, rng, 1.0, 1.0,
                       allowed={"backend": ["eager", "onnxruntime"]})
        assert n == {"backend": "onnxruntime", "batch_size": 8}


def test_neighbor_numeric_only_space() -> None:
    s = Space.from_dict({"bs": {"type": "int", "low": 1, "high": 64, "log": True},
                         "frac": {"type": "float", "low": 0.1, "high": 0.9}})
    rng = np.random.default_rng(2)
    for _ in range(200):
        c = s.sample(rng)
        n = s.neighbor(c, rng, 0.5, 1.0)  # p_structural=1 but nothing categorical
        assert s.problems(n) == []
        assert len(_changed(c, n)) == 1


def test_neighbor_int_never_stands_still_even_at_low_temperature() -> None:
    s = Space.from_dict({"n": {"type": "int", "low": 1, "high": 100}})
    rng = np.random.default_rng(0)
    for start in (1, 50, 100):
        for _ in range(50):
            n = s.neighbor({"n": start}, rng, 0.0, 0.0)["n"]
            assert n != start and abs(n - start) <= 2 and 1 <= n <= 100


def test_neighbor_float_at_bound_still_moves() -> None:
    s = Space.from_dict({"frac": {"type": "float", "low": 0.1, "high": 0.9}})
    rng = np.random.default_rng(0)
    for start in (0.1, 0.9):
        for _ in range(100):
            n = s.neighbor({"frac": start}, rng, 0.5, 0.0)
            assert 0.1 <= n["frac"] <= 0.9
            assert n["frac"] != start, "a move must change exactly one active parameter"


def test_log_int_neighbor_moves_are_multiplicative() -> None:
    s = Space.from_dict({"bs": {"type": "int", "low": 1, "high": 64, "log": True}})
    rng = np.random.default_rng(0)
    from_32 = [s.neighbor({"bs": 32}, rng, 1.0, 0.0)["bs"] for _ in range(1000)]
    assert all(1 <= v <= 64 and v != 32 for v in from_32)
    assert 16 in from_32 and 64 in from_32  # halving / doubling in one step
    assert sum(v <= 16 for v in from_32) > 100 and sum(v == 64 for v in from_32) > 100
    # from 1 the same temperature gives small steps (multiplicative, not additive)
    from_1 = [s.neighbor({"bs": 1}, rng, 1.0, 0.0)["bs"] for _ in range(1000)]
    assert all(v >= 2 for v in from_1)
    assert np.median(from_1) <= 3
    assert sum(v <= 4 for v in from_1) / len(from_1) > 0.6
    # at low temperature, from 1 only the smallest step is possible
    cold = {s.neighbor({"bs": 1}, rng, 0.05, 0.0)["bs"] for _ in range(200)}
    assert cold == {2}
    assert sum(v >= 16 for v in from_1) / len(from_1) < 0.05
    # a linear int from 1 at the same temperature often jumps far
    lin = Space.from_dict({"bs": {"type": "int", "low": 1, "high": 64}})
    lin_from_1 = [lin.neighbor({"bs": 1}, rng, 1.0, 0.0)["bs"] for _ in range(1000)]
    assert sum(v >= 16 for v in lin_from_1) / len(lin_from_1) > 0.1


def test_neighbor_step_shrinks_with_temperature() -> None:
    s = Space.from_dict({"frac": {"type": "float", "low": 0.0, "high": 1.0}})
    rng = np.random.default_rng(0)

    def mean_step(t: float) -> float:
        return float(np.mean([abs(s.neighbor({"frac": 0.5}, rng, t, 0.0)["frac"] - 0.5)
                              for _ in range(500)]))

    hot, cold = mean_step(1.0), mean_step(0.05)
    assert cold < hot / 5
    assert cold > 0


# ---------------------------------------------------------------------------------- round trip


def test_to_dict_from_dict_round_trip(space: Space) -> None:
    d = space.to_dict()
    assert list(d) == space.names
    json.loads(json.dumps(d))  # plain data, JSON-serialisable
    again = Space.from_dict(d, forbidden=space.forbidden)
    assert again == space
    assert again.to_dict() == d
    assert Space.from_dict(json.loads(json.dumps(d))).to_dict() == d
    plain = Space.from_dict(EXAMPLE)
    assert Space.from_dict(plain.to_dict()) == plain


def test_round_trip_preserves_types_and_semantics(space: Space) -> None:
    again = Space.from_dict(space.to_dict(), forbidden=space.forbidden)
    for p, q in zip(space, again, strict=True):
        assert type(p) is type(q) and p == q
    assert _samples(space, 30, seed=4) == _samples(again, 30, seed=4)


def test_equality_sees_differences() -> None:
    a = Space.from_dict(EXAMPLE)
    spec = {**EXAMPLE, "batch_size": {"type": "int", "low": 1, "high": 32, "log": True}}
    assert a != Space.from_dict(spec)
    assert a != Space.from_dict(EXAMPLE, forbidden=FORBIDDEN)


# -------------------------------------------------------------------------------------- optuna


def test_distributions_match_params(space: Space) -> None:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    d = space.distributions()
    assert list(d) == space.names
    assert d["backend"] == CategoricalDistribution(["eager", "compile", "onnxruntime"])
    assert d["batch_size"] == IntDistribution(1, 64, log=True)
    assert d["lr_scale"] == FloatDistribution(1e-4, 1.0, log=True)
    assert d["mem_fraction"] == FloatDistribution(0.1, 0.95)


def test_suggest_with_optuna_trial(plain_space: Space) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    backends = set()
    for _ in range(30):
        trial = study.ask()
        config = plain_space.suggest(trial)
        assert plain_space.problems(config) == []
        assert trial.params == config
        for name in config:
            assert trial.distributions[name] == plain_space[name].distribution()
        backends.add(config["backend"])
        study.tell(trial, 0.0)
    assert backends == {"eager", "compile", "onnxruntime"}


def test_suggest_plain_ask() -> None:
    s = Space.from_dict(EXAMPLE)
    trial = optuna.create_study().ask()
    config = s.suggest(trial)
    assert s.problems(config) == []


def test_suggest_with_fixed_trial(space: Space) -> None:
    c = _valid_eager()
    assert space.suggest(optuna.trial.FixedTrial(c)) == c


# ----------------------------------------------------------------------------------- hypothesis

_CHOICE = st.one_of(st.text(max_size=4), st.integers(-3, 3), st.booleans(), st.none())


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    n = draw(st.integers(1, 6))
    spec: dict[str, dict[str, Any]] = {}
    for i in range(n):
        name = f"p{i}"
        kind = draw(st.sampled_from(["categorical", "int", "float"]))
        d: dict[str, Any]
        if kind == "categorical":
            raw = draw(st.lists(_CHOICE, min_size=1, max_size=4))
            choices: list[Any] = []
            for v in raw:
                if not any(v == c for c in choices):  # also keeps True and 1 apart
                    choices.append(v)
            d = {"type": "categorical", "choices": choices}
        elif kind == "int":
            log = draw(st.booleans())
            low = draw(st.integers(1, 50) if log else st.integers(-50, 50))
            high = low + draw(st.integers(0, 200))
            d = {"type": "int", "low": low, "high": high, "log": log}
        else:
            log = draw(st.booleans())
            low = draw(st.floats(1e-6, 1e3) if log else st.floats(-1e3, 1e3))
            high = low + draw(st.floats(0.0, 1e3))
            d = {"type": "float", "low": low, "high": high, "log": log}
        parents = [p for p, pd in spec.items() if pd["type"] == "categorical"]
        if parents and draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(parents), min_size=1, max_size=2, unique=True))
            d["when"] = {
                p: draw(st.lists(st.sampled_from(spec[p]["choices"]), min_size=1,
                                 max_size=len(spec[p]["choices"])))
                for p in chosen
            }
        spec[name] = d
    return spec


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=valid_specs(), seed=st.integers(0, 2**32 - 1))
def test_property_valid_spaces_sample_valid_configs(spec: dict[str, Any], seed: int) -> None:
    s = Space.from_dict(spec)
    rng = np.random.default_rng(seed)
    assert Space.from_dict(s.to_dict()) == s
    for _ in range(10):
        c = s.sample(rng)
        assert s.problems(c) == [], (spec, c)
        n = s.neighbor(c, rng, float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.0, 1.0)))
        assert s.problems(n) == [], (spec, c, n)
        assert len(_changed(c, n)) <= 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=valid_specs())
def test_property_suggest_gives_valid_configs(spec: dict[str, Any]) -> None:
    s = Space.from_dict(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        assert s.problems(s.suggest(trial)) == []
        study.tell(trial, 0.0)


_GARBAGE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
              st.sampled_from(["categorical", "int", "float", "type", "when", "low", "high"])),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(["type", "choices", "low", "high", "log", "when", "extra"])
_PARAM_GARBAGE = st.one_of(
    _GARBAGE,
    st.dictionaries(_KEYS, _GARBAGE, max_size=6),
    st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(["categorical", "int", "float"]), _GARBAGE)},
        optional={"choices": _GARBAGE, "low": _GARBAGE, "high": _GARBAGE, "log": _GARBAGE,
                  "when": st.one_of(_GARBAGE, st.dictionaries(
                      st.sampled_from(["a", "b", "c"]), _GARBAGE, max_size=2))},
    ),
)
_SPEC_GARBAGE = st.one_of(
    _GARBAGE,
    st.dictionaries(st.one_of(st.sampled_from(["a", "b", "c"]), st.text(max_size=3)),
                    _PARAM_GARBAGE, max_size=4),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_SPEC_GARBAGE)
@pytest.mark.slow
def test_property_garbage_definitions_raise_only_value_error(spec: Any) -> None:
    try:
        s = Space.from_dict(spec)
    except ValueError:
        return
    s.to_dict()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forbidden=st.one_of(
    st.lists(st.one_of(_GARBAGE, st.dictionaries(
        st.sampled_from(["backend", "precision", "batch_size", "nope"]), _GARBAGE, max_size=3)),
        max_size=3),
    _GARBAGE,
))
@pytest.mark.slow
def test_property_garbage_forbidden_raises_only_value_error(forbidden: Any) -> None:
    try:
        s = Space.from_dict(EXAMPLE, forbidden=forbidden)
    except ValueError:
        return
    rng = np.random.default_rng(0)
    try:
        c = s.sample(rng, max_tries=50)
    except ValueError:
        return
    assert not s.is_forbidden(c)


@pytest.mark.parametrize("spec", [
    pytest.param({"bs": {"type": ["int"], "low": 1, "high": 8}}, id="unhashable-type-list"),
    pytest.param({"bs": {"type": {"int": 1}, "low": 1, "high": 8}}, id="unhashable-type-dict"),
    pytest.param({"lr": {"type": "float", "low": 10**400, "high": 10**401}}, id="huge-float-bound"),
])
def test_garbage_found_by_hypothesis_raises_value_error(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"'(bs|lr)'"):
        Space.from_dict(spec)


@pytest.mark.parametrize("forbidden", [5, 2.5, True])
def test_non_list_forbidden_is_value_error(forbidden: Any) -> None:
    with pytest.raises(ValueError, match="forbidden"):
        Space.from_dict(EXAMPLE, forbidden=forbidden)


def test_forbidden_none_means_none_or_value_error() -> None:
    # An empty ``forbidden:`` key in a YAML file loads as None.
    try:
        s = Space.from_dict(EXAMPLE, forbidden=None)  # type: ignore[arg-type]
    except ValueError as exc:
        assert "forbidden" in str(exc)
    else:
        assert s.forbidden == ()


def test_nan_choice_is_rejected_or_usable() -> None:
    # NaN never equals itself: a NaN choice could be sampled but never validated.
    try:
        s = Space.from_dict({"a": {"type": "categorical", "choices": [math.nan, 1.0]}})
    except ValueError as exc:
        assert "'a'" in str(exc)
        return
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert s.problems(s.sample(rng)) == []


def test_duplicate_choices_are_found_among_many_and_true_stays_apart_from_one() -> None:
    """Issue 16, item 10: the duplicate check compared every pair (82 s for 40k choices);
    it is a set lookup now, with the same equality (1 == 1.0, True != 1)."""
    many = [f"v{i}" for i in range(20000)]
    Space.from_dict({"c": {"type": "categorical", "choices": many}})
    with pytest.raises(ValueError, match="choice 'v7' is listed twice"):
        Space.from_dict({"c": {"type": "categorical", "choices": [*many, "v7"]}})
    with pytest.raises(ValueError, match=r"choice 1\.0 is listed twice"):
        Space.from_dict({"c": {"type": "categorical", "choices": [1, 2, 1.0]}})
    Space.from_dict({"c": {"type": "categorical", "choices": [1, True, 0, False, None]}})


def test_step_puts_ints_and_floats_on_a_grid() -> None:
    """Issue 17, item 4: ``suggest_*(step=...)`` had no counterpart in a Space."""
    space = Space.from_dict({"b": {"type": "int", "low": 8, "high": 64, "step": 8},
                             "f": {"type": "float", "low": 0.5, "high": 0.95, "step": 0.05}})
    assert space.to_dict()["b"]["step"] == 8 and space.to_dict()["f"]["step"] == 0.05
    assert Space.from_dict(space.to_dict()).to_dict() == space.to_dict()
    b, f = space.params
    assert b.contains(16) and not b.contains(20) and f.contains(0.65) and not f.contains(0.66)
    rng = np.random.default_rng(0)
    draws = [space.sample(rng) for _ in range(200)]
    assert {d["b"] for d in draws} == set(range(8, 65, 8))
    assert all(f.contains(d["f"]) for d in draws) and len({d["f"] for d in draws}) == 10
    assert space.distributions()["b"] == optuna.distributions.IntDistribution(8, 64, step=8)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        config = space.suggest(trial)
        assert space.is_valid(config)
        study.tell(trial, 0.0)


@pytest.mark.parametrize(("d", "match"), [
    ({"type": "int", "low": 1, "high": 10, "step": 4}, "not a multiple of step"),
    ({"type": "int", "low": 1, "high": 64, "step": 2, "log": True}, "cannot be combined"),
    ({"type": "int", "low": 1, "high": 9, "step": 0}, "expected a whole number >= 1"),
    ({"type": "float", "low": 0.0, "high": 1.0, "step": 0.3}, "set high to 0.9"),
    ({"type": "int", "low": 1, "high": 9, "step": 2.0}, "step: expected a whole number"),
])
def test_bad_steps_are_refused(d: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Space.from_dict({"p": d})


def test_definition_errors_are_setting_errors_with_a_path() -> None:
    """Issue 19: one structured error, a ValueError whose path is the spec file's."""
    import pickle

    from deploytune.setting_error import SettingError, format_path

    with pytest.raises(SettingError) as info:
        Space.from_dict({"bs": {"type": "int", "low": "1", "high": 8}})
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == ("space", "bs", "low") and format_path(err.path) == "space.bs.low"
    assert err.message.startswith("expected a whole number") and "'bs'" not in err.message
    assert str(err) == f"parameter 'bs', low: {err.message}"
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.message, str(back)) == (err.path, err.message, str(err))
    with pytest.raises(SettingError) as info:
        Space.from_dict(EXAMPLE, forbidden=[{"backend": ["eager"]}, {"backnd": ["x"]}])
    assert info.value.path == ("forbidden", 1, "backnd")
    assert str(info.value).startswith("forbidden combination #1: unknown parameter 'backnd' "
                                      "(did you mean 'backend'?)")


def test_dict_keys_are_the_fields_of_the_parameter_classes() -> None:
    from deploytune.parameters import dict_keys

    assert dict_keys(Categorical) == ("type", "choices", "when", "memory")
    assert dict_keys(Int) == dict_keys(Float) == ("type", "low", "high", "log", "step", "when",
                                                  "memory")


def test_space_neighbor_is_the_moves_module_neighbor(plain_space: Space) -> None:
    """Issue 19: one module of moves; ``Space.neighbor`` only delegates to it."""
    from deploytune.moves import neighbor

    for seed in range(50):
        c = plain_space.sample(np.random.default_rng(seed))
        a = plain_space.neighbor(c, np.random.default_rng(seed), 0.5, 0.3)
        b = neighbor(plain_space, c, np.random.default_rng(seed), 0.5, 0.3)
        assert a == b
