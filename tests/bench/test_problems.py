"""Tests of the DeployBench problems: registry, spaces, optima, crash zones, rates, noise."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deploytune
from deploybench import deploy_sim, pipeline_sim, recording, replay, synthetic
from deploybench.problem import Problem
from deploybench.registry import expand_problem_names, get_problem, problem_names
from deploytune.outcome import CrashKind, InvalidConfig, Status, crash_kind_of, judge
from deploytune.space import Config
from deploytune.tuner import evaluate_once

NAMES = ["crashy-branin", "hierarchical-rosenbrock", "deploy-sim-edge", "deploy-sim-server",
         "pipeline-sim"]
"""The simulated problems (what the ``problem`` fixture covers)."""
REAL = [f"{w}-{s}" for w in ("effnet", "minilm", "whisper") for s in ("edge", "server")]
REPLAY_NAMES = [f"{name}-replay" for name in REAL]
LIVE_NAMES = [*REAL, "llama-cpu"]
NOISE_FREE: dict[str, Callable[[Mapping[str, Any]], dict[str, float]]] = {
    "crashy-branin": synthetic.simulate_branin,
    "hierarchical-rosenbrock": synthetic.simulate_rosenbrock,
    "deploy-sim-edge": lambda c: deploy_sim.simulate_deploy(c, noise=False),
    "deploy-sim-server": lambda c: deploy_sim.simulate_deploy(c, noise=False),
    "pipeline-sim": lambda c: pipeline_sim.simulate_pipeline(c, noise=False),
}
CRASH_TYPES = (InvalidConfig, MemoryError, TimeoutError, RuntimeError)
LLM_NAMES = ["llm-sim-8b-24gb", "llm-sim-70b-2xh100", "llm-sim-70b-4xh100",
             "llm-sim-70b-8xh100"]
"""The llm-sim problems (tested in test_llm_sim.py)."""


@pytest.fixture(scope="module", params=NAMES)
def problem(request: pytest.FixtureRequest) -> Problem:
    return get_problem(request.param)


def _judge(problem: Problem, config: Config,
           simulate: Callable[[Config], Mapping[str, float]]) -> deploytune.Outcome:
    try:
        metrics = simulate(config)
    except CRASH_TYPES as exc:
        return deploytune.Outcome.crashed(crash_kind_of(exc), str(exc))
    return judge(metrics, problem.objective, problem.constraints)


# ------------------------------------------------------------------------------------ registry
def test_registry_names_and_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generated = [*(f"gen-dev-{k:02d}" for k in range(20)),
                 *(f"gen-test-{k:02d}" for k in range(20)),
                 *(f"gen-noisy-dev-{k:02d}" for k in range(20)),
                 *(f"gen-noisy-test-{k:02d}" for k in range(20))]
    assert problem_names() == [*NAMES, *LLM_NAMES, *REPLAY_NAMES, *generated,
                               *LIVE_NAMES]  # live last
    assert expand_problem_names(["gen-test"]) == generated[20:40]
    assert expand_problem_names(["gen-noisy-test"]) == generated[60:]
    assert expand_problem_names(["deploy-sim"]) == ["deploy-sim-edge", "deploy-sim-server"]
    assert expand_problem_names(["all"]) == [*NAMES, *LLM_NAMES, *REPLAY_NAMES]  # never live
    assert expand_problem_names(["replay"]) == REPLAY_NAMES
    assert expand_problem_names(["llm-sim"]) == LLM_NAMES
    assert expand_problem_names(["live"]) == LIVE_NAMES
    assert expand_problem_names(["crashy-branin", "deploy-sim", "deploy-sim-edge"]) == [
        "crashy-branin", "deploy-sim-edge", "deploy-sim-server"]
    assert expand_problem_names(["effnet-edge", "live"]) == LIVE_NAMES
    for bad in ("nope", "deploy-sim", "replay", "live", "all"):
        with pytest.raises(ValueError, match="crashy-branin"):
            get_problem(bad)
    with pytest.raises(ValueError, match="stands for several problems"):
        get_problem("live")
    with pytest.raises(ValueError, match="known problems"):
        expand_problem_names(["nope"])
    # a real-workload problem whose table is not shipped names the command that records it
    monkeypatch.setattr(recording, "_DATA", tmp_path)
    replay._load_table.cache_clear()
    for name in ("minilm-edge-replay", "whisper-server", "effnet-server-replay"):
        with pytest.raises(ValueError, match=f"deploytune bench record {name.split('-')[0]}"):
            get_problem(name)


def test_problem_builds(problem: Problem) -> None:
    assert problem.name in NAMES
    assert problem.families and all(f in problem.space for f in problem.families)
    assert problem.constraints and problem.description
    assert problem.objective.better(problem.optimum, problem.reference)
    assert problem.regret(problem.optimum) == 0.0
    assert problem.regret(problem.reference) == pytest.approx(1.0)
    assert problem.regret(None) == 1.0
    if problem.name != "crashy-branin":
        assert problem.space.is_conditional
    for status in Status:
        assert problem.cost.seconds(problem.space.sample(np.random.default_rng(0)), status,
                                    None) > 0
    for kind in CrashKind:
        assert problem.cost.seconds(problem.space.sample(np.random.default_rng(0)),
                                    Status.CRASHED, kind) > 0


def test_pipeline_sim_has_many_conditional_params() -> None:
    space = get_problem("pipeline-sim").space
    assert len(space) >= 10
    assert sum(bool(p.when) for p in space) >= 3


# ---------------------------------------------------------------------- random configurations
def test_random_configs_validate_and_evaluate(problem: Problem) -> None:
    needed = {problem.objective.metric} | {c.metric for c in problem.constraints}
    for i in range(150):
        config = problem.space.sample(np.random.default_rng(i))
        problem.space.validate(config)
        try:
            metrics = problem.simulate(config, np.random.default_rng(i))
        except CRASH_TYPES:
            continue
        assert needed <= set(metrics)
        assert all(math.isfinite(v) for v in metrics.values())


# Measured rates (20,000 samples, see the docstrings) with generous bounds for 1,000 samples.
RATE_BOUNDS = {  # name: ((crash lo, hi), (feasible lo, hi))
    "crashy-branin": ((0.17, 0.25), (0.29, 0.39)),
    "hierarchical-rosenbrock": ((0.004, 0.03), (0.76, 0.86)),
    "deploy-sim-edge": ((0.29, 0.40), (0.08, 0.16)),
    "deploy-sim-server": ((0.29, 0.40), (0.05, 0.12)),
    "pipeline-sim": ((0.31, 0.43), (0.05, 0.12)),
}


def test_random_sampling_rates(problem: Problem) -> None:
    n = 1000
    counts: Counter[str] = Counter()
    for i in range(n):
        config = problem.space.sample(np.random.default_rng(i))
        rng = np.random.default_rng(10**6 + i)

        def noisy(c: Config, rng: np.random.Generator = rng) -> Mapping[str, float]:
            return problem.simulate(c, rng)

        outcome = _judge(problem, config, noisy)
        counts[outcome.status.value] += 1
    (c_lo, c_hi), (f_lo, f_hi) = RATE_BOUNDS[problem.name]
    assert c_lo <= counts["crashed"] / n <= c_hi
    assert f_lo <= counts["feasible"] / n <= f_hi  # small but not empty


# ------------------------------------------------------------------------------------ optima
def test_no_random_sample_beats_the_optimum(problem: Problem) -> None:
    simulate = NOISE_FREE[problem.name]
    values = []
    for i in range(1500):
        outcome = _judge(problem, problem.space.sample(np.random.default_rng(50_000 + i)),
                         simulate)
        if outcome.status is Status.FEASIBLE:
            assert outcome.value is not None
            values.append(outcome.value)
    assert values
    tol = 1e-9 + 1e-6 * abs(problem.optimum)
    assert max(values) <= problem.optimum + tol
    # the reference is the median of random feasible values: roughly reproduced
    median = float(np.median(values))
    assert abs(median - problem.reference) <= 0.35 * abs(problem.reference) + 1e-3


@pytest.mark.parametrize("config", [
    {"mode": "A", "x1": math.pi, "x2": 2.275, "resolution": 1},
    {"mode": "A", "x1": 3 * math.pi, "x2": 2.475, "resolution": 1},
    {"mode": "B", "x1": 3 * math.pi - 2, "x2": 2.475, "resolution": 1},
    {"mode": "C", "x1": math.pi + 2, "x2": 2.275, "resolution": 1},
])
def test_branin_optimum_is_attained(config: Config) -> None:
    problem = get_problem("crashy-branin")
    outcome = _judge(problem, config, synthetic.simulate_branin)
    assert outcome.status is Status.FEASIBLE
    assert outcome.value == pytest.approx(synthetic.BRANIN_OPTIMUM, abs=1e-9)
    assert abs(synthetic.BRANIN_OPTIMUM + 0.497887) < 1e-6


def test_rosenbrock_optimum_is_approached() -> None:
    problem = get_problem("hierarchical-rosenbrock")
    for mode, n in (("simple", 2), ("extended", 4), ("full", 5)):
        ones = {"mode": mode, **{f"x{i}": 1.0 for i in range(1, n + 1)}, "n_iters": 20}
        outcome = _judge(problem, ones, synthetic.simulate_rosenbrock)
        assert outcome.status is Status.FEASIBLE
        assert outcome.value is not None and -0.0495 - 1e-12 <= outcome.value <= 0.0
    # the supremum 0 is approached: near all-ones some rounded tuple has noise 0
    best = -math.inf
    for k in range(1, 2000):
        config = {"mode": "simple", "x1": 1.0 - k * 1e-6, "x2": 1.0, "n_iters": 20}
        best = max(best, synthetic.simulate_rosenbrock(config)["objective"])
    assert -1e-6 < best <= synthetic.ROSENBROCK_OPTIMUM == 0.0


def test_rosenbrock_noise_is_deterministic() -> None:
    xs = (0.1234567, -2.5, 3.0)
    assert synthetic.rosenbrock_noise(xs) == synthetic.rosenbrock_noise((0.12345671, -2.5, 3.0))
    assert 0 <= synthetic.rosenbrock_noise(xs) <= 99
    # known values: BLAKE2b, not Python's hash, so identical in every process
    assert synthetic.rosenbrock_noise((1.0, 1.0)) == 74
    assert synthetic.rosenbrock_noise((1.0,) * 4) == 36
    assert synthetic.rosenbrock_noise((1.0,) * 5) == 10
    assert synthetic.rosenbrock_noise((-0.0,)) == synthetic.rosenbrock_noise((0.0,))


@pytest.fixture(scope="module")
def deploy_grid() -> list[tuple[Config, dict[str, float] | None]]:
    out: list[tuple[Config, dict[str, float] | None]] = []
    for config in deploy_sim.enumerate_configs():
        try:
            out.append((config, deploy_sim.simulate_deploy(config, noise=False)))
        except CRASH_TYPES:
            out.append((config, None))
    return out


@pytest.mark.parametrize("name", ["deploy-sim-edge", "deploy-sim-server"])
@pytest.mark.slow
def test_deploy_sim_grid_optimum(name: str,
                                 deploy_grid: list[tuple[Config, dict[str, float] | None]]
                                 ) -> None:
    problem = get_problem(name)
    assert len(deploy_grid) == 41_472
    space = problem.space
    best = -math.inf
    for config, _ in deploy_grid[::7]:
        space.validate(config)
    for _, metrics in deploy_grid:
        if metrics is None:
            continue
        outcome = judge(metrics, problem.objective, problem.constraints)
        if outcome.status is Status.FEASIBLE and outcome.value is not None:
            best = max(best, outcome.value)
    assert best == pytest.approx(problem.optimum, rel=1e-6)


def test_pipeline_sim_optimum_is_attained() -> None:
    problem = get_problem("pipeline-sim")
    problem.space.validate(pipeline_sim.OPTIMAL_CONFIG)
    outcome = _judge(problem, pipeline_sim.OPTIMAL_CONFIG, NOISE_FREE["pipeline-sim"])
    assert outcome.status is Status.FEASIBLE
    assert outcome.value == pytest.approx(pipeline_sim.OPTIMUM, rel=1e-5)


# -------------------------------------------------------------------------------- crash zones
@pytest.mark.parametrize(("name", "config", "exc"), [
    ("crashy-branin", {"mode": "C", "x1": 8.5, "x2": 1.0, "resolution": 1}, InvalidConfig),
    ("crashy-branin", {"mode": "A", "x1": 1.0, "x2": 12.5, "resolution": 8}, InvalidConfig),
    ("hierarchical-rosenbrock", {"mode": "full", "x1": 3.5, "x2": 0.0, "x3": 0.0, "x4": 0.0,
                                 "x5": 3.5, "n_iters": 5}, RuntimeError),
    ("deploy-sim-edge", {"model": "resnet18", "device": "cpu", "backend": "tensorrt",
                         "precision": "fp32", "batch_size": 1, "threads": 4}, InvalidConfig),
    ("deploy-sim-edge", {"model": "resnet18", "device": "gpu", "backend": "torch_compile",
                         "precision": "int8", "batch_size": 1}, InvalidConfig),
    ("deploy-sim-edge", {"model": "resnet18", "device": "cpu", "backend": "onnxruntime",
                         "precision": "fp16", "batch_size": 1, "threads": 4}, InvalidConfig),
    ("deploy-sim-edge", {"model": "resnet18", "device": "cpu", "backend": "torch_compile",
                         "precision": "fp16", "batch_size": 1, "threads": 4}, RuntimeError),
    ("deploy-sim-edge", {"model": "vit_b16", "device": "gpu", "backend": "torch_compile",
                         "precision": "fp32", "batch_size": 64}, MemoryError),
    ("deploy-sim-edge", {"model": "resnet50", "device": "gpu", "backend": "pytorch_eager",
                         "precision": "fp32", "batch_size": 64}, MemoryError),
    ("deploy-sim-edge", {"model": "vit_b16", "device": "gpu", "backend": "tensorrt",
                         "precision": "int8", "batch_size": 16}, TimeoutError),
    ("deploy-sim-edge", {"model": "vit_b16", "device": "cpu", "backend": "pytorch_eager",
                         "precision": "fp32", "batch_size": 64, "threads": 1}, TimeoutError),
    ("pipeline-sim", {**pipeline_sim.OPTIMAL_CONFIG, "runtime": "pytorch_eager",
                      "trt_workspace_mb": None}, InvalidConfig),
    ("pipeline-sim", {**pipeline_sim.OPTIMAL_CONFIG, "quantization": "int8_dynamic",
                      "calibration_samples": None}, InvalidConfig),
    ("pipeline-sim", {**pipeline_sim.OPTIMAL_CONFIG, "trt_workspace_mb": 128,
                      "max_batch_size": 64}, RuntimeError),
    ("pipeline-sim", {**pipeline_sim.OPTIMAL_CONFIG, "model": "roberta_large",
                      "runtime": "onnxruntime", "trt_workspace_mb": None,
                      "quantization": "fp32", "calibration_samples": None,
                      "max_batch_size": 128, "num_workers": 4}, MemoryError),
    ("pipeline-sim", {**pipeline_sim.OPTIMAL_CONFIG, "num_workers": 8}, MemoryError),
    ("pipeline-sim", {"model": "roberta_large", "runtime": "torch_compile",
                      "compile_mode": "max-autotune", "quantization": "fp16",
                      "padding": "dynamic", "max_batch_size": 8, "max_wait_ms": 2.0,
                      "num_workers": 1, "tokenizer_threads": 2, "cache": "off"}, TimeoutError),
])
def test_crash_zones(name: str, config: dict[str, Any], exc: type[Exception]) -> None:
    problem = get_problem(name)
    config = problem.space.complete({k: v for k, v in config.items() if v is not None},
                                    np.random.default_rng(0))
    problem.space.validate(config)
    for seed in range(3):
        with pytest.raises(exc):
            problem.simulate(config, np.random.default_rng(seed))
    with pytest.raises(exc):
        NOISE_FREE[name](config)
    outcome = evaluate_once(problem.evaluator(0), config, problem.objective,
                            problem.constraints)
    assert outcome.status is Status.CRASHED
    assert outcome.crash_kind is crash_kind_of(exc("x"))
    assert outcome.crash_kind is not CrashKind.TRANSIENT


def test_int8_silently_runs_on_the_cpu() -> None:
    gpu = {"model": "resnet50", "device": "gpu", "backend": "pytorch_eager", "batch_size": 4}
    fp16 = deploy_sim.simulate_deploy({**gpu, "precision": "fp16"}, noise=False)
    int8 = deploy_sim.simulate_deploy({**gpu, "precision": "int8"}, noise=False)
    assert fp16["on_cpu"] == 0.0 and int8["on_cpu"] == 1.0
    assert int8["latency_p50_ms"] > 8 * fp16["latency_p50_ms"]
    # and CPU measurements are much noisier than GPU ones
    def spread(config: Config) -> float:
        vals = [deploy_sim.simulate_deploy(config, np.random.default_rng(s))["latency_p95_ms"]
                for s in range(200)]
        return float(np.std(vals) / np.mean(vals))
    assert spread({**gpu, "precision": "int8"}) > 2.5 * spread({**gpu, "precision": "fp16"})
    text = {**pipeline_sim.OPTIMAL_CONFIG, "runtime": "onnxruntime",
            "quantization": "int8_dynamic"}
    text = {k: v for k, v in text.items() if k not in ("trt_workspace_mb", "calibration_samples")}
    assert pipeline_sim.simulate_pipeline(text, noise=False)["on_cpu"] == 1.0


def test_deploy_sim_accuracy_depends_on_model_and_precision() -> None:
    base = {"device": "gpu", "backend": "tensorrt", "batch_size": 1}
    acc = {(m, p): deploy_sim.simulate_deploy({**base, "model": m, "precision": p},
                                              noise=False)["accuracy"]
           for m in ("resnet18", "resnet50") for p in ("fp32", "fp16")}
    acc[("resnet18", "int8")] = deploy_sim.simulate_deploy(
        {**base, "model": "resnet18", "precision": "int8"}, noise=False)["accuracy"]
    assert acc[("resnet50", "fp32")] > acc[("resnet18", "fp32")] + 0.05
    assert abs(acc[("resnet18", "fp16")] - acc[("resnet18", "fp32")]) < 0.001
    assert 0.001 < acc[("resnet18", "fp32")] - acc[("resnet18", "int8")] < 0.03


# -------------------------------------------------------------------------------------- noise
def _outcome(evaluate: Callable[[Config], Mapping[str, float]], config: Config) -> Any:
    try:
        return dict(evaluate(config))
    except CRASH_TYPES as exc:
        return type(exc).__name__


def test_evaluator_noise_is_deterministic(problem: Problem) -> None:
    configs = [problem.space.sample(np.random.default_rng(i)) for i in range(12)]
    a, b = problem.evaluator(7), problem.evaluator(7)
    first = [_outcome(a, c) for c in configs]
    again = [_outcome(a, c) for c in configs]  # repeat 1 of every configuration
    assert [_outcome(b, c) for c in reversed(configs)] == list(reversed(first))  # order-free
    assert [_outcome(b, c) for c in configs] == again
    if problem.name.startswith(("deploy-sim", "pipeline-sim")):
        ran = [i for i, o in enumerate(first) if isinstance(o, dict)]
        assert ran and any(first[i] != again[i] for i in ran)  # repeats are fresh draws
        other = problem.evaluator(8)
        assert any(_outcome(other, configs[i]) != first[i] for i in ran)
    else:
        assert first == again  # the synthetic problems are noise-free


# ----------------------------------------------------------------------------------- optimize
def test_optimize_runs(problem: Problem) -> None:
    result = deploytune.optimize(problem.evaluator(0), problem.space,
                                 objective=problem.objective.metric,
                                 direction=problem.objective.direction,
                                 constraints=[str(c) for c in problem.constraints],
                                 budget=10, sampler="random", seed=0)
    assert len(result.trials) == 10
    for t in result.trials:
        problem.space.validate(t.config)
        if t.status is Status.CRASHED:
            assert t.crash_kind in (CrashKind.INVALID_CONFIG, CrashKind.OOM, CrashKind.TIMEOUT,
                                    CrashKind.RUNTIME_ERROR)
    if result.best_value is not None:
        assert problem.regret(result.best_value) <= 1.0
