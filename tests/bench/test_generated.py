"""Tests of the generated DeployBench family (deploybench.generated)."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import numpy as np
import pytest

import deploytune
from deploybench.generated import (
    DEV_INSTANCES,
    TEST_INSTANCES,
    GeneratedInstance,
    NoisyRegion,
    build_instance,
    build_noisy_instance,
    generate,
    generate_noisy,
    generated_noisy_problems,
)
from deploybench.registry import ALIASES, expand_problem_names, get_problem, problem_names
from deploybench.runner import expand_problems
from deploytune.outcome import CrashKind, Status, crash_kind_of, judge
from deploytune.space import Categorical, Config, Float, Int

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


@pytest.mark.slow
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


@pytest.mark.slow
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
@pytest.mark.slow
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
    for name in ("gen-dev-00", "gen-test-01", "gen-noisy-dev-04"):
        problem = get_problem(name)
        result = deploytune.optimize(
            problem.sim_evaluator(0), problem.space, problem.objective.metric,
            problem.objective.direction, [str(c) for c in problem.constraints], budget=12,
            sampler="random", seed=0)
        assert len(result.trials) == 12


# ------------------------------------------------------------------ noisy variant (issue 18)
# Values of the base instances measured before the noisy variant existed: the variant must
# leave them bit-identical (noise, optimum, limits and one measured draw).
_BASE_GOLDEN: dict[int, tuple[float, float, list[str], Config, dict[str, float]]] = {
    0: (0.014844343447808706, 1948.7612525993702,
        ["latency_ms <= 154.054", "memory_mb <= 197.755"],
        {"cat0": "b", "cat1": "a", "cat2": "a", "int3": 357, "ord4": 8,
         "real5": 0.8802948727631084, "int6": 3, "ord7": 1.07, "int8": 38,
         "real9": 0.28423743543302926, "real10": 1.3902091180121365},
        {"throughput": 515.439551802762, "latency_ms": 66.19382542384882,
         "memory_mb": 189.4906235846656, "quality": 0.839744760918599}),
    4: (0.06733304093320741, 1182.881808824585, ["latency_ms <= 39.4686"],
        {"ord0": 1.25, "ord1": 2, "real2": 0.01569053159608548, "int3": 14, "int4": 49,
         "real5": 0.006797704956357634, "real6": 0.08570747955837779, "ord7": 32, "int8": 3,
         "ord9": 16, "int10": 1, "real11": 1.865197338066348, "real12": 1.7527441635034362},
        {"throughput": 302.3321937414502, "latency_ms": 53.54323534220349,
         "memory_mb": 67.52868233860194, "quality": 0.6739090240688026}),
    1003: (0.06529015721244463, 453.8021571763812, ["quality >= 0.806137"],
           {"cat0": "c", "cat1": "a", "ord2": 0.23},
           {"throughput": 1292.5343105379259, "latency_ms": 19.13479163168891,
            "memory_mb": 10156.855044008116, "quality": 0.7863450563327132}),
}


@functools.cache
def _noisy(i: int) -> GeneratedInstance:
    return build_noisy_instance(i)


@pytest.mark.parametrize("i", sorted(_BASE_GOLDEN))
@pytest.mark.slow
def test_noisy_variant_leaves_the_base_instance_unchanged(i: int) -> None:
    noise, optimum, constraints, config, draw = _BASE_GOLDEN[i]
    base, noisy = _instance(i), _noisy(i)
    assert (base.noise, base.optimum, base.constraints) == (noise, optimum, constraints)
    assert base.noisy_region is None
    assert base.simulate(dict(config), np.random.default_rng(7)) == draw
    assert generate(i).simulate(dict(config), np.random.default_rng(7)) == draw
    # the variant shares every noise-free quantity with its base
    assert noisy.space.to_dict() == base.space.to_dict()
    assert noisy.space == base.space
    assert (noisy.constraints, noisy.optimum, noisy.reference, noisy.device_memory_mb,
            noisy.cost, noisy.direction, noisy.objective, noisy.feasible_share,
            noisy.crash_share, noisy.families, noisy.feasible_families) == (
        base.constraints, base.optimum, base.reference, base.device_memory_mb, base.cost,
        base.direction, base.objective, base.feasible_share, base.crash_share,
        base.families, base.feasible_families)
    assert [r.conditions for r in noisy.rules] == [r.conditions for r in base.rules]
    assert noisy.evaluate_noise_free(config) == base.evaluate_noise_free(config)
    assert noisy.noise != base.noise and noisy.noisy_region is not None
    # building the variant does not disturb the base (nothing shared is mutated)
    assert build_instance(i).simulate(dict(config), np.random.default_rng(7)) == draw


@pytest.mark.slow
def test_noisy_region_draws() -> None:
    kinds = set()
    for i in ALL:
        gen = _noisy(i)
        region = gen.noisy_region
        assert isinstance(region, NoisyRegion)
        assert 0.02 <= gen.noise <= 0.08 and 2.0 <= region.factor <= 5.0
        knob = gen.knobs_by_name[region.param]
        unordered = [k for k in gen.knobs if k.kind == "unordered"]
        if unordered:
            assert knob.kind == "unordered" and not knob.param.when
            assert isinstance(knob.param, Categorical) and region.choice in knob.param.choices
        else:
            assert knob.kind != "unordered" and region.choice is None
        kinds.add(region.choice is None)
        assert f"{gen.noise:.1%}" in gen.description() and region.text() in gen.description()
        rng = np.random.default_rng(i)
        for _ in range(20):
            sigma = gen.noise_of(gen.space.sample(rng))
            assert gen.noise - 1e-12 <= sigma <= gen.noise * region.factor + 1e-12
            assert _instance(i).noise_of(gen.space.sample(rng)) == _instance(i).noise
    assert kinds == {True, False}  # both region kinds occur in the splits


def _pair(gen: GeneratedInstance, rng: np.random.Generator) -> tuple[Config, Config]:
    """A non-crashing configuration in the noisy region and the same one outside it."""
    region = gen.noisy_region
    assert region is not None
    param = gen.knobs_by_name[region.param].param
    if region.choice is not None:
        assert isinstance(param, Categorical)
        inside, outside = region.choice, next(c for c in param.choices if c != region.choice)
    elif isinstance(param, Categorical):
        inside, outside = param.choices[-1], param.choices[0]
    else:
        assert isinstance(param, (Int, Float))
        inside, outside = param.high, param.low
    for _ in range(2000):
        config = gen.space.sample(rng)
        a, b = {**config, region.param: inside}, {**config, region.param: outside}
        if gen.crash(a) is None and gen.crash(b) is None:
            return a, b
    raise AssertionError(f"{gen.name}: no non-crashing pair found")


@pytest.mark.parametrize("i", [0, 3, 4, 1002])  # two unordered regions, two ramps
def test_noisy_region_is_noisier(i: int) -> None:
    gen = _noisy(i)
    region = gen.noisy_region
    assert region is not None and (region.choice is None) == (i in (4, 1002))
    inside, outside = _pair(gen, np.random.default_rng(i))
    assert gen.noise_of(inside) == pytest.approx(gen.noise * region.factor)
    assert gen.noise_of(outside) == pytest.approx(gen.noise)
    problem = gen.problem()

    def log_std(config: Config, seed: int) -> float:
        rng = np.random.default_rng(seed)
        draws = [problem.simulate(dict(config), rng)["latency_ms"] for _ in range(400)]
        return float(np.std(np.log(draws)))

    measured = log_std(inside, 1) / log_std(outside, 2)
    # the expected ratio of the std of log(max(0.05, 1 + sigma z)): f for small sigma, a
    # little more for large sigma (the log stretches the lower tail)
    z = np.random.default_rng(0).standard_normal(200_000)

    def expected(sigma: float) -> float:
        return float(np.std(np.log(np.maximum(0.05, 1.0 + sigma * z))))

    ratio = expected(gen.noise * region.factor) / expected(gen.noise)
    assert ratio == pytest.approx(region.factor, rel=0.1)
    assert measured == pytest.approx(ratio, rel=0.15), (gen.name, measured, region.factor)


def test_noisy_simulate_is_pure_and_deterministic() -> None:
    for i in (0, 4, 1003):
        a, b = generate_noisy(i), generate_noisy(i)
        assert a.name == b.name and a.description == b.description
        assert a.space.to_dict() == b.space.to_dict()
        assert (a.optimum, a.reference) == (b.optimum, b.reference)
        rng = np.random.default_rng(3)
        for _ in range(30):
            config = a.space.sample(rng)
            results: list[object] = []
            for problem in (a, b, a):
                try:
                    results.append(problem.simulate(dict(config), np.random.default_rng(99)))
                except Exception as exc:
                    results.append(f"crash: {exc}")
            assert results[0] == results[1] == results[2]
    assert generate_noisy(0).description != generate_noisy(1).description


def test_noisy_names_and_groups() -> None:
    dev = expand_problem_names(["gen-noisy-dev"])
    test = expand_problem_names(["gen-noisy-test"])
    assert dev == [f"gen-noisy-dev-{k:02d}" for k in range(20)]
    assert test == [f"gen-noisy-test-{k:02d}" for k in range(20)]
    assert ALIASES["gen-noisy-dev"] == tuple(dev) and ALIASES["gen-noisy-test"] == tuple(test)
    assert list(generated_noisy_problems()) == dev + test
    assert set(dev + test) <= set(problem_names())
    assert not set(dev + test) & set(expand_problem_names(["all"]))
    assert not set(dev + test) & set(expand_problem_names(["gen-dev", "gen-test"]))
    assert expand_problems(["gen-noisy-dev"]) == dev  # what `deploytune bench -p` accepts
    problem = get_problem("gen-noisy-test-03")
    assert problem.name == "gen-noisy-test-03"
    assert problem.space == _instance(TEST_INSTANCES[3]).space
    assert problem.optimum == _instance(TEST_INSTANCES[3]).optimum
    assert "noisy variant" in problem.description
    assert generate_noisy(5000).name == "gen-noisy-5000"
    with pytest.raises(ValueError):
        build_noisy_instance(-1)
