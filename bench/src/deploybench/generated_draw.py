"""Drawing generated instances (:mod:`deploybench.generated`): the seeds and names of the two
splits, the parameters and their effects, the crash rules, the metric scales and costs, and the
noisy variant's region; :func:`build_instance` then places them
(:mod:`deploybench.generated_placement`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from deploybench.generated_model import (
    Condition,
    CrashRule,
    GeneratedInstance,
    Knob,
    NoisyRegion,
    significant,
)
from deploybench.generated_placement import estimate_optimum, place
from deploybench.problem import CostModel
from deploytune.outcome import CrashKind
from deploytune.space import Categorical, Float, Int, Param, Space

__all__ = [
    "DEV_INSTANCES",
    "TEST_INSTANCES",
    "build_instance",
    "build_noisy_instance",
    "instance_name",
    "noisy_instance_name",
]

DEV_INSTANCES: tuple[int, ...] = tuple(range(20))
"""Instances of the development set (``gen-dev-00`` .. ``gen-dev-19``): tune settings here."""

TEST_INSTANCES: tuple[int, ...] = tuple(range(1000, 1020))
"""Instances of the test set (``gen-test-00`` .. ``gen-test-19``): report here, never tune."""

_SEED = 17  # the issue that asked for the family
_LETTERS = "abcdefgh"


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def instance_name(instance: int) -> str:
    """Registry name of ``instance``: ``gen-dev-NN``, ``gen-test-NN`` or ``gen-<instance>``."""
    if instance in DEV_INSTANCES:
        return f"gen-dev-{DEV_INSTANCES.index(instance):02d}"
    if instance in TEST_INSTANCES:
        return f"gen-test-{TEST_INSTANCES.index(instance):02d}"
    return f"gen-{instance}"


def noisy_instance_name(instance: int) -> str:
    """Registry name of the noisy variant: ``gen-noisy-dev-NN``, ``gen-noisy-test-NN`` or
    ``gen-noisy-<instance>``."""
    return "gen-noisy-" + instance_name(instance)[len("gen-"):]


# ------------------------------------------------------------------------------- parameters
def _draw_params(rng: np.random.Generator) -> list[Knob]:
    """The parameters of an instance and their effects on the metrics."""
    n = int(rng.integers(3, 15))
    n_u = min(n - 1, int(rng.integers(0, 4)))
    p_cond = float(rng.uniform(0.0, 0.5))
    p_mem = float(rng.uniform(0.2, 0.6))
    rho = float(rng.uniform(0.0, 1.0))
    knobs: list[Knob] = []
    unordered: list[Knob] = []
    for i in range(n):
        when = _draw_condition(rng, unordered, p_cond)
        if i < n_u:
            knob = _draw_unordered(rng, i, when)
            unordered.append(knob)
        else:
            knob = _draw_ordered(rng, i, when, p_mem, rho)
        knobs.append(knob)
    ordered = [k for k in knobs if k.kind != "unordered"]
    _force_memory_driver(rng, ordered)
    # quality always has a continuous part (else a quality floor could not be placed)
    if ordered and not any(k.quality for k in ordered):
        forced = ordered[int(rng.integers(len(ordered)))]
        forced.quality = float(rng.uniform(0.02, 0.2))
        forced.speed_a += float(rng.uniform(0.3, 1.0))
    return knobs


def _draw_condition(rng: np.random.Generator, unordered: list[Knob],
                    p_cond: float) -> dict[str, tuple[Any, ...]]:
    """With probability ``p_cond`` (given an earlier unordered categorical), the condition of
    a conditional parameter: a random earlier categorical takes one of some of its choices."""
    when: dict[str, tuple[Any, ...]] = {}
    if unordered and rng.random() < p_cond:
        parent = unordered[int(rng.integers(len(unordered)))]
        assert isinstance(parent.param, Categorical)
        choices = list(parent.param.choices)
        size = int(rng.integers(1, len(choices)))
        picked = sorted(rng.choice(len(choices), size=size, replace=False).tolist())
        when = {parent.name: tuple(choices[j] for j in picked)}
    return when


def _draw_unordered(rng: np.random.Generator, i: int, when: dict[str, tuple[Any, ...]]) -> Knob:
    """An unordered categorical ``cat<i>`` with its per-choice effects."""
    k = int(rng.integers(2, 6))
    choices_u = tuple(_LETTERS[:k])
    name = f"cat{i}"
    knob = Knob(name, "unordered", Categorical(name, when, choices=choices_u))
    for c in choices_u:
        knob.speed_by[c] = float(rng.normal(0.0, 0.4))
        knob.latency_by[c] = float(rng.normal(0.0, 0.3))
        knob.memory_by[c] = float(rng.normal(0.0, 0.4))
        knob.quality_by[c] = float(rng.uniform(0.0, 0.08))
    return knob


def _draw_ordered(rng: np.random.Generator, i: int, when: dict[str, tuple[Any, ...]],
                  p_mem: float, rho: float) -> Knob:
    """An ordered parameter: whether it drives memory, its type, then its effects."""
    driver = rng.random() < p_mem
    mem_dir = (1 if rng.random() < 0.75 else -1) if driver else 0
    declare = driver and rng.random() < 0.85
    memory = ("increasing" if mem_dir > 0 else "decreasing") if declare else None
    knob = _draw_ordered_type(rng, i, when, memory)
    knob.mem_dir = mem_dir
    if mem_dir:
        knob.mem_rate = _loguniform(rng, 1.0, 30.0)
        knob.mem_exp = float(rng.uniform(0.3, 1.5))
        knob.speed_a = float(rng.uniform(0.3, 1.5)) if mem_dir > 0 else \
            -float(rng.uniform(0.1, 1.0))
        knob.latency = mem_dir * float(rng.uniform(0.2, 1.5))
    else:
        knob.speed_a = float(rng.normal(0.0, 0.7))
        knob.latency = -rho * knob.speed_a + float(rng.normal(0.0, 0.3))
    if rng.random() < 0.5:
        knob.speed_b = float(rng.uniform(0.0, 2.0))
    knob.speed_c = float(rng.uniform(0.0, 1.0))
    if rng.random() < 0.3:
        knob.quality = float(rng.uniform(0.02, 0.2))
        knob.speed_a += float(rng.uniform(0.3, 1.0))
    return knob


def _draw_ordered_type(rng: np.random.Generator, i: int, when: dict[str, tuple[Any, ...]],
                       memory: str | None) -> Knob:
    """An ordered categorical ``ord<i>`` (odds 1/4), else an ``int<i>`` or a ``real<i>``."""
    r = rng.random()
    if r < 0.25:
        k = int(rng.integers(3, 7))
        if rng.random() < 0.6:
            start = int(2 ** int(rng.integers(0, 4)))
            choices_o: tuple[Any, ...] = tuple(start * 2**j for j in range(k))
        else:
            lo = round(float(rng.uniform(0.0, 1.0)), 2)
            step = round(float(rng.uniform(0.05, 0.5)), 2)
            choices_o = tuple(round(lo + step * j, 2) for j in range(k))
        name = f"ord{i}"
        return Knob(name, "ordered", Categorical(name, when, choices=choices_o, memory=memory),
                    index={c: j for j, c in enumerate(choices_o)})
    if r < 0.625:
        log = rng.random() < 0.5
        if log:
            low_i = int(2 ** int(rng.integers(0, 3)))
            high_i = low_i * int(2 ** int(rng.integers(3, 9)))
        else:
            low_i = int(rng.integers(0, 4))
            high_i = low_i + int(rng.integers(3, 64))
        name = f"int{i}"
        return Knob(name, "int", Int(name, when, low=low_i, high=high_i, log=log, memory=memory),
                    low=low_i, high=high_i, log=log)
    log = rng.random() < 0.4
    if log:
        low_f = significant(10 ** rng.uniform(-4, -1))
        high_f = significant(low_f * 10 ** rng.uniform(1, 3))
    else:
        low_f = round(float(rng.uniform(0.0, 1.0)), 3)
        high_f = round(low_f + float(rng.uniform(0.5, 10.0)), 3)
    name = f"real{i}"
    return Knob(name, "float", Float(name, when, low=low_f, high=high_f, log=log, memory=memory),
                low=low_f, high=high_f, log=log)


def _force_memory_driver(rng: np.random.Generator, ordered: list[Knob]) -> None:
    """At least one memory driver when there are ordered parameters."""
    if ordered and not any(k.mem_dir for k in ordered):
        forced = ordered[int(rng.integers(len(ordered)))]
        forced.mem_dir = 1
        forced.mem_rate = _loguniform(rng, 1.0, 30.0)
        forced.mem_exp = float(rng.uniform(0.3, 1.5))
        forced.latency = abs(forced.latency) + 0.2
        forced.speed_a = abs(forced.speed_a) + 0.3
        if rng.random() < 0.85:
            forced.param = _with_memory(forced.param, "increasing")


def _with_memory(p: Param, memory: str) -> Param:
    if isinstance(p, Categorical):
        return Categorical(p.name, p.when, choices=p.choices, memory=memory)
    if isinstance(p, Int):
        return Int(p.name, p.when, low=p.low, high=p.high, log=p.log, memory=memory)
    assert isinstance(p, Float)
    return Float(p.name, p.when, low=p.low, high=p.high, log=p.log, memory=memory)


# --------------------------------------------------------------------------- rules and scales
def _draw_rules(rng: np.random.Generator, knobs: list[Knob]) -> list[CrashRule]:
    rules: list[CrashRule] = []
    for _ in range(int(rng.integers(1, 5))):
        m = min(len(knobs), int(rng.integers(1, 4)))
        picked = [knobs[j] for j in rng.choice(len(knobs), size=m, replace=False).tolist()]
        n_ordered = sum(1 for k in picked if k.kind != "unordered")
        share = float(rng.uniform(0.02, 0.12)) ** (1.0 / max(1, n_ordered))
        conditions = []
        for k in picked:
            if k.kind == "unordered":
                assert isinstance(k.param, Categorical)
                choice = k.param.choices[int(rng.integers(len(k.param.choices)))]
                conditions.append(Condition(k.name, choice=choice))
            elif rng.random() < 0.5:
                conditions.append(Condition(k.name, above=round(1.0 - share, 4)))
            else:
                conditions.append(Condition(k.name, below=round(share, 4)))
        if n_ordered == 0 or rng.random() < 0.3:
            kind = CrashKind.INVALID_CONFIG
        else:
            kind = CrashKind.RUNTIME_ERROR if rng.random() < 0.5 else CrashKind.TIMEOUT
        rules.append(CrashRule(tuple(sorted(conditions, key=lambda c: c.name)), kind))
    return rules


def _draw_cost(rng: np.random.Generator) -> CostModel:
    """The cost model: a full run log-uniform in [30, 300] s, crashes a multiple of it."""
    full = _loguniform(rng, 30.0, 300.0)
    return CostModel(
        feasible_s=significant(full), infeasible_s=significant(full),
        aborted_s=significant(full / 4),
        crash_s={CrashKind.INVALID_CONFIG.value: significant(full * _loguniform(rng, 0.1, 1.0)),
                 CrashKind.OOM.value: significant(full * _loguniform(rng, 0.1, 3.0)),
                 CrashKind.RUNTIME_ERROR.value: significant(full * _loguniform(rng, 0.1, 3.0)),
                 CrashKind.TIMEOUT.value: significant(full * _loguniform(rng, 1.0, 10.0)),
                 CrashKind.TRANSIENT.value: significant(full * 0.1)})


def build_instance(instance: int) -> GeneratedInstance:
    """Draw instance ``instance`` of the family (see :mod:`deploybench.generated`).

    Args:
        instance: A non-negative integer seed.

    Returns:
        The instance, with limits, optimum and reference placed.

    Raises:
        ValueError: For a negative instance.
    """
    if instance < 0:
        raise ValueError(f"instance must be >= 0, got {instance}")
    rng = np.random.default_rng([_SEED, instance])
    knobs = _draw_params(rng)
    space = Space([k.param for k in knobs])
    rules = _draw_rules(rng, knobs)
    maximize = rng.random() < 0.5
    base = {"q0": float(rng.uniform(0.8, 0.98)),
            "l0": _loguniform(rng, 5.0, 500.0),
            "m0": _loguniform(rng, 200.0, 20000.0),
            "scale": _loguniform(rng, 10.0, 1000.0) if maximize else
            _loguniform(rng, 1.0, 100.0)}
    ordered = [k.name for k in knobs if k.kind != "unordered"]
    pairs: list[tuple[str, str, float]] = []
    if len(ordered) >= 2:
        for _ in range(int(rng.integers(0, 3))):
            a, b = rng.choice(len(ordered), size=2, replace=False).tolist()
            pairs.append((ordered[a], ordered[b], float(rng.normal(0.0, 1.5))))
    noise = float(rng.uniform(0.0, 0.1))
    cost = _draw_cost(rng)
    oom_share = float(rng.uniform(0.03, 0.25)) if rng.random() >= 0.15 else 0.0
    n_con = int(rng.integers(1, 4))
    kinds = sorted(rng.choice(3, size=n_con, replace=False).tolist())
    weights = rng.dirichlet(np.ones(n_con))
    target = float(rng.uniform(0.01, 0.20))
    gen = GeneratedInstance(
        instance, instance_name(instance), space,
        "throughput" if maximize else "time_per_item_ms",
        "maximize" if maximize else "minimize", knobs, base, pairs, rules, noise, cost)
    starts = place(gen, np.random.default_rng([_SEED, instance, 1]), oom_share, kinds,
                   [float(w) for w in weights], target)
    estimate_optimum(gen, np.random.default_rng([_SEED, instance, 2]), starts)
    return gen


def build_noisy_instance(instance: int) -> GeneratedInstance:
    """The noisy variant of instance ``instance`` (see "Noisy variant" in
    :mod:`deploybench.generated`): the base instance with a base sigma and a
    :class:`~deploybench.generated_model.NoisyRegion` drawn from a separate generator.

    Args:
        instance: A non-negative integer seed.

    Returns:
        The instance, named ``gen-noisy-...``; everything but :attr:`~GeneratedInstance.name`,
        :attr:`~GeneratedInstance.noise` and :attr:`~GeneratedInstance.noisy_region` is the
        base instance's.

    Raises:
        ValueError: For a negative instance.
    """
    base = build_instance(instance)
    rng = np.random.default_rng([_SEED, instance, 3])
    sigma = float(rng.uniform(0.02, 0.08))
    factor = float(rng.uniform(2.0, 5.0))
    unordered = [k for k in base.knobs if k.kind == "unordered"]
    if unordered:
        top = [k for k in unordered if not k.param.when] or unordered
        knob = top[int(rng.integers(len(top)))]
        assert isinstance(knob.param, Categorical)
        choice = knob.param.choices[int(rng.integers(len(knob.param.choices)))]
        region = NoisyRegion(knob.name, factor, choice)
    else:
        knob = base.knobs[int(rng.integers(len(base.knobs)))]
        region = NoisyRegion(knob.name, factor)
    return dataclasses.replace(base, name=noisy_instance_name(instance), noise=sigma,
                               noisy_region=region)
