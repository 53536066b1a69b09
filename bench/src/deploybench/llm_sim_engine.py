"""The scalar ``llm-sim`` engine: boot one configuration, raise the engine's errors with its
messages, load-test it at a fidelity and add the run-to-run noise (see :mod:`deploybench.llm_sim`
for the model and :mod:`deploybench.llm_sim_perf` for its formulas).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from deploybench.llm_sim_hardware import LLMInstance, resolve_instance
from deploybench.llm_sim_perf import (
    ALPHA,
    BETA,
    CTX_GIB,
    FULL_REQUESTS,
    GIB,
    MAX_CAPTURE,
    SHORT_REQUESTS,
    STAGES,
    Cols,
    config_columns,
    goodput,
    metrics_arrays,
    run_core,
)
from deploytune.outcome import InvalidConfig, TransientError

__all__ = [
    "ANALYTIC_S",
    "FIDELITIES",
    "LEAK_PROBABILITY",
    "RUNTIME_OOM_AT",
    "noise_free_stage",
    "runtime_oom_probability",
    "simulate_llm",
    "simulate_llm_rungs",
]

FIDELITIES = ("analytic", "boot", "short", "full")
"""Fidelities of :func:`simulate_llm`, cheapest first."""
LEAK_PROBABILITY = 0.03
"""Probability that a previous trial still holds 3-10% of the GPU's memory at startup."""
RUNTIME_OOM_AT = 0.75
"""A runtime OOM is found after this fraction of the load test."""
ANALYTIC_S = 0.05
"""Seconds of an ``analytic`` evaluation."""


def _lognormal(rng: np.random.Generator | None, sigma: float) -> float:
    return float(math.exp(rng.normal(0.0, sigma))) if rng is not None and sigma > 0 else 1.0


def _raise_for_stage(inst: LLMInstance, config: Mapping[str, Any], code: int,
                     core: Mapping[str, np.ndarray], leak_gib: float = 0.0) -> None:
    """Raise the engine's exception for a failed startup stage."""
    m, g = inst.model, inst.gpu
    tp = int(config["tensor_parallel_size"])
    T, S, lmax = (int(config["max_num_batched_tokens"]), int(config["max_num_seqs"]),
                  int(config["max_model_len"]))
    u = float(config["gpu_memory_utilization"])
    total = g.memory_gib
    if code == 1:
        raise InvalidConfig(f"Total number of attention heads ({m.n_q}) must be divisible by "
                            f"tensor parallel size ({tp}).")
    if code == 2:
        raise InvalidConfig(f"please set tensor_parallel_size ({tp}) to less than max local "
                            f"gpu count ({inst.n_gpus})")
    if code == 3:
        raise InvalidConfig(
            f"max_num_batched_tokens ({T}) is smaller than max_model_len ({lmax}). This "
            f"effectively limits the maximum sequence length to max_num_batched_tokens and "
            f"makes vLLM reject longer sequences. Please increase max_num_batched_tokens or "
            f"decrease max_model_len.")
    if code == 4:
        raise InvalidConfig(f"max_num_batched_tokens ({T}) must be greater than or equal to "
                            f"max_num_seqs ({S}).")
    if code == 5:
        raise InvalidConfig(f"The quantization method fp8 is not supported for the current "
                            f"GPU. Minimum capability: 89. Current capability: {g.sm}.")
    free = float(core["free_gib"][0]) - leak_gib
    if code == 6:
        message = (f"Free memory on device ({free:.2f}/{total:.2f} GiB) on startup is less than "
                   f"desired GPU memory utilization ({u}, {u * total:.2f} GiB). Decrease GPU "
                   f"memory utilization or reduce GPU memory used by other processes.")
        if leak_gib > 0:
            raise TransientError(message)
        raise MemoryError(message)
    weights = float(core["weights_gib"][0])
    if code == 7:
        chunk = min(weights, 1.75)
        used = free + CTX_GIB - chunk * 0.4
        raise MemoryError(
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {chunk:.2f} GiB. "
            f"GPU 0 has a total capacity of {total:.2f} GiB of which {chunk * 0.4:.2f} GiB is "
            f"free. Including non-PyTorch memory, this process has {used:.2f} GiB memory in "
            f"use. (while loading the model weights: {weights:.2f} GiB per GPU)")
    if code == 8:
        raise MemoryError("No available memory for the cache blocks. Try increasing "
                          "`gpu_memory_utilization` when initializing the engine.")
    if code == 9:
        kv_tok = float(core["kv_tok_bytes"][0])
        need = lmax * kv_tok / GIB
        avail = max(float(core["kv_budget_gib"][0]), 0.0)
        estimate = int(core["kv_cache_tokens"][0])
        raise MemoryError(
            f"To serve at least one request with the models's max seq len ({lmax}), "
            f"({need:.2f} GiB KV cache is needed, which is larger than the available KV cache "
            f"memory ({avail:.2f} GiB). Based on the available memory, the estimated maximum "
            f"model length is {estimate}. Try increasing `gpu_memory_utilization` or "
            f"decreasing `max_model_len` when initializing the engine.")
    if code == 10:
        graph = float(core["graph_gib"][0])
        left = max(total - CTX_GIB - u * total, 0.0)
        raise MemoryError(
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
            f"{max(graph - left, 0.01) * 1024:.0f} MiB. GPU 0 has a total capacity of "
            f"{total:.2f} GiB of which {left * 1024:.0f} MiB is free. (raised while capturing "
            f"CUDA graphs for batch sizes up to {min(S, MAX_CAPTURE)})")
    raise AssertionError(f"unknown stage {code}")  # pragma: no cover


def simulate_llm(instance: LLMInstance | str, config: Mapping[str, Any],
                 rng: np.random.Generator | None = None, noise: bool = True,
                 fidelity: str = "full") -> dict[str, float]:
    """Boot the simulated engine with ``config`` and (depending on ``fidelity``) load-test it.

    Args:
        instance: An :class:`LLMInstance` or its name (a key of :data:`INSTANCES`).
        config: A configuration of :func:`llm_space`.
        rng: Source of noise (a fresh default generator when ``None`` and ``noise``).
        noise: ``False`` for the noise-free values (runtime OOM when its probability exceeds
            one half, no leak).
        fidelity: ``"full"`` (1,000 requests, 4% latency noise), ``"short"`` (100 requests, 10%
            noise, runtime OOM less likely), ``"boot"`` (startup only: memory metrics and
            ``boot_s``, no SLO metrics) or ``"analytic"`` (instant and deterministic whatever
            ``noise``; biased: alpha +20%, beta -20%, no preemption, only static and memory
            formula crashes).

    Returns:
        Metrics (see :mod:`deploybench.llm_sim`); ``eval_s`` is the simulated wall time.

    Raises:
        InvalidConfig: A static check failed.
        MemoryError: A startup memory check, weight load, CUDA-graph capture or the load test
            ran out of memory.
        TransientError: A previous trial's leaked memory failed the startup snapshot.
        ValueError: For an unknown fidelity.
    """
    if fidelity not in FIDELITIES:
        raise ValueError(f"unknown fidelity {fidelity!r}; one of {', '.join(FIDELITIES)}")
    inst = resolve_instance(instance)
    cols = config_columns(config)
    if fidelity == "analytic":
        return _simulate_analytic(inst, config, cols)
    if noise and rng is None:
        rng = np.random.default_rng()
    r = rng if noise else None
    core = _boot(inst, config, cols, r)
    if fidelity == "boot":
        return {"kv_cache_tokens": float(core["kv_cache_tokens"][0]),
                "max_concurrency": float(core["max_concurrency"][0]),
                "memory_headroom_gib": float(core["memory_headroom_gib"][0]),
                "boot_s": float(core["boot_s"][0]), "eval_s": float(core["boot_s"][0])}
    requests = FULL_REQUESTS if fidelity == "full" else SHORT_REQUESTS
    _check_runtime_oom(inst, config, core, r, fidelity, requests)
    metrics = {k: float(v[0]) for k, v in metrics_arrays(inst, core, requests).items()}
    if r is not None:
        _add_noise(inst, core, metrics, r, fidelity, requests)
    return metrics


def simulate_llm_rungs(instance: LLMInstance | str, config: Mapping[str, Any],
                       rng: np.random.Generator,
                       report: Callable[..., None]) -> dict[str, float]:
    """:func:`simulate_llm` at ``full`` fidelity, passing the rungs on its way: ``boot``
    (startup done: ``kv_cache_tokens``, ``max_concurrency``, ``memory_headroom_gib``,
    ``boot_s``; step 0) and ``short`` (the metrics of a ``short`` load test, with its own noise;
    step 1), each sent with ``report(metrics, step=..., rung=...)``.

    A runtime OOM comes after the short rung (at :data:`RUNTIME_OOM_AT` of the full load). The
    final metrics, and every crash, are those of ``simulate_llm(instance, config, rng)`` for the
    same generator: the short rung's noise comes from a child of ``rng`` that leaves its stream
    as it was.
    """
    inst = resolve_instance(instance)
    core = _boot(inst, config, config_columns(config), rng)
    report({"kv_cache_tokens": float(core["kv_cache_tokens"][0]),
            "max_concurrency": float(core["max_concurrency"][0]),
            "memory_headroom_gib": float(core["memory_headroom_gib"][0]),
            "boot_s": float(core["boot_s"][0])}, step=0, rung="boot")
    short_rng = rng.spawn(1)[0]
    oom: MemoryError | None = None
    try:
        _check_runtime_oom(inst, config, core, rng, "full", FULL_REQUESTS)
    except MemoryError as exc:
        oom = exc
    short = {k: float(v[0]) for k, v in metrics_arrays(inst, core, SHORT_REQUESTS).items()}
    _add_noise(inst, core, short, short_rng, "short", SHORT_REQUESTS)
    report(short, step=1, rung="short")
    if oom is not None:
        raise oom
    metrics = {k: float(v[0]) for k, v in metrics_arrays(inst, core, FULL_REQUESTS).items()}
    _add_noise(inst, core, metrics, rng, "full", FULL_REQUESTS)
    return metrics


def _simulate_analytic(inst: LLMInstance, config: Mapping[str, Any],
                       cols: Cols) -> dict[str, float]:
    """The ``analytic`` fidelity: biased formulas, static and memory-formula crashes only."""
    core = run_core(inst, cols, alpha=ALPHA * 1.2, beta=BETA * 0.8, preemption=False)
    code = int(core["stage"][0])
    if 0 < code <= 9 and code != 6:
        _raise_for_stage(inst, config, code, core)
    metrics = {k: float(v[0]) for k, v in metrics_arrays(inst, core).items()}
    metrics["eval_s"] = ANALYTIC_S
    return metrics


def _boot(inst: LLMInstance, config: Mapping[str, Any], cols: Cols,
          r: np.random.Generator | None) -> dict[str, np.ndarray]:
    """Boot the engine (a leak from a previous trial with probability
    :data:`LEAK_PROBABILITY`, then the memory noise): the core's arrays, or the exception of
    the first stage that fails."""
    leak = 0.0
    if r is not None and r.random() < LEAK_PROBABILITY:
        leak = inst.gpu.memory_gib * float(r.uniform(0.03, 0.10))
    core = run_core(inst, cols, w_noise=_lognormal(r, 0.005),
                    nonkv_noise=_lognormal(r, 0.025), graph_noise=_lognormal(r, 0.025))
    code = int(core["stage"][0])
    if (code == 0 or code > 6) and leak > 0 and float(core["free_gib"][0]) - leak < float(
            core["requested_gib"][0]):
        _raise_for_stage(inst, config, 6, core, leak)
    if code:
        _raise_for_stage(inst, config, code, core)
    return core


def _check_runtime_oom(inst: LLMInstance, config: Mapping[str, Any],
                       core: Mapping[str, np.ndarray], r: np.random.Generator | None,
                       fidelity: str, requests: int) -> None:
    """Raise the runtime OOM of the load test: drawn from its probability with noise, when it
    is above one half without."""
    p_rt = float(core["p_runtime_oom"][0])
    if fidelity == "short":
        p_rt = 1.0 - (1.0 - p_rt) ** (SHORT_REQUESTS / FULL_REQUESTS)
    crashed = r.random() < p_rt if r is not None else p_rt > 0.5
    if crashed:
        done = int(RUNTIME_OOM_AT * requests)
        raise MemoryError(
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
            f"{2 * min(int(config['max_num_seqs']), int(config['max_num_batched_tokens'])) * inst.model.vocab * 4 / 2**20:.0f}"  # noqa: E501
            f" MiB. (raised by the engine core during the load test after {done} of "
            f"{requests} requests; EngineDeadError)")


def _add_noise(inst: LLMInstance, core: Mapping[str, np.ndarray], metrics: dict[str, float],
               r: np.random.Generator, fidelity: str, requests: int) -> None:
    """Multiply ``metrics`` in place by the run-to-run noise of a load test at ``fidelity``."""
    sigma = 0.04 if fidelity == "full" else 0.10
    f_tpot = _lognormal(r, sigma)
    f_ttft = _lognormal(r, 1.5 * sigma)
    f_rate = _lognormal(r, 0.5 * sigma) / f_tpot ** 0.5
    metrics["ttft_p95_ms"] *= f_ttft
    metrics["tpot_p95_ms"] *= f_tpot
    metrics["e2e_p95_ms"] *= (f_ttft + f_tpot) / 2.0
    for k in ("output_tokens_per_s", "output_tokens_per_s_per_gpu", "requests_per_s"):
        metrics[k] *= f_rate
    metrics["goodput"] = float(goodput(
        inst, metrics["requests_per_s"], metrics["ttft_p95_ms"], metrics["tpot_p95_ms"],
        float(core["s_ttft"][0]), float(core["s_tpot"][0])))
    test = 10.0 + requests / metrics["requests_per_s"]
    metrics["boot_s"] *= _lognormal(r, 0.05)
    metrics["eval_s"] = metrics["boot_s"] + test


def runtime_oom_probability(instance: LLMInstance | str, config: Mapping[str, Any]) -> float:
    """Noise-free probability that a full load test of ``config`` dies of a runtime OOM:
    ``sigmoid((u - u_safe) / 0.005)`` with ``u_safe = 1 - (context + CUDA graphs + sampler
    buffers) / total`` (meaningful for configurations that boot)."""
    return float(run_core(resolve_instance(instance), config_columns(config))["p_runtime_oom"][0])


def noise_free_stage(instance: LLMInstance | str, config: Mapping[str, Any]) -> str:
    """The name (from :data:`STAGES`) of where ``config`` fails noise-free, ``"ok"`` if not."""
    inst = resolve_instance(instance)
    core = run_core(inst, config_columns(config))
    code = int(core["stage"][0])
    if code == 0 and float(core["p_runtime_oom"][0]) > 0.5:
        code = len(STAGES) - 1
    return STAGES[code]
