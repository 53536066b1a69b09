"""The vectorised model of ``llm-sim``: memory, startup stages, roofline step times, load-test
latency and throughput, and boot seconds, for many configurations at once (NumPy columns).

The formulas are described in :mod:`deploybench.llm_sim`. :func:`run_core` evaluates the model
with the memory noise given; :func:`metrics_arrays` turns its result into the full-fidelity
metrics. Efficiency, overhead and boot-time coefficients are plausible round numbers, not
measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from deploybench.llm_sim_hardware import QUANTIZATIONS, LLMInstance

__all__ = [
    "ALPHA",
    "BETA",
    "CTX_GIB",
    "FULL_REQUESTS",
    "GIB",
    "MAX_CAPTURE",
    "SHORT_REQUESTS",
    "STAGES",
    "STATIC_STAGES",
    "Cols",
    "config_columns",
    "goodput",
    "load_test_seconds",
    "metrics_arrays",
    "run_core",
]

GIB = float(2**30)
"""Bytes per GiB."""

STAGES = ("ok", "heads_tp", "tp_gpus", "batched_lt_model_len", "batched_lt_seqs",
          "quant_unsupported", "snapshot", "weight_oom", "no_cache_blocks", "max_model_len",
          "cuda_graph_oom", "runtime_oom")
"""Stage codes of the noise-free evaluation (index = code), in the engine's order."""
STATIC_STAGES = 5
"""Codes 1..STATIC_STAGES are static InvalidConfig checks."""

# Engine and hardware priors.
ALPHA = 0.75
"""Achieved fraction of the HBM bandwidth (polyserve)."""
BETA = 0.45
"""Achieved fraction of the peak FLOP/s (polyserve)."""
_AWQ_COMPUTE = 0.8  # AWQ GEMMs dequantise on the fly: a fraction of the bf16 compute rate
_FP8_KV_DEQUANT = 1.25  # fp8 KV on a GPU without fp8 conversion: dequantised reads cost more
_BLOCK = 16  # tokens per KV block
CTX_GIB = 0.5
"""CUDA context, GiB, outside the engine's budget."""
_NON_TORCH_GIB = 0.3  # cuBLAS workspaces etc. measured by the profile run
_ACT_C = {1: 11.0, 2: 6.5, 3: 6.0, 4: 5.0, 8: 5.0}  # AIC's activation factor c(TP), LLaMA
_NCCL_GIB = {1: 0.0, 2: 342 / 1024, 3: 392 / 1024, 4: 392 / 1024, 8: 392 / 1024}
_STEP_OVERHEAD_S = 2.0e-3  # scheduler, sampling, detokenisation per step
_PER_SEQ_OVERHEAD_S = 4.0e-6  # per running sequence per step
_LAUNCH_PER_LAYER_S = 0.12e-3  # eager kernel launches per layer per step (30% not hidden)
MAX_CAPTURE = 512
"""Largest batch size captured in a CUDA graph."""
_RUNTIME_OOM_WIDTH = 0.005
FULL_REQUESTS = 1000
"""Requests of a full-fidelity load test."""
SHORT_REQUESTS = 100
"""Requests of a short load test."""

Cols = dict[str, np.ndarray]
"""Numeric columns of configurations (``tp``, ``u``, ``lmax``, ``T``, ``S``, ``chunked``,
``prefix``, ``kv_fp8``, ``quant``, ``eager``)."""


def config_columns(configs: list[Mapping[str, Any]] | Mapping[str, Any]) -> Cols:
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
        "quant": np.array([QUANTIZATIONS.index(str(r["quantization"])) for r in rows],
                          dtype=np.int64),
        "eager": col("enforce_eager", bool),
    }


def _capture_sizes(S: np.ndarray) -> np.ndarray:
    """Number of CUDA-graph batch sizes captured (1, 2, 4, then every 8 up to min(S, 512))."""
    top = np.minimum(S, MAX_CAPTURE)
    return 3 + top // 8


def _graph_gib(inst: LLMInstance, S: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """CUDA-graph memory, GiB: grows with the captured sizes and the model's activations."""
    m = inst.model
    size = (m.hidden * m.layers / (4096 * 32)) ** 0.5 / np.sqrt(tp)
    return (0.15 + 1.6 * (np.minimum(S, MAX_CAPTURE) / MAX_CAPTURE) ** 0.8) * size


def _mark(stage: np.ndarray, code: int, cond: np.ndarray) -> None:
    """Set stage ``code`` where ``cond`` holds and no earlier stage failed."""
    stage[(stage == 0) & cond] = code


def _static_stage(inst: LLMInstance, c: Cols) -> np.ndarray:
    """Stage codes of the static checks (1-5; 0 where every check passes)."""
    m, g = inst.model, inst.gpu
    tp, lmax, T, S = c["tp"], c["lmax"], c["T"], c["S"]
    fp8_ok = g.flops_fp8 > 0
    stage = np.zeros(tp.shape, dtype=np.int64)
    _mark(stage, 1, m.n_q % tp != 0)
    _mark(stage, 2, tp > inst.n_gpus)
    _mark(stage, 3, ~c["chunked"] & (lmax > T))
    _mark(stage, 4, T < S)
    _mark(stage, 5, (c["quant"] == 1) & (not fp8_ok))
    return stage


def _weight_bytes(inst: LLMInstance, c: Cols) -> np.ndarray:
    """Bytes of weights per GPU (quantised layers, bf16 embeddings and LM head)."""
    m = inst.model
    tpf = c["tp"].astype(np.float64)
    b_w = np.array([2.0, 1.0, 0.53])[c["quant"]]
    return ((m.params - m.embedding_params) * b_w + m.embedding_params * 2.0) / tpf


def _memory(inst: LLMInstance, c: Cols, stage: np.ndarray, w_noise: Any, nonkv_noise: Any,
            graph_noise: Any) -> dict[str, np.ndarray]:
    """Memory quantities (GiB unless named otherwise), marking the memory stages 6-10 in
    ``stage``, and the noise-free probability of a runtime OOM."""
    m, g = inst.model, inst.gpu
    tp, u, lmax, T, S = c["tp"], c["u"], c["lmax"], c["T"], c["S"]
    tpf = tp.astype(np.float64)
    total = g.memory_gib
    free0 = total - CTX_GIB
    requested = u * total
    _mark(stage, 6, free0 < requested)
    weights = _weight_bytes(inst, c) / GIB * w_noise
    _mark(stage, 7, weights > free0)
    act_c = np.vectorize(_ACT_C.get, otypes=[np.float64])(tp)
    nccl = np.vectorize(_NCCL_GIB.get, otypes=[np.float64])(tp)
    logits = np.minimum(S, T) * m.vocab * 4.0
    act = (2.0 * T * m.hidden * act_c + logits) / GIB
    non_kv = weights + (act + nccl + _NON_TORCH_GIB) * nonkv_noise
    kv_budget = requested - non_kv
    b_kv = np.where(c["kv_fp8"], 1.0, 2.0)
    kv_heads = np.ceil(m.n_kv / tpf)
    kv_tok = 2.0 * m.layers * kv_heads * m.head_dim * b_kv  # bytes per token per GPU
    blocks = np.floor(np.maximum(kv_budget, 0.0) * GIB / (_BLOCK * kv_tok))
    _mark(stage, 8, blocks <= 0)
    kv_tokens = blocks * _BLOCK
    _mark(stage, 9, kv_tokens < lmax)
    graph = np.where(c["eager"], 0.0, _graph_gib(inst, S, tp) * graph_noise)
    _mark(stage, 10, requested + CTX_GIB + graph > total)
    extra = 0.2 + 2.0 * np.minimum(S, T) * m.vocab * 4.0 / GIB  # sampler sort buffers etc.
    u_safe = 1.0 - (CTX_GIB + graph + extra) / total
    p_rt = 1.0 / (1.0 + np.exp(-np.clip((u - u_safe) / _RUNTIME_OOM_WIDTH, -60, 60)))
    headroom = total - CTX_GIB - requested - graph
    return {
        "weights_gib": weights, "free_gib": free0 + 0.0 * u,
        "requested_gib": requested, "kv_budget_gib": kv_budget, "kv_tok_bytes": kv_tok,
        "kv_cache_tokens": kv_tokens, "graph_gib": graph, "p_runtime_oom": p_rt,
        "memory_headroom_gib": headroom,
    }


@dataclass(frozen=True, eq=False)
class _StepModel:
    """Seconds of one engine step: ``max(memory, compute, launch) + overheads + all-reduce``."""

    inst: LLMInstance
    tp: np.ndarray
    tpf: np.ndarray
    w_bytes: np.ndarray
    ctx_mean: float
    kv_read_tok: np.ndarray
    flop_tok: np.ndarray
    f_eff: np.ndarray
    capture_top: np.ndarray
    alpha: float
    beta: float

    def seconds(self, n_dec: np.ndarray, tau: np.ndarray, pf_tokens: np.ndarray) -> np.ndarray:
        """A step of ``n_dec`` decoding sequences, ``tau`` tokens, ``pf_tokens`` of prefill."""
        inst, tp, tpf = self.inst, self.tp, self.tpf
        m, g = inst.model, inst.gpu
        t_mem = (self.w_bytes + n_dec * self.ctx_mean * self.kv_read_tok) / (
            self.alpha * g.bandwidth)
        attn = 2.0 * pf_tokens * inst.prompt_tokens * m.n_q * m.head_dim * m.layers / tpf
        t_comp = tau * self.flop_tok / self.f_eff + attn / (self.beta * g.flops_bf16)
        t_launch = np.where(tau > self.capture_top, m.layers * _LAUNCH_PER_LAYER_S, 0.0)
        t_ar = np.where(tp > 1, 2.0 * m.layers * (
            g.p2p_latency_s + 2.0 * tau * m.hidden * 2.0 * (tpf - 1) / tpf / g.p2p_bandwidth),
            0.0)
        return (np.maximum(np.maximum(t_mem, t_comp), t_launch) + 0.3 * t_launch
                + _STEP_OVERHEAD_S
                + _PER_SEQ_OVERHEAD_S * n_dec + t_ar)


def _step_model(inst: LLMInstance, c: Cols, kv_tok: np.ndarray, alpha: float,
                beta: float) -> _StepModel:
    """The step-time model of the configurations (compute rates, KV reads, graph sizes)."""
    m, g = inst.model, inst.gpu
    tp, S, quant, eager = c["tp"], c["S"], c["quant"], c["eager"]
    tpf = tp.astype(np.float64)
    fp8_ok = g.flops_fp8 > 0
    f_peak = np.where((quant == 1) & fp8_ok, g.flops_fp8, g.flops_bf16)
    f_eff = beta * f_peak * np.where(quant == 2, _AWQ_COMPUTE, 1.0)
    flop_tok = 2.0 * m.params / tpf
    out = float(inst.output_tokens)
    ctx_mean = inst.prompt_tokens + out / 2.0
    kv_read_tok = kv_tok * np.where(c["kv_fp8"] & (g.sm < 89), _FP8_KV_DEQUANT, 1.0)
    capture_top = np.where(eager, 0, np.minimum(2 * S, MAX_CAPTURE))  # token counts captured
    return _StepModel(inst, tp, tpf, _weight_bytes(inst, c), ctx_mean, kv_read_tok, flop_tok,
                      f_eff, capture_top, alpha, beta)


def _load_test(inst: LLMInstance, c: Cols, kv_tokens: np.ndarray, step: _StepModel,
               preemption: bool) -> dict[str, np.ndarray]:
    """Latency percentiles, throughput and preemption of the closed-loop load test."""
    T, S, chunked = c["T"], c["S"], c["chunked"]
    out = float(inst.output_tokens)
    shared = np.where(c["prefix"], float(inst.shared_prefix), 0.0)
    in_eff = inst.prompt_tokens - shared
    step_s = step.seconds

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
    return {
        "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3,
        "ttft_p95_ms": ttft_p95 * 1e3, "tpot_p95_ms": tpot_p95 * 1e3, "e2e_p95_ms": e2e_p95 * 1e3,
        "s_ttft": s_ttft, "s_tpot": s_tpot + np.log(pre) / 1.645, "requests_per_s": rps,
        "preempt_fraction": rho, "running": n_d,
    }


def _boot_seconds(inst: LLMInstance, c: Cols, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Seconds of each startup phase and of the whole boot."""
    m, g = inst.model, inst.gpu
    T, S, eager = c["T"], c["S"], c["eager"]
    tpf = c["tp"].astype(np.float64)
    static_s = 5.0 + 0.5 * tpf
    init_s = 8.0 + 2.0 * tpf
    load_s = 5.0 + weights * tpf / g.load_gibps
    profile_s = 4.0 + T / 8192.0
    compile_s = np.where(eager, 0.0, 20.0 + 0.4 * m.layers)
    capture_s = np.where(eager, 0.0, _capture_sizes(S) * (0.2 + 0.004 * m.layers))
    boot = static_s + init_s + load_s + profile_s + compile_s + capture_s
    return {"static_s": static_s, "init_s": init_s, "load_s": load_s, "profile_s": profile_s,
            "compile_s": compile_s, "capture_s": capture_s, "boot_s": boot}


def _core(inst: LLMInstance, c: Cols, *, alpha: float = ALPHA, beta: float = BETA,
          w_noise: Any = 1.0, nonkv_noise: Any = 1.0, graph_noise: Any = 1.0,
          preemption: bool = True) -> dict[str, np.ndarray]:
    """Noise-injected model of boot and load test for many configurations at once.

    Returns arrays: ``stage`` (index into :data:`STAGES`, runtime OOM excluded), the memory
    quantities, ``p_runtime_oom`` and the noise-free (given the memory noise) metrics.
    """
    stage = _static_stage(inst, c)
    memory = _memory(inst, c, stage, w_noise, nonkv_noise, graph_noise)
    step = _step_model(inst, c, memory["kv_tok_bytes"], alpha, beta)
    load_test = _load_test(inst, c, memory["kv_cache_tokens"], step, preemption)
    running = load_test.pop("running")
    return {"stage": stage, **memory, **load_test,
            **_boot_seconds(inst, c, memory["weights_gib"]),
            "max_concurrency": memory["kv_cache_tokens"] / c["lmax"], "running": running}


def goodput(inst: LLMInstance, rps: Any, ttft_p95: Any, tpot_p95: Any, s_ttft: Any,
            s_tpot: Any) -> Any:
    """Requests/s meeting both SLOs, per-request TTFT and TPOT taken as independent lognormals
    with the given p95s and log-spreads."""
    def share(p95: Any, s: Any, limit: float) -> Any:
        return ndtr((np.log(limit) - np.log(p95)) / s + 1.645)

    return rps * share(ttft_p95, s_ttft, inst.slo_ttft_ms) * share(tpot_p95, s_tpot,
                                                                  inst.slo_tpot_ms)


def load_test_seconds(core: Mapping[str, np.ndarray], requests: int) -> np.ndarray:
    """Seconds of a load test of ``requests`` requests (after a warm-up)."""
    return 10.0 + requests / core["requests_per_s"]


def metrics_arrays(inst: LLMInstance, core: Mapping[str, np.ndarray],
                   requests: int = FULL_REQUESTS) -> dict[str, np.ndarray]:
    """The full-fidelity metrics (noise-free given ``core``) as arrays."""
    rps = core["requests_per_s"]
    tps = rps * inst.output_tokens
    test = load_test_seconds(core, requests)
    return {
        "ttft_p95_ms": core["ttft_p95_ms"],
        "tpot_p95_ms": core["tpot_p95_ms"],
        "e2e_p95_ms": core["e2e_p95_ms"],
        "output_tokens_per_s": tps,
        "output_tokens_per_s_per_gpu": tps / core["_tp"],
        "requests_per_s": rps,
        "goodput": goodput(inst, rps, core["ttft_p95_ms"], core["tpot_p95_ms"],
                           core["s_ttft"], core["s_tpot"]),
        "kv_cache_tokens": core["kv_cache_tokens"],
        "max_concurrency": core["max_concurrency"],
        "preemptions": np.round(core["preempt_fraction"] * requests),
        "memory_headroom_gib": core["memory_headroom_gib"],
        "boot_s": core["boot_s"],
        "eval_s": core["boot_s"] + test,
    }


def run_core(inst: LLMInstance, cols: Cols, **kw: Any) -> dict[str, np.ndarray]:
    """The model's arrays for ``cols`` (keyword options of the core: ``alpha``, ``beta``,
    ``w_noise``, ``nonkv_noise``, ``graph_noise``, ``preemption``), with the TP sizes under
    ``_tp`` for :func:`metrics_arrays`."""
    core = _core(inst, cols, **kw)
    core["_tp"] = cols["tp"]
    return core
