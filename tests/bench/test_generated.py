"""Tests of the generated DeployBench family (deploytune.bench.generated)."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import numpy as np
import pytest

import deploytune
from deploytune.bench.generated import (
    DEV_INSTANCES,
    TEST_INSTANCES,
    GeneratedInstance,
    build_instance,
    generate,
)
from deploytune.bench.registry import ALIASES, expand_problem_names, get_problem, problem_names
from deploytune.outcome import CrashKind, Status, crash_kind_of, judge
from deploytune.space import Categorical, Float, Int

ALL = (*DEV_INSTANCES, *TEST_INSTANCES)


@functools.cache
def _instance(i: int) -> GeneratedInstance:
    return build_instance(i)


@functools.cache
def _random_outcomes(i: int, n: int = 500) -> tuple[Counter[str], int]:
    """Crash kinds and the feasible count of ``n`` noisy evaluations of random configs."""
    gen = _instance(i)
    problem = gen.problem()
    rng = np.random.default_rng(12345)
    kinds: Counter[str] = Counter()
    feasible = 0
    for _ in range(n):
        config = gen.space.sample(rng)
        try:
            metrics = problem.simulate(config, rng)
        except Exception as exc:
            kinds[crash_kind_of(exc).value] += 1
            continue
        outcome = judge(metrics, problem.objective, problem.constraints)
        feasible += outcome.status is Status.FEASIBLE
    return kinds, feasible


def test_determinism() -> None:
    for i in (0, 7, 1003):
        a, b = generate(i), generate(i)
        assert a.space.to_dict() == b.space.to_dict()
        assert [str(c) for c in a.constraints] == [str(c) for c in b.constraints]
        assert (a.optimum, a.reference, a.description) == (b.optimum, b.reference, b.description)
        rng = np.random.default_rng(3)
        for _ in range(30):
            config = a.space.sample(rng)
            results: list[object] = []
            for problem in (a, b):
                try:
                    results.append(problem.simulate(dict(config), np.random.default_rng(99)))
                except Exception as exc:
                    results.append(f"crash: {exc}")
            assert results[0] == results[1]
    assert generate(0).space.to_dict() != generate(1).space.to_dict()


def test_variety_across_the_splits() -> None:
    sizes = [len(_instance(i).space) for i in ALL]
    assert min(sizes) <= 3 and max(sizes) >= 12
    assert all(3 <= s <= 14 for s in sizes)
    params = [p for i in ALL for p in _instance(i).space]
    assert any(isinstance(p, Categorical) and p.is_ordered for p in params)
    assert any(isinstance(p, Categorical) and not p.is_ordered for p in params)
    assert any(isinstance(p, Int) for p in params) and any(isinstance(p, Float) for p in params)
    assert any(getattr(p, "log", False) for p in params)
    assert any(p.when for p in params)
    assert {_instance(i).direction for i in ALL} == {"maximize", "minimize"}
    assert {len(_instance(i).constraints) for i in ALL} == {1, 2, 3}


@pytest.mark.parametrize("i", ALL)
def test_feasible_share_of_random_configurations(i: int) -> None:
    gen = _instance(i)
    assert 0.005 <= gen.feasible_share <= 0.25  # placement sample, noise-free
    _, feasible = _random_outcomes(i)
    assert 0.005 <= feasible / 500 <= 0.25, (gen.name, feasible)


def test_crash_kinds_occur() -> None:
    seen: Counter[str] = Counter()
    for i in ALL:
        kinds, _ = _random_outcomes(i)
        seen.update(k for k in kinds)
        assert sum(kinds.values()) <= 0.7 * 500  # the crash cap (60 % of the placement sample)
    for kind in (CrashKind.INVALID_CONFIG, CrashKind.OOM):
        assert seen[kind.value] >= 5, seen
    assert seen[CrashKind.RUNTIME_ERROR.value] + seen[CrashKind.TIMEOUT.value] >= 5, seen


def test_memory_declarations_are_true() -> None:
    checked = 0
    for i in ALL:
        gen = _instance(i)
        declared = [p for p in gen.space if p.memory]
        rng = np.random.default_rng(i)
        for p in declared:
            for _ in range(15):
                config = gen.space.sample(rng)
                if p.name not in config:
                    continue
                values = _grid(p)
                mems = []
                for v in values:
                    config[p.name] = v
                    mems.append(gen.memory(config))
                diffs = np.diff(mems)
                if p.memory == "increasing":
                    assert (diffs >= -1e-9 * np.abs(mems[:-1])).all(), (gen.name, p.name)
                else:
                    assert (diffs <= 1e-9 * np.abs(mems[:-1])).all(), (gen.name, p.name)
                checked += 1
                # OOM is memory-monotone too: above the device, a larger value stays OOM
                over = [m > gen.device_memory_mb for m in mems]
                if p.memory == "increasing":
                    assert over == sorted(over), (gen.name, p.name)
                else:
                    assert over == sorted(over, reverse=True), (gen.name, p.name)
    assert checked > 100


def _grid(p: object) -> list[Any]:
    if isinstance(p, Categorical):
        return sorted(p.choices)
    if isinstance(p, Int):
        return sorted({int(v) for v in np.linspace(p.low, p.high, 12)})
    assert isinstance(p, Float)
    if p.log:
        return list(np.geomspace(p.low, p.high, 12))
    return list(np.linspace(p.low, p.high, 12))


def test_optimum_reference_and_costs() -> None:
    for i in ALL:
        gen = _instance(i)
        sign = 1 if gen.direction == "maximize" else -1
        assert sign * (gen.optimum - gen.reference) > 0
        problem = gen.problem()
        assert problem.regret(gen.reference) == pytest.approx(1.0)
        assert problem.regret(gen.optimum) == 0.0
        full = gen.cost.feasible_s
        ratios = [v / full for k, v in gen.cost.crash_s.items() if k != "transient"]
        assert all(0.1 - 1e-6 <= r <= 10 + 1e-6 for r in ratios)


def test_splits_are_disjoint_and_registered() -> None:
    assert not set(DEV_INSTANCES) & set(TEST_INSTANCES)
    dev, test = expand_problem_names(["gen-dev"]), expand_problem_names(["gen-test"])
    assert dev == [f"gen-dev-{k:02d}" for k in range(20)]
    assert test == [f"gen-test-{k:02d}" for k in range(20)]
    assert ALIASES["gen-dev"] == tuple(dev)
    assert set(dev + test) <= set(problem_names())
    assert not set(dev + test) & set(expand_problem_names(["all"]))
    assert get_problem("gen-test-03").name == "gen-test-03"
    assert get_problem("gen-dev-05").space == _instance(5).space


def test_short_optimize_runs_complete() -> None:
    for name in ("gen-dev-00", "gen-test-01"):
        problem = get_problem(name)
        result = deploytune.optimize(
            problem.sim_evaluator(0), problem.space, problem.objective.metric,
            problem.objective.direction, [str(c) for c in problem.constraints], budget=12,
            sampler="random", seed=0)
        assert len(result.trials) == 12
