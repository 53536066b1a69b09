"""``llm-sim``: a simulated LLM-serving benchmark (vLLM-style knobs) with hidden crash zones.

A configuration sets the knobs of a vLLM server (``tensor_parallel_size``,
``gpu_memory_utilization``, ``max_model_len``, ``max_num_batched_tokens``, ``max_num_seqs``,
``enable_chunked_prefill``, ``enable_prefix_caching``, ``kv_cache_dtype``, ``quantization``,
``enforce_eager``). The simulator boots the engine and runs a closed-loop load test (client
concurrency = ``max_num_seqs``, as a tuning harness that saturates the configured batch does;
prompts of 1,024 tokens of which a 256-token system prompt is shared, 256 output tokens, with
per-instance prompt and output lengths) against one hidden model x GPU *instance*
(:data:`INSTANCES`): Llama-3.1-8B on four 24 GiB A10s, and Llama-3.1-70B on two, four and
eight H100-80GB.

The engine's checks run in the engine's order, with the engine's messages (the memory formulas
are those of vLLM v1's ``determine_available_memory``, the activation and NCCL priors those of
AIConfigurator):

1. Static validation (:class:`~deploytune.InvalidConfig`, seconds): attention heads not divisible
   by the TP size; TP size above the node's GPU count; chunked prefill off and
   ``max_num_batched_tokens < max_model_len``; ``max_num_batched_tokens < max_num_seqs``; fp8
   weights on a GPU without fp8 tensor cores (the simulated engine version requires SM 8.9, as
   vLLM did before its Marlin fp8 fallback).
2. Memory snapshot: ``free < gpu_memory_utilization * total`` (``MemoryError``; deterministic,
   e.g. 0.98 on the A10s whose CUDA context leaves 97.8% free). With probability
   :data:`LEAK_PROBABILITY` a previous trial has not yet released part of its memory; when only
   that leak makes the snapshot fail the error is a :class:`~deploytune.TransientError` (it says
   nothing about the configuration). A leak that does not fail the snapshot is harmless.
3. Weight load: weights per GPU above the free memory (``MemoryError``, ``torch.OutOfMemoryError``).
4. Profile run: no memory left for KV-cache blocks after weights, the activation peak at
   ``max_num_batched_tokens`` tokens, the sampler's logits and NCCL buffers (``MemoryError``).
5. Single-request fit: the KV cache holds fewer than ``max_model_len`` tokens (``MemoryError``
   with vLLM's "estimated maximum model length is N" message).
6. CUDA-graph capture (unless ``enforce_eager``): graph memory grows with
   ``min(max_num_seqs, 512)`` and is not part of the budget; the pool plus the graphs must fit
   in the GPU (``MemoryError``).
7. Load test: when the KV cache is over-subscribed requests are preempted and recomputed (a soft
   penalty on TPOT and throughput); a runtime OOM outside the pool (sampler sort buffers,
   fragmentation) happens with probability ``sigmoid((u - u_safe) / 0.005)`` and costs most of
   the load test (``MemoryError``). Noise-free evaluations crash when that probability is above
   one half.

Latency and throughput follow roofline formulas: a decode step takes
``max(memory time, compute time, launch time) + overhead + all-reduce time`` with memory time
``(weights + KV read) / (alpha * bandwidth)`` and compute time
``tokens * 2 * P / (TP * beta * peak FLOP/s)``; chunked prefill mixes prefill tokens into decode
steps within the ``max_num_batched_tokens`` budget, otherwise separate prefill steps stall
decoding. TTFT follows from Little's law in the closed loop. The metrics are those of
``vllm bench serve``: ``ttft_p95_ms``, ``tpot_p95_ms``, ``e2e_p95_ms``, ``output_tokens_per_s``,
``output_tokens_per_s_per_gpu``, ``requests_per_s``, ``goodput`` (requests/s meeting both SLOs),
plus what the engine logs (``kv_cache_tokens``, ``max_concurrency``, ``preemptions``,
``memory_headroom_gib``) and ``boot_s`` / ``eval_s``.

Noise: multiplicative lognormal run-to-run noise on latencies (4% at full fidelity, 10% on a
short run), 2.5% on the non-weight, non-KV memory (activations, NCCL, non-torch, CUDA graphs)
and 0.5% on the weights, so that OOMs near a boundary are stochastic. ``noise=False`` gives
the noise-free values used for the optima.

Fidelities (:data:`FIDELITIES`, see :func:`simulate_llm` and :func:`fidelity_cost_s`):
``analytic`` (instant, biased: ``alpha`` +20% and ``beta`` -20%, no preemption, only the static
checks and the memory formula), ``boot`` (exact startup and KV capacity, no SLO metrics),
``short`` (100 requests, noisier) and ``full`` (1,000 requests). Problems use ``full``; with
rungs (:attr:`Problem.staged <deploybench.problem.Problem.staged>`,
:func:`simulate_llm_rungs`) a full evaluation passes ``boot`` and ``short`` on its way, and one
stopped there costs that fidelity's seconds. The ``analytic`` fidelity is the problems'
:attr:`~deploybench.problem.Problem.estimate` (a crash it predicts gives no estimate).

Architecture numbers are those of the published Llama-3.1 configurations, GPU numbers those of
the data sheets; efficiency, overhead and boot-time coefficients are plausible round numbers,
not measurements.

This module defines the problems; the simulator is split by job: the instances and the search
space (:mod:`deploybench.llm_sim_hardware`), the vectorised model
(:mod:`deploybench.llm_sim_perf`), the scalar engine (:mod:`deploybench.llm_sim_engine`), the
costs (:mod:`deploybench.llm_sim_costs`) and the exhaustive grid
(:mod:`deploybench.llm_sim_grid`). Their public names are importable from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.llm_sim_costs import LLMSimCost, fidelity_cost_s
from deploybench.llm_sim_engine import (
    ANALYTIC_S,
    FIDELITIES,
    LEAK_PROBABILITY,
    noise_free_stage,
    runtime_oom_probability,
    simulate_llm,
    simulate_llm_rungs,
)
from deploybench.llm_sim_grid import (
    enumerate_metrics,
    feasible_family_values,
    grid_optimum,
    random_reference,
)
from deploybench.llm_sim_hardware import (
    A10,
    H100,
    INSTANCES,
    LLAMA_8B,
    LLAMA_70B,
    GPUSpec,
    LLMInstance,
    ModelArch,
    llm_space,
)
from deploybench.llm_sim_perf import STAGES
from deploybench.problem import Problem
from deploytune.space import Config

__all__ = [
    "A10",
    "FEASIBLE_FAMILIES",
    "FIDELITIES",
    "H100",
    "INSTANCES",
    "LEAK_PROBABILITY",
    "LLAMA_8B",
    "LLAMA_70B",
    "OPTIMA",
    "OPTIMAL_CONFIGS",
    "RATES",
    "REFERENCES",
    "STAGES",
    "GPUSpec",
    "LLMInstance",
    "LLMSimCost",
    "ModelArch",
    "enumerate_metrics",
    "feasible_family_values",
    "fidelity_cost_s",
    "grid_optimum",
    "llm_sim_8b_24gb",
    "llm_sim_70b_2xh100",
    "llm_sim_70b_4xh100",
    "llm_sim_70b_8xh100",
    "llm_sim_problem",
    "llm_space",
    "noise_free_stage",
    "random_reference",
    "runtime_oom_probability",
    "simulate_llm",
    "simulate_llm_rungs",
]

OPTIMA: dict[str, float] = {
    "llm-sim-8b-24gb": 2051.2751062980406,
    "llm-sim-70b-2xh100": 1238.883010425046,
    "llm-sim-70b-4xh100": 12.976795345484774,
    "llm-sim-70b-8xh100": 731.7483183549766,
}
"""Noise-free grid optima (:func:`grid_optimum`, every configuration enumerated), by problem
name; the configurations are :data:`OPTIMAL_CONFIGS`."""

_FAST = {"max_model_len": 4096, "enable_chunked_prefill": True, "enable_prefix_caching": True,
         "enforce_eager": False, "gpu_memory_utilization": 0.8}
OPTIMAL_CONFIGS: dict[str, Config] = {
    "llm-sim-8b-24gb": {**_FAST, "tensor_parallel_size": 4, "max_num_batched_tokens": 512,
                        "max_num_seqs": 128, "kv_cache_dtype": "auto", "quantization": "none"},
    "llm-sim-70b-2xh100": {**_FAST, "tensor_parallel_size": 2, "max_num_batched_tokens": 512,
                           "max_num_seqs": 64, "kv_cache_dtype": "auto", "quantization": "fp8"},
    "llm-sim-70b-4xh100": {**_FAST, "tensor_parallel_size": 4, "max_num_batched_tokens": 512,
                           "max_num_seqs": 64, "kv_cache_dtype": "auto", "quantization": "fp8"},
    "llm-sim-70b-8xh100": {**_FAST, "tensor_parallel_size": 2, "max_num_batched_tokens": 1024,
                           "max_num_seqs": 64, "kv_cache_dtype": "fp8", "quantization": "fp8"},
}
"""The configurations attaining :data:`OPTIMA`, the first in ``itertools.product`` order of the
space's choices (so ``gpu_memory_utilization`` 0.80 and ``max_model_len`` 4096, which tie with
larger values wherever those boot, and ``kv_cache_dtype`` auto where fp8 ties)."""

REFERENCES: dict[str, float] = {
    "llm-sim-8b-24gb": 1054.3059310798144,
    "llm-sim-70b-2xh100": 682.2894315593695,
    "llm-sim-70b-4xh100": 4.339670761737114,
    "llm-sim-70b-8xh100": 222.6798418353568,
}
"""Median noise-free objective of the feasible ones among 20,000 random configurations
(:func:`random_reference`), by problem name."""

RATES: dict[str, str] = {
    "llm-sim-8b-24gb": "Random sampling: 69.3% crash (56.0% invalid_config, 13.05% oom, "
                       "0.3% transient), 22.7% infeasible, 8.0% feasible.",
    "llm-sim-70b-2xh100": "Random sampling: 76.9% crash (57.1% invalid_config, 19.5% oom, "
                          "0.4% transient), 19.3% infeasible, 3.8% feasible.",
    "llm-sim-70b-4xh100": "Random sampling: 67.1% crash (51.4% invalid_config, 15.3% oom, "
                          "0.5% transient), 29.7% infeasible, 3.1% feasible.",
    "llm-sim-70b-8xh100": "Random sampling: 51.2% crash (34.8% invalid_config, 15.9% oom, "
                          "0.6% transient), 42.7% infeasible, 6.1% feasible.",
}
"""Measured random-sampling outcome rates, by problem name: 20,000 configurations
``llm_space(name).sample(np.random.default_rng(i))``, ``i = 0..19999``, each evaluated once by
``simulate_llm(name, config, np.random.default_rng(10**6 + i))`` and judged with
:func:`deploytune.outcome.judge` (crashes classified by
:func:`deploytune.outcome.crash_kind_of`). The static checks make most crashes: chunked prefill
off with ``max_num_batched_tokens < max_model_len`` alone is about a third of the space."""


FEASIBLE_FAMILIES: dict[str, dict[str, tuple[Any, ...]]] = {
    "llm-sim-8b-24gb": {"tensor_parallel_size": (1, 2, 4), "quantization": ("none", "awq")},
    "llm-sim-70b-2xh100": {"tensor_parallel_size": (1, 2),
                           "quantization": ("none", "fp8", "awq")},
    "llm-sim-70b-4xh100": {"tensor_parallel_size": (2, 4),
                           "quantization": ("none", "fp8", "awq")},
    "llm-sim-70b-8xh100": {"tensor_parallel_size": (2, 4, 8),
                           "quantization": ("none", "fp8", "awq")},
}
"""Family values with at least one noise-free feasible configuration, by problem name
(:func:`feasible_family_values`; what "discovery" counts)."""


def _simulator(inst: LLMInstance) -> Any:
    def simulate(config: Config, rng: np.random.Generator) -> dict[str, float]:
        return simulate_llm(inst, config, rng, noise=True, fidelity="full")

    return simulate


def _estimator(inst: LLMInstance) -> Any:
    def estimate(config: Config) -> dict[str, float]:
        return simulate_llm(inst, config, None, noise=False, fidelity="analytic")

    return estimate


def _staged(inst: LLMInstance) -> Any:
    def staged(config: Config, rng: np.random.Generator, report: Any) -> dict[str, float]:
        return simulate_llm_rungs(inst, config, rng, report)

    return staged


def llm_sim_problem(name: str) -> Problem:
    """The ``llm-sim`` problem of instance ``name`` (a key of :data:`INSTANCES`)."""
    inst = INSTANCES[name]
    m, g = inst.model, inst.gpu
    description = (
        f"Simulated vLLM serving of {m.name} on {inst.n_gpus} x {g.name} (TP "
        f"{'/'.join(map(str, inst.tp_choices))}, memory fraction, context, batching, chunked "
        f"prefill, prefix caching, fp8 KV, quantization, eager) with hidden crash zones; "
        f"maximise {inst.objective} ({inst.prompt_tokens} in / {inst.output_tokens} out, "
        f"concurrency max_num_seqs) subject to "
        f"{' and '.join(inst.constraints)}. {RATES.get(name, '')}").strip()
    return Problem.build(
        name, llm_space(inst), inst.objective, "maximize", inst.constraints, _simulator(inst),
        OPTIMA[name], REFERENCES[name], cost=LLMSimCost(instance=name),
        description=description, families=("tensor_parallel_size", "quantization"),
        feasible_families=FEASIBLE_FAMILIES.get(name), staged=_staged(inst),
        estimate=_estimator(inst), estimate_cost_s=ANALYTIC_S)


def llm_sim_8b_24gb() -> Problem:
    """``llm-sim-8b-24gb``: Llama-3.1-8B on four A10-24GB (PCIe, SM 8.6: fp8 weights invalid).

    Maximise ``output_tokens_per_s`` (1,024 in / 256 out) s.t. ``ttft_p95_ms <= 500`` and
    ``tpot_p95_ms <= 80``; TP 1, 2 or 4. Optimum ``2051.28`` tokens/s: TP 4, bf16 weights, auto
    KV, chunked prefill with ``max_num_batched_tokens`` 512, ``max_num_seqs`` 128, prefix
    caching, CUDA graphs, ``gpu_memory_utilization`` 0.80, ``max_model_len`` 4096 (the TPOT
    limit binds). Reference ``1054.31``. Random sampling (see :data:`RATES`): 69.3% crash
    (56.0% invalid_config, 13.05% oom, 0.3% transient), 22.7% infeasible, 8.0% feasible.
    """
    return llm_sim_problem("llm-sim-8b-24gb")


def llm_sim_70b_2xh100() -> Problem:
    """``llm-sim-70b-2xh100``: Llama-3.1-70B on two H100-80GB (NVLink).

    Maximise ``output_tokens_per_s`` (2,048 in / 256 out) s.t. ``ttft_p95_ms <= 1000`` and
    ``tpot_p95_ms <= 100``; TP 1 (weight OOM in bf16), 2 or 4 (more than the GPUs: invalid).
    Optimum ``1238.88`` tokens/s: TP 2, fp8 weights, auto KV, chunked prefill 512,
    ``max_num_seqs`` 64, prefix caching, CUDA graphs, 0.80, 4096. Reference ``682.29``. Random
    sampling: 76.9% crash (57.1% invalid_config, 19.5% oom, 0.4% transient), 19.3% infeasible,
    3.8% feasible.
    """
    return llm_sim_problem("llm-sim-70b-2xh100")


def llm_sim_70b_4xh100() -> Problem:
    """``llm-sim-70b-4xh100``: Llama-3.1-70B on four H100-80GB, maximising goodput.

    Maximise ``goodput`` (requests/s meeting both SLOs; 1,024 in / 256 out) s.t.
    ``ttft_p95_ms <= 500`` and ``tpot_p95_ms <= 35``; TP 1, 2, 3 (64 heads: invalid) or 4.
    Optimum ``12.98`` requests/s: TP 4, fp8 weights, auto KV, chunked prefill 512,
    ``max_num_seqs`` 64, prefix caching, CUDA graphs, 0.80, 4096. Reference ``4.34``. Random
    sampling: 67.1% crash (51.4% invalid_config, 15.3% oom, 0.5% transient), 29.7% infeasible,
    3.1% feasible.
    """
    return llm_sim_problem("llm-sim-70b-4xh100")


def llm_sim_70b_8xh100() -> Problem:
    """``llm-sim-70b-8xh100``: Llama-3.1-70B on eight H100-80GB, maximising tokens/s per GPU.

    Maximise ``output_tokens_per_s_per_gpu`` (per GPU in use; 3,072 in / 512 out) s.t.
    ``ttft_p95_ms <= 300`` and ``tpot_p95_ms <= 60``; TP 1, 2, 4 or 8 (small TP is efficient
    per GPU, large TP meets the latency SLOs). Optimum ``731.75``: TP 2, fp8 weights, fp8 KV,
    chunked prefill 1024, ``max_num_seqs`` 64, prefix caching, CUDA graphs, 0.80, 4096.
    Reference ``222.68``. Random sampling: 51.2% crash (34.8% invalid_config, 15.9% oom,
    0.6% transient), 42.7% infeasible, 6.1% feasible.
    """
    return llm_sim_problem("llm-sim-70b-8xh100")
