"""Tests of ``llm-sim``: crash predicates and messages, optima, references, costs, fidelities."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from typing import Any

import numpy as np
import pytest

import deploytune
from deploybench import llm_sim
from deploybench.llm_sim import (
    INSTANCES,
    OPTIMA,
    OPTIMAL_CONFIGS,
    REFERENCES,
    LLMSimCost,
    fidelity_cost_s,
    grid_optimum,
    llm_space,
    noise_free_stage,
    random_reference,
    runtime_oom_probability,
    simulate_llm,
)
from deploybench.registry import expand_problem_names, get_problem, problem_names
from deploybench.runner import run_one
from deploytune.outcome import (
    CrashKind,
    InvalidConfig,
    Status,
    TransientError,
    crash_kind_of,
    judge,
)
from deploytune.tuner import evaluate_once

NAMES = list(INSTANCES)
B8, B70_2, B70_4 = "llm-sim-8b-24gb", "llm-sim-70b-2xh100", "llm-sim-70b-4xh100"
CRASHES = (InvalidConfig, MemoryError, TransientError, TimeoutError)


def _config(name: str, **changes: Any) -> dict[str, Any]:
    config = {**OPTIMAL_CONFIGS[name], **changes}
    llm_space(name).validate(config)
    return config


# ------------------------------------------------------------------------------------ registry
def test_registry() -> None:
    assert expand_problem_names(["llm-sim"]) == NAMES
    assert set(NAMES) <= set(expand_problem_names(["all"]))
    assert set(NAMES) <= set(problem_names())
    for name in NAMES:
        problem = get_problem(name)
        assert problem.name == name
        assert problem.families == ("tensor_parallel_size", "quantization")
        assert problem.optimum == OPTIMA[name] and problem.reference == REFERENCES[name]
        assert problem.objective.direction == "maximize"
        assert {c.metric for c in problem.constraints} == {"ttft_p95_ms", "tpot_p95_ms"}
        assert "Random sampling" in problem.description
        assert problem.regret(problem.optimum) == 0.0
        assert problem.regret(problem.reference) == pytest.approx(1.0)
        assert isinstance(problem.cost, LLMSimCost)
        problem.space.validate(OPTIMAL_CONFIGS[name])


# ---------------------------------------------------------------------------- crash predicates
STATIC = [
    (B70_4, {"tensor_parallel_size": 3},
     "Total number of attention heads (64) must be divisible by tensor parallel size (3)"),
    (B70_2, {"tensor_parallel_size": 4},
     "please set tensor_parallel_size (4) to less than max local gpu count (2)"),
    (B8, {"enable_chunked_prefill": False, "max_num_batched_tokens": 2048,
          "max_model_len": 8192},
     "max_num_batched_tokens (2048) is smaller than max_model_len (8192)"),
    (B8, {"max_num_batched_tokens": 512, "max_num_seqs": 1024},
     "max_num_batched_tokens (512) must be greater than or equal to max_num_seqs (1024)"),
    (B8, {"quantization": "fp8"},
     "The quantization method fp8 is not supported for the current GPU. Minimum capability: "
     "89. Current capability: 86."),
]
MEMORY = [
    (B8, {"gpu_memory_utilization": 0.98}, "snapshot",
     "on startup is less than desired GPU memory utilization (0.98"),
    (B70_2, {"tensor_parallel_size": 1, "quantization": "none"}, "weight_oom",
     "torch.OutOfMemoryError: CUDA out of memory"),
    (B8, {"tensor_parallel_size": 1, "max_num_batched_tokens": 65536}, "no_cache_blocks",
     "No available memory for the cache blocks. Try increasing `gpu_memory_utilization`"),
    (B8, {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.9, "max_model_len": 131072,
          "max_num_batched_tokens": 2048}, "max_model_len",
     "the estimated maximum model length is"),
    (B8, {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.92, "max_num_seqs": 512},
     "cuda_graph_oom", "capturing CUDA graphs"),
]


@pytest.mark.parametrize(("name", "changes", "fragment"), STATIC)
def test_static_checks(name: str, changes: dict[str, Any], fragment: str) -> None:
    config = _config(name, **changes)
    for seed in range(5):
        with pytest.raises(InvalidConfig) as info:
            simulate_llm(name, config, np.random.default_rng(seed))
        assert fragment in str(info.value)
    for fidelity in llm_sim.FIDELITIES:  # every fidelity runs the static checks
        with pytest.raises(InvalidConfig, match=re.escape(fragment)):
            simulate_llm(name, config, noise=False, fidelity=fidelity)
    assert noise_free_stage(name, config) in llm_sim.STAGES[1:6]
    assert 5.0 <= fidelity_cost_s(name, config) <= 10.0


@pytest.mark.parametrize(("name", "changes", "stage", "fragment"), MEMORY)
def test_memory_crashes(name: str, changes: dict[str, Any], stage: str, fragment: str) -> None:
    config = _config(name, **changes)
    assert noise_free_stage(name, config) == stage
    with pytest.raises(MemoryError, match=re.escape(fragment)):
        simulate_llm(name, config, noise=False)
    for seed in range(5):  # far from the boundary: the noise never saves them
        with pytest.raises((MemoryError, TransientError)) as info:
            simulate_llm(name, config, np.random.default_rng(seed))
        if isinstance(info.value, MemoryError):
            assert fragment in str(info.value)
    problem = get_problem(name)
    outcome = evaluate_once(problem.evaluator(0), config, problem.objective, problem.constraints)
    assert outcome.status is Status.CRASHED and outcome.crash_kind is CrashKind.OOM


def test_max_model_len_message_estimates_the_capacity() -> None:
    config = _config(B8, tensor_parallel_size=1, gpu_memory_utilization=0.9,
                     max_model_len=131072, max_num_batched_tokens=2048)
    with pytest.raises(MemoryError) as info:
        simulate_llm(B8, config, noise=False)
    match = re.search(r"estimated maximum model length is (\d+)\.", str(info.value))
    assert match is not None
    assert "models's max seq len (131072)" in str(info.value)
    # max_model_len does not change the memory: the same server with 32k context boots with
    # exactly that many KV tokens, and 64k (above the estimate) does not
    estimate = int(match.group(1))
    boot = simulate_llm(B8, {**config, "max_model_len": 32768}, noise=False, fidelity="boot")
    assert boot["kv_cache_tokens"] == estimate
    assert 32768 < estimate < 65536 and estimate % 16 == 0
    with pytest.raises(MemoryError, match="estimated maximum model length"):
        simulate_llm(B8, {**config, "max_model_len": 65536}, noise=False)


def test_cuda_graph_oom_is_avoided_by_enforce_eager() -> None:
    config = _config(B8, tensor_parallel_size=1, gpu_memory_utilization=0.92, max_num_seqs=512)
    with pytest.raises(MemoryError, match="CUDA graphs"):
        simulate_llm(B8, config, noise=False)
    eager = {**config, "enforce_eager": True}
    metrics = simulate_llm(B8, eager, noise=False)
    assert metrics["kv_cache_tokens"] > 0
    # fewer captured sizes need less graph memory: max_num_seqs 16 boots with graphs
    assert noise_free_stage(B8, {**config, "max_num_seqs": 16}) == "ok"
    # with graphs that fit (lower memory fraction), eager steps are slower: kernel launches
    graphs = {**config, "gpu_memory_utilization": 0.86}
    assert (simulate_llm(B8, {**graphs, "enforce_eager": True}, noise=False)["tpot_p95_ms"]
            > simulate_llm(B8, graphs, noise=False)["tpot_p95_ms"])


def test_runtime_oom_probability_rises_with_utilization() -> None:
    base = _config(B8, tensor_parallel_size=1, max_num_seqs=512, enforce_eager=True)
    utils = [0.86, 0.88, 0.90, 0.92, 0.94, 0.96]
    probs = [runtime_oom_probability(B8, {**base, "gpu_memory_utilization": u}) for u in utils]
    assert all(a < b for a, b in itertools.pairwise(probs))
    assert probs[0] < 1e-6 and probs[-1] > 0.9
    assert noise_free_stage(B8, {**base, "gpu_memory_utilization": 0.96}) == "runtime_oom"
    assert noise_free_stage(B8, {**base, "gpu_memory_utilization": 0.94}) == "ok"

    def crash_rate(u: float) -> float:
        config = {**base, "gpu_memory_utilization": u}
        crashed = 0
        for seed in range(300):
            try:
                simulate_llm(B8, config, np.random.default_rng(seed))
            except MemoryError as exc:
                assert "during the load test" in str(exc)
                crashed += 1
            except TransientError:
                pass
        return crashed / 300

    low, mid, high = crash_rate(0.90), crash_rate(0.94), crash_rate(0.96)
    assert low < 0.02 < mid < high and 0.05 < mid < 0.5 and high > 0.8


def test_leak_is_transient_and_rare() -> None:
    config = _config(B8, gpu_memory_utilization=0.96)
    assert noise_free_stage(B8, config) in ("ok", "runtime_oom")
    kinds: Counter[str] = Counter()
    for seed in range(2000):
        try:
            simulate_llm(B8, config, np.random.default_rng(seed))
            kinds["ok"] += 1
        except CRASHES as exc:
            kinds[crash_kind_of(exc).value] += 1
            if isinstance(exc, TransientError):
                assert "on startup is less than desired GPU memory utilization" in str(exc)
    assert 0 < kinds["transient"] <= 2000 * llm_sim.LEAK_PROBABILITY * 1.6
    low = _config(B8, gpu_memory_utilization=0.80)  # a 10% leak still leaves enough
    for seed in range(300):
        simulate_llm(B8, low, np.random.default_rng(seed))


# ------------------------------------------------------------------------------------- optima
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_shipped_optimum_is_the_enumerated_best(name: str) -> None:
    value, config = grid_optimum(name)
    assert value == pytest.approx(OPTIMA[name], rel=1e-12)
    assert config == OPTIMAL_CONFIGS[name]
    metrics = simulate_llm(name, config, noise=False)  # the scalar path agrees
    problem = get_problem(name)
    outcome = judge(metrics, problem.objective, problem.constraints)
    assert outcome.status is Status.FEASIBLE
    assert outcome.value == pytest.approx(OPTIMA[name], rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_shipped_feasible_families_are_the_enumerated_ones(name: str) -> None:
    from deploybench.llm_sim import FEASIBLE_FAMILIES, feasible_family_values

    assert feasible_family_values(name) == FEASIBLE_FAMILIES[name]
    problem = get_problem(name)
    assert problem.feasible_families == FEASIBLE_FAMILIES[name]
    # the optimum's own family values are among them
    for fam, values in FEASIBLE_FAMILIES[name].items():
        assert OPTIMAL_CONFIGS[name][fam] in values


@pytest.mark.parametrize("name", NAMES)
def test_no_random_config_beats_the_optimum(name: str) -> None:
    problem = get_problem(name)
    for i in range(300):
        config = problem.space.sample(np.random.default_rng(7_000 + i))
        try:
            metrics = simulate_llm(name, config, noise=False)
        except CRASHES:
            continue
        outcome = judge(metrics, problem.objective, problem.constraints)
        if outcome.status is Status.FEASIBLE:
            assert outcome.value is not None and outcome.value <= OPTIMA[name] * (1 + 1e-9)


@pytest.mark.slow
def test_enumeration_matches_the_scalar_simulator() -> None:
    configs, arrays = llm_sim.enumerate_metrics(B70_4)
    assert len(configs) == 4 * 10 * 6 * 8 * 7 * 2 * 2 * 2 * 3 * 2
    for i in range(0, len(configs), 4049):
        stage = llm_sim.STAGES[int(arrays["stage"][i])]
        assert noise_free_stage(B70_4, configs[i]) == stage
        if stage == "ok":
            metrics = simulate_llm(B70_4, configs[i], noise=False)
            for key in ("goodput", "ttft_p95_ms", "tpot_p95_ms", "kv_cache_tokens", "eval_s"):
                assert metrics[key] == pytest.approx(float(arrays[key][i]), rel=1e-9)


@pytest.mark.slow
def test_reference_is_the_random_median() -> None:
    assert random_reference(B8) == pytest.approx(REFERENCES[B8], rel=1e-12)  # n = 20,000
    for name in NAMES[1:]:  # the others roughly, from fewer samples
        assert random_reference(name, n=2000) == pytest.approx(REFERENCES[name], rel=0.15)


RATE_BOUNDS = {  # name: ((crash lo, hi), (feasible lo, hi)) for 1,000 samples
    B8: ((0.64, 0.75), (0.05, 0.115)),
    B70_2: ((0.72, 0.82), (0.02, 0.07)),
    B70_4: ((0.62, 0.72), (0.015, 0.06)),
    "llm-sim-70b-8xh100": ((0.46, 0.57), (0.04, 0.10)),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_random_sampling_rates(name: str) -> None:
    problem = get_problem(name)
    counts: Counter[str] = Counter()
    n = 1000
    for i in range(n):
        config = problem.space.sample(np.random.default_rng(i))
        try:
            metrics = problem.simulate(config, np.random.default_rng(10**6 + i))
        except CRASHES:
            counts["crashed"] += 1
            continue
        assert all(math.isfinite(v) for v in metrics.values())
        counts[judge(metrics, problem.objective, problem.constraints).status.value] += 1
    (c_lo, c_hi), (f_lo, f_hi) = RATE_BOUNDS[name]
    assert c_lo <= counts["crashed"] / n <= c_hi
    assert f_lo <= counts["feasible"] / n <= f_hi


# -------------------------------------------------------------------------------------- costs
def test_costs_depend_on_the_outcome_and_the_config() -> None:
    cost = get_problem(B70_2).cost
    static = _config(B70_2, tensor_parallel_size=4)
    weight_oom = _config(B70_2, tensor_parallel_size=1, quantization="none")
    ok = OPTIMAL_CONFIGS[B70_2]
    s_static = cost.seconds(static, Status.CRASHED, CrashKind.INVALID_CONFIG)
    s_weights = cost.seconds(weight_oom, Status.CRASHED, CrashKind.OOM)
    s_ok = cost.seconds(ok, Status.FEASIBLE, None)
    s_runtime = cost.seconds(_config(B70_2, gpu_memory_utilization=0.98), Status.CRASHED,
                             CrashKind.OOM)
    assert 5 <= s_static <= 10 < 60 < s_weights < s_ok
    assert s_ok > 180  # boot plus a full load test: minutes
    assert cost.seconds(ok, Status.INFEASIBLE, None) == s_ok
    boot = simulate_llm(B70_2, ok, noise=False, fidelity="boot")["boot_s"]
    assert boot < s_runtime < s_ok
    assert boot < cost.seconds(ok, Status.ABORTED, None) < s_ok
    # deterministic, and bigger weights take longer to load
    assert cost.seconds(ok, Status.FEASIBLE, None) == s_ok
    b8 = get_problem(B8).cost
    assert b8.seconds(OPTIMAL_CONFIGS[B8], Status.FEASIBLE, None) < s_ok
    for kind in CrashKind:
        assert cost.seconds(ok, Status.CRASHED, kind) > 0
    # a startup OOM costs the stage it dies in
    stages = [fidelity_cost_s(B8, _config(B8, **ch)) for ch in (
        {"gpu_memory_utilization": 0.98},
        {"tensor_parallel_size": 1, "max_num_batched_tokens": 65536},
        {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.92, "max_num_seqs": 512})]
    assert stages == sorted(stages) and len(set(stages)) == 3


# ---------------------------------------------------------------------------------- fidelities
def test_fidelities() -> None:
    config = OPTIMAL_CONFIGS[B70_4]
    boot = simulate_llm(B70_4, config, np.random.default_rng(0), fidelity="boot")
    assert boot["kv_cache_tokens"] > 0 and boot["max_concurrency"] > 0
    assert "ttft_p95_ms" not in boot and "goodput" not in boot
    assert boot["eval_s"] == boot["boot_s"]
    full = simulate_llm(B70_4, config, noise=False)
    a1 = simulate_llm(B70_4, config, np.random.default_rng(1), fidelity="analytic")
    a2 = simulate_llm(B70_4, config, np.random.default_rng(2), fidelity="analytic")
    assert a1 == a2  # deterministic
    assert a1["tpot_p95_ms"] != pytest.approx(full["tpot_p95_ms"], rel=0.05)  # biased
    assert a1["eval_s"] < 1.0
    # analytic has no CUDA-graph or runtime OOM
    graph = _config(B8, tensor_parallel_size=1, gpu_memory_utilization=0.92, max_num_seqs=512)
    assert simulate_llm(B8, graph, fidelity="analytic")["kv_cache_tokens"] > 0

    def spread(fidelity: str) -> float:
        vals = [simulate_llm(B70_4, config, np.random.default_rng(s), fidelity=fidelity)[
            "tpot_p95_ms"] for s in range(200)]
        return float(np.std(vals) / np.mean(vals))

    assert spread("short") > 1.8 * spread("full") > 0
    costs = [fidelity_cost_s(B70_4, config, f) for f in llm_sim.FIDELITIES]
    assert costs == sorted(costs) and len(set(costs)) == 4
    assert fidelity_cost_s(B70_4, config, "full") == get_problem(B70_4).cost.seconds(
        config, Status.FEASIBLE, None)
    with pytest.raises(ValueError, match="unknown fidelity"):
        simulate_llm(B70_4, config, fidelity="sim")


def test_noise() -> None:
    problem = get_problem(B8)
    config = OPTIMAL_CONFIGS[B8]
    a, b = problem.evaluator(3), problem.evaluator(3)
    assert a(config) == b(config)
    values = {simulate_llm(B8, config, np.random.default_rng(s))["output_tokens_per_s"]
              for s in range(20)}
    assert len(values) > 10
    assert simulate_llm(B8, config, noise=False) == simulate_llm(B8, config, noise=False)


# ----------------------------------------------------------------------------------- optimize
def test_a_short_tuning_run() -> None:
    problem = get_problem(B8)
    result = deploytune.optimize(problem.evaluator(0), problem.space,
                                 objective=problem.objective.metric,
                                 direction=problem.objective.direction,
                                 constraints=[str(c) for c in problem.constraints],
                                 budget=20, sampler="random", seed=0)
    assert len(result.trials) == 20
    assert any(t.status is Status.CRASHED for t in result.trials)
    for t in result.trials:
        problem.space.validate(t.config)
    row = run_one(B70_4, "random", 0, 8)
    assert len(row["rows"]) == 8
    assert all(r["sim_cost_s"] > 0 for r in row["rows"])
