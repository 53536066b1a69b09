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
``short`` (100 requests, noisier) and ``full`` (1,000 requests). Problems use ``full``.

Architecture numbers are those of the published Llama-3.1 configurations, GPU numbers those of
the data sheets; efficiency, overhead and boot-time coefficients are plausible round numbers,
not measurements.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from deploybench.problem import CostModel, Problem
from deploytune.outcome import (
    CrashKind,
    InvalidConfig,
    Objective,
    Status,
    TransientError,
    judge,
    parse_constraints,
)
from deploytune.space import Categorical, Config, Space

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
]

_GIB = float(2**30)
FIDELITIES = ("analytic", "boot", "short", "full")
"""Fidelities of :func:`simulate_llm`, cheapest first."""
LEAK_PROBABILITY = 0.03
"""Probability that a previous trial still holds 3-10% of the GPU's memory at startup."""

STAGES = ("ok", "heads_tp", "tp_gpus", "batched_lt_model_len", "batched_lt_seqs",
          "quant_unsupported", "snapshot", "weight_oom", "no_cache_blocks", "max_model_len",
          "cuda_graph_oom", "runtime_oom")
"""Stage codes of the noise-free evaluation (index = code), in the engine's order."""
_STATIC_STAGES = 5  # codes 1..5 are static InvalidConfig checks

# Knob grids (shared by every instance except the TP sizes).
_UTILIZATION = tuple(round(0.80 + 0.02 * i, 2) for i in range(10))
_MODEL_LEN = (4096, 8192, 16384, 32768, 65536, 131072)
_BATCHED = tuple(2**k for k in range(9, 17))  # 512 .. 65536
_SEQS = tuple(2**k for k in range(4, 11))  # 16 .. 1024
_QUANT = ("none", "fp8", "awq")
_KV_DTYPE = ("auto", "fp8")
_BOOL = (False, True)

# Engine and hardware priors.
_ALPHA, _BETA = 0.75, 0.45  # achieved fractions of HBM bandwidth and of peak FLOP/s (polyserve)
_AWQ_COMPUTE = 0.8  # AWQ GEMMs dequantise on the fly: a fraction of the bf16 compute rate
_FP8_KV_DEQUANT = 1.25  # fp8 KV on a GPU without fp8 conversion: dequantised reads cost more
_BLOCK = 16  # tokens per KV block
_CTX_GIB = 0.5  # CUDA context, outside the engine's budget
_NON_TORCH_GIB = 0.3  # cuBLAS workspaces etc. measured by the profile run
_ACT_C = {1: 11.0, 2: 6.5, 3: 6.0, 4: 5.0, 8: 5.0}  # AIC's activation factor c(TP), LLaMA
_NCCL_GIB = {1: 0.0, 2: 342 / 1024, 3: 392 / 1024, 4: 392 / 1024, 8: 392 / 1024}
_STEP_OVERHEAD_S = 2.0e-3  # scheduler, sampling, detokenisation per step
_PER_SEQ_OVERHEAD_S = 4.0e-6  # per running sequence per step
_LAUNCH_PER_LAYER_S = 0.12e-3  # eager kernel launches per layer per step (30% not hidden)
_MAX_CAPTURE = 512
_RUNTIME_OOM_WIDTH = 0.005
_FULL_REQUESTS, _SHORT_REQUESTS = 1000, 100
_RUNTIME_OOM_AT = 0.75  # a runtime OOM is found after this fraction of the load test
_ANALYTIC_S = 0.05


@dataclass(frozen=True)
class ModelArch:
    """A dense decoder-only transformer (Llama family).

    Attributes:
        name: Human-readable name.
        layers: Number of layers L.
        hidden: Hidden size h.
        n_q: Attention heads.
        n_kv: KV heads (grouped-query attention).
        head_dim: Head dimension d.
        intermediate: MLP intermediate size I.
        params: Parameter count P (embeddings and LM head included).
        vocab: Vocabulary size.
    """

    name: str
    layers: int
    hidden: int
    n_q: int
    n_kv: int
    head_dim: int
    intermediate: int
    params: float
    vocab: int = 128256

    @property
    def embedding_params(self) -> float:
        """Parameters of the (untied) embedding and LM head, kept in bf16 by quantisation."""
        return 2.0 * self.vocab * self.hidden


@dataclass(frozen=True)
class GPUSpec:
    """One GPU model.

    Attributes:
        name: Human-readable name.
        memory_gib: Total memory as reported by ``torch.cuda.mem_get_info``.
        bandwidth: HBM/GDDR bandwidth, bytes/s.
        flops_bf16: Dense bf16 tensor FLOP/s.
        flops_fp8: Dense fp8 tensor FLOP/s (0 without fp8 tensor cores).
        sm: Compute capability times ten (86, 89, 90).
        p2p_bandwidth: Per-GPU all-reduce link bandwidth, bytes/s.
        p2p_latency_s: Latency of one all-reduce.
        load_gibps: Checkpoint loading speed of the node, GiB/s (all ranks together).
    """

    name: str
    memory_gib: float
    bandwidth: float
    flops_bf16: float
    flops_fp8: float
    sm: int
    p2p_bandwidth: float
    p2p_latency_s: float
    load_gibps: float


@dataclass(frozen=True)
class LLMInstance:
    """A hidden model x node instance with its workload and SLOs.

    Attributes:
        name: Problem name (``llm-sim-...``).
        model: The served model.
        gpu: The GPU model.
        n_gpus: GPUs in the node.
        tp_choices: Offered ``tensor_parallel_size`` values (some invalid on purpose).
        objective: Metric maximised by the problem.
        slo_ttft_ms: p95 TTFT limit (a constraint, and the goodput SLO).
        slo_tpot_ms: p95 TPOT limit (a constraint, and the goodput SLO).
        prompt_tokens: Prompt length of every request.
        output_tokens: Output length of every request.
        shared_prefix: Tokens of the prompt shared by every request (a system prompt).
    """

    name: str
    model: ModelArch
    gpu: GPUSpec
    n_gpus: int
    tp_choices: tuple[int, ...]
    objective: str
    slo_ttft_ms: float
    slo_tpot_ms: float
    prompt_tokens: int = 1024
    output_tokens: int = 256
    shared_prefix: int = 256

    @property
    def constraints(self) -> list[str]:
        """The problem's constraint strings."""
        return [f"ttft_p95_ms <= {self.slo_ttft_ms:g}", f"tpot_p95_ms <= {self.slo_tpot_ms:g}"]


LLAMA_8B = ModelArch("Llama-3.1-8B", 32, 4096, 32, 8, 128, 14336, 8.03e9)
LLAMA_70B = ModelArch("Llama-3.1-70B", 80, 8192, 64, 8, 128, 28672, 70.6e9)
A10 = GPUSpec("A10-24GB", 22.49, 600e9, 125e12, 0.0, 86, 20e9, 25e-6, 1.2)
H100 = GPUSpec("H100-SXM-80GB", 79.19, 3.35e12, 989e12, 1979e12, 90, 450e9, 10e-6, 1.5)
"""The architectures (published Llama-3.1 configurations) and GPUs (data sheets; A10 without fp8
tensor cores, PCIe all-reduce; H100 SXM with NVLink)."""

INSTANCES: dict[str, LLMInstance] = {
    "llm-sim-8b-24gb": LLMInstance("llm-sim-8b-24gb", LLAMA_8B, A10, 4, (1, 2, 4),
                                   "output_tokens_per_s", 500.0, 80.0),
    "llm-sim-70b-2xh100": LLMInstance("llm-sim-70b-2xh100", LLAMA_70B, H100, 2, (1, 2, 4),
                                      "output_tokens_per_s", 1000.0, 100.0,
                                      prompt_tokens=2048),
    "llm-sim-70b-4xh100": LLMInstance("llm-sim-70b-4xh100", LLAMA_70B, H100, 4,
                                      (1, 2, 3, 4), "goodput", 500.0, 35.0),
    "llm-sim-70b-8xh100": LLMInstance("llm-sim-70b-8xh100", LLAMA_70B, H100, 8,
                                      (1, 2, 4, 8), "output_tokens_per_s_per_gpu",
                                      300.0, 60.0, prompt_tokens=3072, output_tokens=512),
}
"""The instances, by problem name."""


def llm_space(instance: LLMInstance | str) -> Space:
    """The search space of an instance: ten vLLM knobs, all categorical (enumerable).

    ``tensor_parallel_size`` offers the instance's :attr:`LLMInstance.tp_choices` (3 always, so
    the heads-divisibility check is reachable); the other knobs are shared:
    ``gpu_memory_utilization`` 0.80..0.98 by 0.02, ``max_model_len`` 4k..128k,
    ``max_num_batched_tokens`` 512..65536 and ``max_num_seqs`` 16..1024 (powers of two),
    ``enable_chunked_prefill``, ``enable_prefix_caching``, ``kv_cache_dtype`` (auto, fp8),
    ``quantization`` (none = bf16, fp8, awq) and ``enforce_eager``. ``max_model_len``,
    ``max_num_batched_tokens`` and ``max_num_seqs`` are declared ``memory: increasing`` (KV
    cache per request, the activation peak, CUDA graphs and sampler buffers only grow with
    them); ``gpu_memory_utilization`` is not (too high fails the startup snapshot, too low
    leaves no KV cache).
    """
    inst = INSTANCES[instance] if isinstance(instance, str) else instance
    return Space([
        Categorical("tensor_parallel_size", choices=inst.tp_choices),
        Categorical("gpu_memory_utilization", choices=_UTILIZATION),
        Categorical("max_model_len", choices=_MODEL_LEN, memory="increasing"),
        Categorical("max_num_batched_tokens", choices=_BATCHED, memory="increasing"),
        Categorical("max_num_seqs", choices=_SEQS, memory="increasing"),
        Categorical("enable_chunked_prefill", choices=_BOOL),
        Categorical("enable_prefix_caching", choices=_BOOL),
        Categorical("kv_cache_dtype", choices=_KV_DTYPE),
        Categorical("quantization", choices=_QUANT),
        Categorical("enforce_eager", choices=_BOOL),
    ])


# ------------------------------------------------------------------------------ vectorised core
_Cols = dict[str, np.ndarray]


def _columns(configs: list[Mapping[str, Any]] | Mapping[str, Any]) -> _Cols:
    """Configuration(s) -> numeric columns of the core."""
    rows = [configs] if isinstance(configs, Mapping) else configs

    def col(name: str, dtype: type) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=dtype)

    return {
        "tp": col("tensor_parallel_size", np.int64),
        "u": col("gpu_memory_utilization", np.float64),
        "lmax": col("max_model_len", np.int64),
        "T": col("max_num_batched_tokens", np.int64),
        "S": col("max_num_seqs", np.int64),
        "chunked": col("enable_chunked_prefill", bool),
        "prefix": col("enable_prefix_caching", bool),
        "kv_fp8": np.array([r["kv_cache_dtype"] == "fp8" for r in rows]),
        "quant": np.array([_QUANT.index(str(r["quantization"])) for r in rows], dtype=np.int64),
        "eager": col("enforce_eager", bool),
    }


def _capture_sizes(S: np.ndarray) -> np.ndarray:
    """Number of CUDA-graph batch sizes captured (1, 2, 4, then every 8 up to min(S, 512))."""
    top = np.minimum(S, _MAX_CAPTURE)
    return 3 + top // 8


def _graph_gib(inst: LLMInstance, S: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """CUDA-graph memory, GiB: grows with the captured sizes and the model's activations."""
    m = inst.model
    size = (m.hidden * m.layers / (4096 * 32)) ** 0.5 / np.sqrt(tp)
    return (0.15 + 1.6 * (np.minimum(S, _MAX_CAPTURE) / _MAX_CAPTURE) ** 0.8) * size


def _core(inst: LLMInstance, c: _Cols, *, alpha: float = _ALPHA, beta: float = _BETA,
          w_noise: Any = 1.0, nonkv_noise: Any = 1.0, graph_noise: Any = 1.0,
          preemption: bool = True) -> dict[str, np.ndarray]:
    """Noise-injected model of boot and load test for many configurations at once.

    Returns arrays: ``stage`` (index into :data:`STAGES`, runtime OOM excluded), the memory
    quantities, ``p_runtime_oom`` and the noise-free (given the memory noise) metrics.
    """
    m, g = inst.model, inst.gpu
    tp, u, lmax, T, S = c["tp"], c["u"], c["lmax"], c["T"], c["S"]
    chunked, prefix, kv_fp8, quant, eager = (c["chunked"], c["prefix"], c["kv_fp8"],
                                             c["quant"], c["eager"])
    tpf = tp.astype(np.float64)
    fp8_ok = g.flops_fp8 > 0

    stage = np.zeros(tp.shape, dtype=np.int64)

    def mark(code: int, cond: np.ndarray) -> None:
        stage[(stage == 0) & cond] = code

    mark(1, m.n_q % tp != 0)
    mark(2, tp > inst.n_gpus)
    mark(3, ~chunked & (lmax > T))
    mark(4, T < S)
    mark(5, (quant == 1) & (not fp8_ok))

    # memory, GiB
    total = g.memory_gib
    free0 = total - _CTX_GIB
    requested = u * total
    mark(6, free0 < requested)
    b_w = np.array([2.0, 1.0, 0.53])[quant]
    w_bytes = ((m.params - m.embedding_params) * b_w + m.embedding_params * 2.0) / tpf
    weights = w_bytes / _GIB * w_noise
    mark(7, weights > free0)
    act_c = np.vectorize(_ACT_C.get, otypes=[np.float64])(tp)
    nccl = np.vectorize(_NCCL_GIB.get, otypes=[np.float64])(tp)
    logits = np.minimum(S, T) * m.vocab * 4.0
    act = (2.0 * T * m.hidden * act_c + logits) / _GIB
    non_kv = weights + (act + nccl + _NON_TORCH_GIB) * nonkv_noise
    kv_budget = requested - non_kv
    b_kv = np.where(kv_fp8, 1.0, 2.0)
    kv_heads = np.ceil(m.n_kv / tpf)
    kv_tok = 2.0 * m.layers * kv_heads * m.head_dim * b_kv  # bytes per token per GPU
    blocks = np.floor(np.maximum(kv_budget, 0.0) * _GIB / (_BLOCK * kv_tok))
    mark(8, blocks <= 0)
    kv_tokens = blocks * _BLOCK
    mark(9, kv_tokens < lmax)
    graph = np.where(eager, 0.0, _graph_gib(inst, S, tp) * graph_noise)
    mark(10, requested + _CTX_GIB + graph > total)
    extra = 0.2 + 2.0 * np.minimum(S, T) * m.vocab * 4.0 / _GIB  # sampler sort buffers etc.
    u_safe = 1.0 - (_CTX_GIB + graph + extra) / total
    p_rt = 1.0 / (1.0 + np.exp(-np.clip((u - u_safe) / _RUNTIME_OOM_WIDTH, -60, 60)))
    headroom = total - _CTX_GIB - requested - graph

    # performance
    f_peak = np.where((quant == 1) & fp8_ok, g.flops_fp8, g.flops_bf16)
    f_eff = beta * f_peak * np.where(quant == 2, _AWQ_COMPUTE, 1.0)
    flop_tok = 2.0 * m.params / tpf
    out = float(inst.output_tokens)
    shared = np.where(prefix, float(inst.shared_prefix), 0.0)
    in_eff = inst.prompt_tokens - shared
    ctx_mean = inst.prompt_tokens + out / 2.0
    kv_read_tok = kv_tok * np.where(kv_fp8 & (g.sm < 89), _FP8_KV_DEQUANT, 1.0)
    capture_top = np.where(eager, 0, np.minimum(2 * S, _MAX_CAPTURE))  # token counts captured

    def step_s(n_dec: np.ndarray, tau: np.ndarray, pf_tokens: np.ndarray) -> np.ndarray:
        t_mem = (w_bytes + n_dec * ctx_mean * kv_read_tok) / (alpha * g.bandwidth)
        attn = 2.0 * pf_tokens * inst.prompt_tokens * m.n_q * m.head_dim * m.layers / tpf
        t_comp = tau * flop_tok / f_eff + attn / (beta * g.flops_bf16)
        t_launch = np.where(tau > capture_top, m.layers * _LAUNCH_PER_LAYER_S, 0.0)
        t_ar = np.where(tp > 1, 2.0 * m.layers * (
            g.p2p_latency_s + 2.0 * tau * m.hidden * 2.0 * (tpf - 1) / tpf / g.p2p_bandwidth),
            0.0)
        return (np.maximum(np.maximum(t_mem, t_comp), t_launch) + 0.3 * t_launch
                + _STEP_OVERHEAD_S
                + _PER_SEQ_OVERHEAD_S * n_dec + t_ar)

    conc = S.astype(np.float64)  # the load test runs at concurrency max_num_seqs
    pool = np.maximum(kv_tokens - shared, 0.0)
    foot = in_eff + out / 2.0
    n_kv = np.maximum(np.floor(pool / foot), 1.0)
    n_adm = np.maximum(np.floor(pool / (in_eff + _BLOCK)), 1.0)
    n_target = conc
    n = np.minimum(n_target, n_kv)
    admitted = np.minimum(n_target, n_adm)
    rho = np.clip((admitted - n) / admitted, 0.0, 0.9) if preemption else np.zeros(n.shape)
    recompute = rho * (inst.prompt_tokens + out / 2.0)  # prefill redone per request
    r_eff = (in_eff + recompute) / out  # prefill tokens per decode token

    # chunked prefill: decode and prefill share each step's token budget
    n_d_c = np.maximum(1.0, np.minimum(n, np.floor(T / (1.0 + r_eff))))
    pf_c = n_d_c * r_eff
    t_c = step_s(n_d_c, n_d_c + pf_c, pf_c)
    # a bad step: a burst of up to two more whole prompts within the token budget
    pf_burst = np.minimum(np.maximum(T - n_d_c, pf_c), pf_c + 2.0 * in_eff)
    t_burst = step_s(n_d_c, n_d_c + pf_burst, pf_burst)
    own_c = (np.ceil(in_eff / np.maximum(T - n_d_c, _BLOCK)) + 1.0) * t_c
    # no chunked prefill: whole prompts in separate prefill steps that stall decoding
    q = n * r_eff / np.maximum(in_eff, 1.0)  # prompts to prefill per decode step
    b = np.clip(q, 1.0, np.maximum(np.floor(T / in_eff), 1.0))
    t_pf = step_s(np.zeros(n.shape), b * in_eff, b * in_eff)
    t_dec = step_s(n, n, np.zeros(n.shape))
    t_u = t_dec + q / b * t_pf
    own_u = t_pf + 0.5 * t_dec

    n_d = np.where(chunked, n_d_c, n)
    tpot = np.where(chunked, t_c, t_u)
    own = np.where(chunked, own_c, own_u)
    rps = n_d / (out * tpot)
    ttft = np.maximum(own, conc / rps - (out - 1.0) * tpot)
    queueing = n_d < conc
    s_ttft = 0.30 + np.where(queueing, 0.15, 0.0) + np.where(chunked, 0.0, 0.10)
    s_tpot = np.where(chunked, 0.06, 0.12)
    pre = 1.0 + 0.6 * np.minimum(1.0, rho / 0.05)
    ttft_p95 = ttft * np.exp(1.645 * s_ttft)
    tpot_tail = np.where(chunked, 0.85 * t_c + 0.15 * t_burst, tpot)
    tpot_p95 = tpot_tail * np.exp(1.645 * s_tpot) * pre
    e2e = ttft + (out - 1.0) * tpot * (1.0 + 0.5 * rho)
    e2e_p95 = e2e * np.exp(1.645 * 0.12)

    # boot and test seconds
    static_s = 5.0 + 0.5 * tpf
    init_s = 8.0 + 2.0 * tpf
    load_s = 5.0 + weights * tpf / g.load_gibps
    profile_s = 4.0 + T / 8192.0
    compile_s = np.where(eager, 0.0, 20.0 + 0.4 * m.layers)
    capture_s = np.where(eager, 0.0, _capture_sizes(S) * (0.2 + 0.004 * m.layers))
    boot = static_s + init_s + load_s + profile_s + compile_s + capture_s

    return {
        "stage": stage, "weights_gib": weights, "free_gib": free0 + 0.0 * u,
        "requested_gib": requested, "kv_budget_gib": kv_budget, "kv_tok_bytes": kv_tok,
        "kv_cache_tokens": kv_tokens, "graph_gib": graph, "p_runtime_oom": p_rt,
        "memory_headroom_gib": headroom, "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3,
        "ttft_p95_ms": ttft_p95 * 1e3, "tpot_p95_ms": tpot_p95 * 1e3, "e2e_p95_ms": e2e_p95 * 1e3,
        "s_ttft": s_ttft, "s_tpot": s_tpot + np.log(pre) / 1.645, "requests_per_s": rps,
        "preempt_fraction": rho, "static_s": static_s, "init_s": init_s, "load_s": load_s,
        "profile_s": profile_s, "compile_s": compile_s, "capture_s": capture_s, "boot_s": boot,
        "max_concurrency": kv_tokens / lmax, "running": n_d,
    }


def _goodput(inst: LLMInstance, rps: Any, ttft_p95: Any, tpot_p95: Any, s_ttft: Any,
             s_tpot: Any) -> Any:
    """Requests/s meeting both SLOs, per-request TTFT and TPOT taken as independent lognormals
    with the given p95s and log-spreads."""
    def share(p95: Any, s: Any, limit: float) -> Any:
        return ndtr((np.log(limit) - np.log(p95)) / s + 1.645)

    return rps * share(ttft_p95, s_ttft, inst.slo_ttft_ms) * share(tpot_p95, s_tpot,
                                                                  inst.slo_tpot_ms)


def _test_s(core: Mapping[str, np.ndarray], requests: int) -> np.ndarray:
    """Seconds of a load test of ``requests`` requests (after a warm-up)."""
    return 10.0 + requests / core["requests_per_s"]


def _metrics_arrays(inst: LLMInstance, core: Mapping[str, np.ndarray],
                    requests: int = _FULL_REQUESTS) -> dict[str, np.ndarray]:
    """The full-fidelity metrics (noise-free given ``core``) as arrays."""
    rps = core["requests_per_s"]
    tps = rps * inst.output_tokens
    test = _test_s(core, requests)
    return {
        "ttft_p95_ms": core["ttft_p95_ms"],
        "tpot_p95_ms": core["tpot_p95_ms"],
        "e2e_p95_ms": core["e2e_p95_ms"],
        "output_tokens_per_s": tps,
        "output_tokens_per_s_per_gpu": tps / core["_tp"],
        "requests_per_s": rps,
        "goodput": _goodput(inst, rps, core["ttft_p95_ms"], core["tpot_p95_ms"],
                            core["s_ttft"], core["s_tpot"]),
        "kv_cache_tokens": core["kv_cache_tokens"],
        "max_concurrency": core["max_concurrency"],
        "preemptions": np.round(core["preempt_fraction"] * requests),
        "memory_headroom_gib": core["memory_headroom_gib"],
        "boot_s": core["boot_s"],
        "eval_s": core["boot_s"] + test,
    }


def _run_core(inst: LLMInstance, cols: _Cols, **kw: Any) -> dict[str, np.ndarray]:
    core = _core(inst, cols, **kw)
    core["_tp"] = cols["tp"]
    return core


# ------------------------------------------------------------------------------ scalar simulator
def _lognormal(rng: np.random.Generator | None, sigma: float) -> float:
    return float(math.exp(rng.normal(0.0, sigma))) if rng is not None and sigma > 0 else 1.0


def _instance(instance: LLMInstance | str) -> LLMInstance:
    return INSTANCES[instance] if isinstance(instance, str) else instance


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
        used = free + _CTX_GIB - chunk * 0.4
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
        need = lmax * kv_tok / _GIB
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
        left = max(total - _CTX_GIB - u * total, 0.0)
        raise MemoryError(
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
            f"{max(graph - left, 0.01) * 1024:.0f} MiB. GPU 0 has a total capacity of "
            f"{total:.2f} GiB of which {left * 1024:.0f} MiB is free. (raised while capturing "
            f"CUDA graphs for batch sizes up to {min(S, _MAX_CAPTURE)})")
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
        Metrics (see the module docstring); ``eval_s`` is the simulated wall time.

    Raises:
        InvalidConfig: A static check failed.
        MemoryError: A startup memory check, weight load, CUDA-graph capture or the load test
            ran out of memory.
        TransientError: A previous trial's leaked memory failed the startup snapshot.
        ValueError: For an unknown fidelity.
    """
    if fidelity not in FIDELITIES:
        raise ValueError(f"unknown fidelity {fidelity!r}; one of {', '.join(FIDELITIES)}")
    inst = _instance(instance)
    cols = _columns(config)
    if fidelity == "analytic":
        core = _run_core(inst, cols, alpha=_ALPHA * 1.2, beta=_BETA * 0.8, preemption=False)
        code = int(core["stage"][0])
        if 0 < code <= 9 and code != 6:
            _raise_for_stage(inst, config, code, core)
        metrics = {k: float(v[0]) for k, v in _metrics_arrays(inst, core).items()}
        metrics["eval_s"] = _ANALYTIC_S
        return metrics
    if noise and rng is None:
        rng = np.random.default_rng()
    r = rng if noise else None
    leak = 0.0
    if r is not None and r.random() < LEAK_PROBABILITY:
        leak = inst.gpu.memory_gib * float(r.uniform(0.03, 0.10))
    core = _run_core(inst, cols, w_noise=_lognormal(r, 0.005),
                     nonkv_noise=_lognormal(r, 0.025), graph_noise=_lognormal(r, 0.025))
    code = int(core["stage"][0])
    if (code == 0 or code > 6) and leak > 0 and float(core["free_gib"][0]) - leak < float(
            core["requested_gib"][0]):
        _raise_for_stage(inst, config, 6, core, leak)
    if code:
        _raise_for_stage(inst, config, code, core)
    if fidelity == "boot":
        return {"kv_cache_tokens": float(core["kv_cache_tokens"][0]),
                "max_concurrency": float(core["max_concurrency"][0]),
                "memory_headroom_gib": float(core["memory_headroom_gib"][0]),
                "boot_s": float(core["boot_s"][0]), "eval_s": float(core["boot_s"][0])}
    requests = _FULL_REQUESTS if fidelity == "full" else _SHORT_REQUESTS
    p_rt = float(core["p_runtime_oom"][0])
    if fidelity == "short":
        p_rt = 1.0 - (1.0 - p_rt) ** (_SHORT_REQUESTS / _FULL_REQUESTS)
    crashed = r.random() < p_rt if r is not None else p_rt > 0.5
    if crashed:
        done = int(_RUNTIME_OOM_AT * requests)
        raise MemoryError(
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
            f"{2 * min(int(config['max_num_seqs']), int(config['max_num_batched_tokens'])) * inst.model.vocab * 4 / 2**20:.0f}"  # noqa: E501
            f" MiB. (raised by the engine core during the load test after {done} of "
            f"{requests} requests; EngineDeadError)")
    metrics = {k: float(v[0]) for k, v in _metrics_arrays(inst, core, requests).items()}
    if r is not None:
        sigma = 0.04 if fidelity == "full" else 0.10
        f_tpot = _lognormal(r, sigma)
        f_ttft = _lognormal(r, 1.5 * sigma)
        f_rate = _lognormal(r, 0.5 * sigma) / f_tpot ** 0.5
        metrics["ttft_p95_ms"] *= f_ttft
        metrics["tpot_p95_ms"] *= f_tpot
        metrics["e2e_p95_ms"] *= (f_ttft + f_tpot) / 2.0
        for k in ("output_tokens_per_s", "output_tokens_per_s_per_gpu", "requests_per_s"):
            metrics[k] *= f_rate
        metrics["goodput"] = float(_goodput(
            inst, metrics["requests_per_s"], metrics["ttft_p95_ms"], metrics["tpot_p95_ms"],
            float(core["s_ttft"][0]), float(core["s_tpot"][0])))
        test = 10.0 + requests / metrics["requests_per_s"]
        metrics["boot_s"] *= _lognormal(r, 0.05)
        metrics["eval_s"] = metrics["boot_s"] + test
    return metrics


def runtime_oom_probability(instance: LLMInstance | str, config: Mapping[str, Any]) -> float:
    """Noise-free probability that a full load test of ``config`` dies of a runtime OOM:
    ``sigmoid((u - u_safe) / 0.005)`` with ``u_safe = 1 - (context + CUDA graphs + sampler
    buffers) / total`` (meaningful for configurations that boot)."""
    return float(_run_core(_instance(instance), _columns(config))["p_runtime_oom"][0])


def noise_free_stage(instance: LLMInstance | str, config: Mapping[str, Any]) -> str:
    """The name (from :data:`STAGES`) of where ``config`` fails noise-free, ``"ok"`` if not."""
    inst = _instance(instance)
    core = _run_core(inst, _columns(config))
    code = int(core["stage"][0])
    if code == 0 and float(core["p_runtime_oom"][0]) > 0.5:
        code = len(STAGES) - 1
    return STAGES[code]


# --------------------------------------------------------------------------------------- costs
def fidelity_cost_s(instance: LLMInstance | str, config: Mapping[str, Any],
                    fidelity: str = "full", outcome: str | None = None) -> float:
    """Simulated seconds of one evaluation of ``config`` at ``fidelity`` (deterministic).

    Args:
        instance: The instance or its name.
        config: A configuration.
        fidelity: One of :data:`FIDELITIES`.
        outcome: Where it ended: a name from :data:`STAGES` (``"ok"`` = it ran to the end),
            ``"transient"`` (a leaked snapshot: static checks + process start) or ``None`` for
            the noise-free stage of ``config``.

    Returns:
        Seconds: static checks 5-9 s; a weight-load OOM costs the load up to the failure; the
        no-cache-blocks and max-model-len errors cost load + profile; a CUDA-graph OOM adds the
        compilation and capture; a runtime OOM costs boot + 75% of the load test; a run that
        ends costs boot + the load test (``boot`` fidelity: boot only; ``analytic``: 0.05 s).
    """
    if fidelity not in FIDELITIES:
        raise ValueError(f"unknown fidelity {fidelity!r}; one of {', '.join(FIDELITIES)}")
    if fidelity == "analytic":
        return _ANALYTIC_S
    inst = _instance(instance)
    core = _run_core(inst, _columns(config))
    stage = outcome if outcome is not None else noise_free_stage(inst, config)
    c = {k: float(v[0]) for k, v in core.items()}
    static = c["static_s"]
    if stage in STAGES[1:_STATIC_STAGES + 1]:
        return static
    if stage in ("snapshot", "transient"):
        return static + c["init_s"]
    if stage == "weight_oom":
        reached = min(1.0, c["free_gib"] / max(c["weights_gib"], 1e-9))
        return static + c["init_s"] + c["load_s"] * reached
    if stage in ("no_cache_blocks", "max_model_len"):
        return static + c["init_s"] + c["load_s"] + c["profile_s"]
    if stage == "cuda_graph_oom":
        return c["boot_s"]
    if fidelity == "boot":
        return c["boot_s"]
    requests = _FULL_REQUESTS if fidelity == "full" else _SHORT_REQUESTS
    test = float(_test_s(core, requests)[0])
    if stage == "runtime_oom":
        return c["boot_s"] + _RUNTIME_OOM_AT * test
    if stage == "ok":
        return c["boot_s"] + test
    raise ValueError(f"unknown outcome {stage!r}; one of {', '.join(STAGES)} or 'transient'")


@dataclass(frozen=True)
class LLMSimCost(CostModel):
    """Config-dependent seconds of a full-fidelity evaluation (see :func:`fidelity_cost_s`).

    The crash kind and the configuration's noise-free stage say where it failed: an ``oom``
    crash of a configuration that fails at startup noise-free costs that stage; of one that
    boots noise-free, a runtime OOM when its probability is above 0.1%, otherwise a CUDA-graph
    OOM (boot). An aborted evaluation costs boot plus a quarter of the load test.
    """

    instance: str = "llm-sim-8b-24gb"

    def seconds(self, config: Config, status: Status, crash_kind: CrashKind | None) -> float:
        """Simulated seconds of an evaluation of ``config`` that ended with ``status``."""
        inst = INSTANCES[self.instance]
        stage = noise_free_stage(inst, config)
        if status is Status.CRASHED:
            kind = crash_kind or CrashKind.RUNTIME_ERROR
            if kind is CrashKind.INVALID_CONFIG:
                return float(5.0 + 0.5 * int(config["tensor_parallel_size"]))
            if kind is CrashKind.TRANSIENT:
                return fidelity_cost_s(inst, config, "full", "transient")
            if kind is CrashKind.OOM and stage in ("ok", "runtime_oom"):
                p = float(_run_core(inst, _columns(config))["p_runtime_oom"][0])
                stage = "runtime_oom" if p > 1e-3 else "cuda_graph_oom"
            elif stage == "ok" or stage in STAGES[1:_STATIC_STAGES + 1]:
                stage = "cuda_graph_oom" if stage == "ok" else stage
            return fidelity_cost_s(inst, config, "full", stage)
        if status is Status.ABORTED:
            core = _run_core(inst, _columns(config))
            return float(core["boot_s"][0] + 0.25 * _test_s(core, _FULL_REQUESTS)[0])
        return fidelity_cost_s(inst, config, "full", "ok")


# ------------------------------------------------------------------------------- enumeration
def _grid_columns(inst: LLMInstance) -> tuple[_Cols, list[tuple[Any, ...]]]:
    """Columns of every configuration of the instance's space, in ``itertools.product`` order."""
    space = llm_space(inst)
    choices = [p.choices for p in space]  # type: ignore[attr-defined]
    idx = np.indices([len(ch) for ch in choices]).reshape(len(choices), -1)
    vals = [np.asarray(ch, dtype=object)[i] for ch, i in zip(choices, idx, strict=True)]
    named = dict(zip(space.names, vals, strict=True))
    cols: _Cols = {
        "tp": named["tensor_parallel_size"].astype(np.int64),
        "u": named["gpu_memory_utilization"].astype(np.float64),
        "lmax": named["max_model_len"].astype(np.int64),
        "T": named["max_num_batched_tokens"].astype(np.int64),
        "S": named["max_num_seqs"].astype(np.int64),
        "chunked": named["enable_chunked_prefill"].astype(bool),
        "prefix": named["enable_prefix_caching"].astype(bool),
        "kv_fp8": named["kv_cache_dtype"] == "fp8",
        "quant": np.array([_QUANT.index(q) for q in _QUANT], dtype=np.int64)[
            idx[space.names.index("quantization")]],
        "eager": named["enforce_eager"].astype(bool),
    }
    return cols, choices


def enumerate_metrics(instance: LLMInstance | str) -> tuple[list[Config], dict[str, np.ndarray]]:
    """Noise-free full-fidelity results of every configuration of the instance's space.

    Returns:
        ``(configs, arrays)``: the configurations in ``itertools.product`` order of the space's
        choices, and arrays aligned with them: ``stage`` (index into :data:`STAGES`, runtime
        OOM included) and every metric of :func:`simulate_llm` (meaningful where
        ``stage == 0``).
    """
    inst = _instance(instance)
    cols, choices = _grid_columns(inst)
    core = _run_core(inst, cols)
    arrays = _metrics_arrays(inst, core)
    stage = core["stage"].copy()
    stage[(stage == 0) & (core["p_runtime_oom"] > 0.5)] = len(STAGES) - 1
    arrays["stage"] = stage
    names = llm_space(inst).names
    configs = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]
    return configs, arrays


def _feasible_grid(inst: LLMInstance) -> tuple[np.ndarray, dict[str, np.ndarray],
                                               list[tuple[Any, ...]]]:
    """Noise-free feasibility of every grid configuration (a runtime OOM more likely than not
    counts as a crash), the metric arrays, and the choices per parameter (grid order)."""
    cols, choices = _grid_columns(inst)
    core = _run_core(inst, cols)
    arrays = _metrics_arrays(inst, core)
    ok = (core["stage"] == 0) & (core["p_runtime_oom"] <= 0.5)
    for con in parse_constraints(inst.constraints):
        ok &= arrays[con.metric] <= con.limit if con.op == "<=" else arrays[con.metric] >= con.limit
    return ok, arrays, choices


def grid_optimum(instance: LLMInstance | str) -> tuple[float, Config]:
    """The best noise-free feasible objective over the whole grid, and its configuration.

    Ties go to the first configuration in ``itertools.product`` order of the space's choices.

    Raises:
        ValueError: When no configuration is feasible.
    """
    inst = _instance(instance)
    ok, arrays, choices = _feasible_grid(inst)
    if not ok.any():
        raise ValueError(f"{inst.name}: no feasible configuration in the grid")
    value = np.where(ok, arrays[inst.objective], -np.inf)
    best = int(np.argmax(value))
    shape = [len(ch) for ch in choices]
    pos = np.unravel_index(best, shape)
    config = {p: ch[int(i)] for p, ch, i in zip(llm_space(inst).names, choices, pos, strict=True)}
    return float(value[best]), config


def feasible_family_values(instance: LLMInstance | str,
                           families: tuple[str, ...] = ("tensor_parallel_size", "quantization"),
                           ) -> dict[str, tuple[Any, ...]]:
    """For each family parameter, the values that occur in at least one noise-free feasible
    configuration of the whole grid (in the order of the parameter's choices)."""
    inst = _instance(instance)
    ok, _, choices = _feasible_grid(inst)
    shape = [len(ch) for ch in choices]
    names = llm_space(inst).names
    feasible = ok.reshape(shape)
    out: dict[str, tuple[Any, ...]] = {}
    for fam in families:
        axis = names.index(fam)
        other = tuple(i for i in range(len(shape)) if i != axis)
        any_ok = np.asarray(feasible.any(axis=other)).tolist()
        out[fam] = tuple(v for v, flag in zip(choices[axis], any_ok, strict=True) if flag)
    return out


def _judge_noise_free(inst: LLMInstance, config: Config) -> float | None:
    try:
        metrics = simulate_llm(inst, config, noise=False)
    except (InvalidConfig, MemoryError, TransientError):
        return None
    outcome = judge(metrics, Objective(inst.objective, "maximize"),
                    parse_constraints(inst.constraints))
    return outcome.value if outcome.status is Status.FEASIBLE else None


def random_reference(instance: LLMInstance | str, n: int = 20000) -> float:
    """Median noise-free objective of the feasible ones among ``n`` random configurations.

    Configuration ``i`` is ``llm_space(instance).sample(np.random.default_rng(i))``.
    """
    inst = _instance(instance)
    space = llm_space(inst)
    values = [v for i in range(n)
              if (v := _judge_noise_free(inst, space.sample(np.random.default_rng(i))))
              is not None]
    return float(statistics.median(values))


# ------------------------------------------------------------------------------------ problems
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
        feasible_families=FEASIBLE_FAMILIES.get(name))


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
