"""``pipeline-sim``: a simulated text-classification serving pipeline with dynamic batching.

The simulated server has one 24 GB GPU (L4-class), 16 CPU cores and 64 GB of RAM. Requests
(about 80 tokens on average with a long tail up to 512, so dynamic
padding of a batch grows with the batch size) arrive as a Poisson stream; each of
``num_workers`` worker processes tokenises, batches requests (up to ``max_batch_size``, waiting at
most ``max_wait_ms`` for a batch to fill), runs one copy of the model and answers. An optional
per-worker response cache answers repeated requests.

Thirteen parameters, four of them conditional: ``compile_mode`` (only for ``torch_compile``),
``calibration_samples`` (only for static int8), ``trt_workspace_mb`` (only for ``tensorrt``) and
``cache_size_mb`` (only with the cache on).

Metrics:

* ``throughput_rps``: goodput, the highest Poisson request rate at which the p99 latency stays
  within :data:`GOODPUT_SLO_MS` (what a load ramp reports);
* ``latency_p99_ms``: p99 latency at the nominal production load of :data:`NOMINAL_RPS`;
* ``gpu_memory_mb`` / ``host_memory_mb``: peak memory of all workers together;
* ``accuracy``: task accuracy after quantisation (static int8 improves with calibration);
* ``on_cpu``: 1.0 when the model silently runs on the CPU (dynamic int8 in eager PyTorch or ONNX
  Runtime; there are no int8 GPU kernels for dynamic quantisation);
* ``build_s``: seconds spent loading, compiling / exporting / building and calibrating.

Crash zones (interacting):

* :class:`~deploytune.InvalidConfig`: dynamic int8 with ``torch_compile`` or ``tensorrt``; static
  int8 with ``pytorch_eager`` or ``torch_compile``;
* ``RuntimeError``: a TensorRT workspace below half of what the model and batch profile need
  (no tactic fits);
* ``MemoryError``: GPU OOM (every worker holds a model copy, activations grow with batch size and
  the longest sequence, CUDA-graph pools of ``reduce-overhead`` / ``max-autotune`` grow with the
  number of distinct shapes, i.e. dynamic padding), or host OOM (``num_workers`` x (worker RSS +
  response cache));
* ``TimeoutError``: setup plus the load ramp exceed :data:`TIME_LIMIT_S` (``max-autotune`` on
  big models, TensorRT builds with large workspaces and long calibration).

Numbers are plausible round figures for the simulated machine, not measurements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploybench.pipeline_service import (
    CPU_CORES,
    GOODPUT_SLO_MS,
    MAX_LEN,
    ServiceModel,
    TextModel,
    padded_length,
)
from deploybench.problem import CostModel, Problem
from deploytune.outcome import CrashKind, InvalidConfig
from deploytune.space import Categorical, Config, Float, Int, Space

__all__ = [
    "CONSTRAINTS",
    "GOODPUT_SLO_MS",
    "MODELS",
    "NOMINAL_RPS",
    "OPTIMAL_CONFIG",
    "OPTIMUM",
    "REFERENCE",
    "TIME_LIMIT_S",
    "TextModel",
    "pipeline_sim",
    "pipeline_space",
    "simulate_pipeline",
]


MODELS: dict[str, TextModel] = {
    "minilm_l12": TextModel(33.4, 12, 384, 0.902, 0.012, 128.0),
    "distilbert": TextModel(66.4, 6, 768, 0.911, 0.009, 192.0),
    "bert_base": TextModel(109.5, 12, 768, 0.927, 0.007, 256.0),
    "roberta_large": TextModel(355.4, 24, 1024, 0.951, 0.005, 640.0),
}
"""The model zoo (text classifiers fine-tuned on the same task)."""

RUNTIMES = ("pytorch_eager", "torch_compile", "onnxruntime", "tensorrt")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
QUANTIZATIONS = ("fp32", "fp16", "int8_dynamic", "int8_static")
PADDINGS = ("dynamic", "bucketed", "max_length")

NOMINAL_RPS = 150.0
"""Production load at which ``latency_p99_ms`` is measured (requests/s)."""
TIME_LIMIT_S = 600.0
"""Wall-clock limit of one evaluation (setup plus load ramp)."""
_RAMP_S = 150.0
_GPU_USABLE_MB = 23000.0
_HOST_USABLE_MB = 60000.0
_CACHE_HIT_MAX = 0.35  # share of repeated requests in the traffic

_GPU_PEAK = {"fp32": 15.0, "fp16": 55.0, "int8_static": 95.0}  # GFLOP per ms
_RUNTIME_SPEED = {"pytorch_eager": 1.0, "torch_compile": 1.2, "onnxruntime": 1.1,
                  "tensorrt": 1.45}
_COMPILE_SPEED = {"default": 1.0, "reduce-overhead": 1.0, "max-autotune": 1.12}
_BYTES = {"fp32": 4.0, "fp16": 2.0, "int8_dynamic": 1.0, "int8_static": 1.0}
_SHAPES = {"dynamic": 48.0, "bucketed": 12.0, "max_length": 6.0}
_WORKER_RSS_MB = {"pytorch_eager": 2200.0, "torch_compile": 3200.0, "onnxruntime": 1200.0,
                  "tensorrt": 1600.0}


def pipeline_space() -> Space:
    """The pipeline-sim search space: 13 parameters, 4 conditional."""
    return Space([
        Categorical("model", choices=tuple(MODELS)),
        Categorical("runtime", choices=RUNTIMES),
        Categorical("compile_mode", {"runtime": ("torch_compile",)}, choices=COMPILE_MODES),
        Categorical("quantization", choices=QUANTIZATIONS),
        Int("calibration_samples", {"quantization": ("int8_static",)}, low=16, high=1024,
            log=True),
        Int("trt_workspace_mb", {"runtime": ("tensorrt",)}, low=128, high=8192, log=True,
            memory="increasing"),
        Categorical("padding", choices=PADDINGS),
        Int("max_batch_size", low=1, high=128, log=True, memory="increasing"),
        Float("max_wait_ms", low=0.5, high=50.0, log=True),
        Int("num_workers", low=1, high=8, memory="increasing"),
        Int("tokenizer_threads", low=1, high=8),
        Categorical("cache", choices=("off", "lru")),
        Int("cache_size_mb", {"cache": ("lru",)}, low=64, high=8192, log=True,
            memory="increasing"),
    ])


def _lognormal(rng: np.random.Generator | None, sigma: float) -> float:
    return float(math.exp(rng.normal(0.0, sigma))) if rng is not None else 1.0


def _accuracy(m: TextModel, quant: str, calibration: int | None) -> float:
    if quant == "fp16":
        return m.accuracy - 0.0003
    if quant == "int8_dynamic":
        return m.accuracy - m.int8_drop
    if quant == "int8_static":
        cal = float(calibration or 16)
        return m.accuracy - 0.8 * m.int8_drop * (1.0 + 4.0 * math.exp(-cal / 100.0))
    return m.accuracy


def _check_compatible(runtime: str, quant: str) -> None:
    if quant == "int8_dynamic" and runtime in ("torch_compile", "tensorrt"):
        raise InvalidConfig(f"{runtime} does not support dynamic int8 quantisation "
                            f"(dynamically quantised Linear has no GPU kernel to lower to)")
    if quant == "int8_static" and runtime in ("pytorch_eager", "torch_compile"):
        raise InvalidConfig(f"static int8 is not supported by {runtime} on CUDA "
                            f"(eager-mode quantised kernels are CPU-only)")


def _build_s(m: TextModel, config: Mapping[str, Any], quant: str, workspace: int | None) -> float:
    runtime, padding = str(config["runtime"]), str(config["padding"])
    load = 5.0 + 0.02 * m.params_m
    if runtime == "torch_compile":
        mode = str(config["compile_mode"])
        build = 30.0 + 2.0 * m.layers
        build *= {"default": 1.0, "reduce-overhead": 1.2, "max-autotune": 6.0}[mode]
        build *= 1.5 if padding == "dynamic" else 1.0  # recompilations for new shapes
    elif runtime == "onnxruntime":
        build = 10.0 + 0.05 * m.params_m
    elif runtime == "tensorrt":
        build = (40.0 + 6.0 * m.layers) * {"fp32": 1.0, "fp16": 1.3, "int8_static": 1.8}[quant]
        build *= 1.0 + 0.1 * math.log2(max(workspace or 256, 128) / 256.0)
    else:
        build = 0.0
    if quant == "int8_static":
        build += int(config["calibration_samples"]) * 0.1 * m.params_m / 100.0
    return load + build


@dataclass(frozen=True)
class _Setup:
    """The structural choices of one configuration, parsed and checked for compatibility."""

    model: TextModel
    runtime: str
    quant: str
    padding: str
    batch: int
    workers: int
    tok_threads: int
    on_cpu: bool
    workspace: int | None
    calibration: int | None


def _setup(config: Mapping[str, Any]) -> _Setup:
    """Parse ``config``; raises :class:`~deploytune.InvalidConfig` for an unsupported
    runtime / quantisation combination."""
    m = MODELS[str(config["model"])]
    runtime, quant = str(config["runtime"]), str(config["quantization"])
    padding = str(config["padding"])
    batch, workers = int(config["max_batch_size"]), int(config["num_workers"])
    tok_threads = int(config["tokenizer_threads"])
    _check_compatible(runtime, quant)
    on_cpu = quant == "int8_dynamic"
    workspace = int(config["trt_workspace_mb"]) if runtime == "tensorrt" else None
    calibration = int(config["calibration_samples"]) if quant == "int8_static" else None
    return _Setup(m, runtime, quant, padding, batch, workers, tok_threads, on_cpu, workspace,
                  calibration)


def _kernels(s: _Setup, config: Mapping[str, Any]) -> tuple[float, float]:
    """Peak GFLOP per ms and per-batch overhead (ms) of the model's kernels; a TensorRT
    workspace too small for any tactic raises ``RuntimeError``."""
    m, runtime, quant, workspace = s.model, s.runtime, s.quant, s.workspace
    speed = _RUNTIME_SPEED[runtime]
    if runtime == "torch_compile":
        speed *= _COMPILE_SPEED[str(config["compile_mode"])]
        speed *= 0.9 if s.padding == "dynamic" else 1.0  # dynamic-shape kernels
    if runtime == "onnxruntime" and quant == "int8_static":
        speed *= 0.7  # QDQ through the CUDA provider is less efficient than TensorRT
    if workspace is not None:
        need = m.trt_workspace_mb * (1.0 + s.batch / 32.0)
        if workspace < 0.5 * need:
            raise RuntimeError(f"TensorRT: could not find any implementation for the attention "
                               f"layers within a workspace of {workspace} MB")
        speed *= 0.75 + 0.25 * min(1.0, workspace / need)
    if s.on_cpu:
        cores_each = max(1.0, CPU_CORES / s.workers)
        peak = 0.05 * 1.8 * cores_each / (1.0 + 0.05 * (cores_each - 1.0))
        overhead = 0.5 + 0.05 * m.layers
    else:
        peak = _GPU_PEAK[quant] * speed
        cuda_graphs = runtime == "torch_compile" and config["compile_mode"] != "default"
        overhead = {"pytorch_eager": 0.6 + 0.12 * m.layers,
                    "torch_compile": 0.1 if cuda_graphs else 0.3 + 0.04 * m.layers,
                    "onnxruntime": 0.5 + 0.03 * m.layers,
                    "tensorrt": 0.2 + 0.01 * m.layers}[runtime]
    return peak, overhead


def _memory_mb(s: _Setup, config: Mapping[str, Any],
               r: np.random.Generator | None) -> tuple[float, float, float]:
    """Peak GPU and host memory of all workers (with noise from ``r``) and the response cache
    per worker; GPU or host out of memory raises ``MemoryError``."""
    m, runtime, quant, batch, workers = s.model, s.runtime, s.quant, s.batch, s.workers
    act_per_token = 20.0 * m.hidden * _BYTES[quant if not s.on_cpu else "fp32"] / 1e6
    attention = 1.5 * (m.hidden / 64.0) * MAX_LEN * 2.0 / 1e6  # one layer's scores, per token
    act_peak = batch * MAX_LEN * (act_per_token + attention)  # a long request pads the batch
    weights = m.params_m * _BYTES[quant]
    if s.on_cpu:
        gpu_worker = 0.0
        host_model = weights + act_peak
    else:
        gpu_worker = 500.0 + weights  # CUDA context + weights
        if runtime == "torch_compile" and config["compile_mode"] != "default":
            typical = batch * padded_length(s.padding, batch) * act_per_token
            gpu_worker += act_peak + 0.25 * _SHAPES[s.padding] * typical  # CUDA-graph pools
        elif runtime == "onnxruntime":
            gpu_worker += 1.3 * act_peak
        elif runtime == "tensorrt":
            gpu_worker += 0.6 * act_peak + float(s.workspace or 0)
        else:
            gpu_worker += act_peak
        host_model = m.params_m * 4.0  # fp32 copy kept while loading
    gpu_memory = workers * gpu_worker * _lognormal(r, 0.01)
    if gpu_memory > _GPU_USABLE_MB:
        raise MemoryError(f"CUDA out of memory: {workers} workers need {gpu_memory:.0f} MB")
    cache_mb = float(config["cache_size_mb"]) if config["cache"] == "lru" else 0.0
    host_memory = workers * (_WORKER_RSS_MB[runtime] + host_model + cache_mb) * _lognormal(r, 0.02)
    if host_memory > _HOST_USABLE_MB:
        raise MemoryError(f"host out of memory: {workers} workers need {host_memory:.0f} MB")
    return gpu_memory, host_memory, cache_mb


def simulate_pipeline(config: Mapping[str, Any], rng: np.random.Generator | None = None,
                      noise: bool = True) -> dict[str, float]:
    """Simulate deploying the serving pipeline of ``config`` and load-testing it.

    Args:
        config: A configuration of :func:`pipeline_space`.
        rng: Source of measurement noise; ``None`` (or ``noise=False``) gives noise-free values.
        noise: Whether to apply measurement noise.

    Returns:
        ``throughput_rps``, ``latency_p99_ms``, ``gpu_memory_mb``, ``host_memory_mb``,
        ``accuracy``, ``cache_hit_rate``, ``on_cpu`` and ``build_s``.

    Raises:
        InvalidConfig: A runtime / quantisation combination that is not supported.
        RuntimeError: A TensorRT workspace too small for any tactic.
        MemoryError: GPU or host out of memory.
        TimeoutError: Setup and the load ramp exceed :data:`TIME_LIMIT_S`.
    """
    r = rng if noise else None
    s = _setup(config)
    m, on_cpu = s.model, s.on_cpu
    peak, overhead = _kernels(s, config)
    gpu_memory, host_memory, cache_mb = _memory_mb(s, config, r)

    build_s = _build_s(m, config, s.quant, s.workspace) * _lognormal(r, 0.08)
    if build_s + _RAMP_S > TIME_LIMIT_S:
        raise TimeoutError(f"setup took {build_s:.0f} s; with the {_RAMP_S:.0f} s load ramp "
                           f"the evaluation exceeds {TIME_LIMIT_S:.0f} s")

    hit_rate = _CACHE_HIT_MAX * (1.0 - math.exp(-cache_mb / 800.0))
    pipe = ServiceModel(
        model=m, on_cpu=on_cpu, peak=peak, overhead_ms=overhead,
        padding=s.padding, batch=s.batch, max_wait=float(config["max_wait_ms"]),
        workers=s.workers, tok_threads=s.tok_threads, hit_rate=hit_rate,
        gpu_noise=_lognormal(r, 0.08 if on_cpu else 0.03), cpu_noise=_lognormal(r, 0.05),
        tail=(1.35 if on_cpu else 1.12) * _lognormal(r, 0.05))
    p99 = pipe.p99_ms(NOMINAL_RPS)
    return {
        "throughput_rps": pipe.goodput_rps(),
        "latency_p99_ms": p99 if math.isfinite(p99) else 60000.0,  # client timeout
        "gpu_memory_mb": gpu_memory,
        "host_memory_mb": host_memory,
        "accuracy": _accuracy(m, s.quant, s.calibration),
        "cache_hit_rate": hit_rate,
        "on_cpu": 1.0 if on_cpu else 0.0,
        "build_s": build_s,
    }


def _simulate_noisy(config: Config, rng: np.random.Generator) -> dict[str, float]:
    return simulate_pipeline(config, rng, noise=True)


CONSTRAINTS = ["latency_p99_ms <= 50", "gpu_memory_mb <= 16000", "accuracy >= 0.92"]
"""Constraints of ``pipeline-sim`` (objective: maximise ``throughput_rps``)."""

OPTIMAL_CONFIG: Config = {
    "model": "bert_base", "runtime": "tensorrt", "quantization": "int8_static",
    "calibration_samples": 1024, "trt_workspace_mb": 1024, "padding": "dynamic",
    "max_batch_size": 13, "max_wait_ms": 2.211, "num_workers": 2, "tokenizer_threads": 8,
    "cache": "lru", "cache_size_mb": 8192,
}
"""The best configuration found (noise-free); see :func:`pipeline_sim` for how."""
OPTIMUM = 5038.58
"""Noise-free goodput of :data:`OPTIMAL_CONFIG` in requests/s (best known; see
:func:`pipeline_sim`)."""
REFERENCE = 443.73
"""Median noise-free goodput of the feasible ones among 20,000 random configurations."""


def _cost_scale(config: Config) -> float:
    return {"minilm_l12": 0.7, "distilbert": 0.8, "bert_base": 1.0,
            "roberta_large": 1.6}.get(str(config.get("model")), 1.0)


def pipeline_sim() -> Problem:
    """``pipeline-sim``: maximise goodput of a dynamic-batching text-classification server.

    Objective: ``throughput_rps`` (goodput at p99 <= 250 ms), maximised. Constraints:
    ``latency_p99_ms <= 50`` at the nominal 150 requests/s, ``gpu_memory_mb <= 16000`` and
    ``accuracy >= 0.92``. The quality floor rules out minilm_l12 and distilbert entirely, and
    bert_base in static int8 unless it is calibrated on at least ~280 samples; a longer
    ``max_wait_ms`` fills batches (more goodput) but adds latency at the nominal load; more
    workers overlap tokenisation with the GPU but split the traffic into smaller batches and
    multiply memory; caches trade host memory for hits.

    Optimum: ``5038.58`` requests/s, :data:`OPTIMAL_CONFIG` (bert_base, TensorRT, static int8,
    dynamic padding, batch 13, 2.2 ms wait, 2 workers, 8 tokeniser threads, an 8 GB LRU
    cache per worker); calibration samples >= ~280 and workspaces >= ~360 MB tie. It is the
    best known noise-free value, not a proven one: coordinate ascent from 3 starts over every
    valid structural combination of bert_base and roberta_large (the only models that can meet
    the floor; full integer ranges, 121-point log grid for ``max_wait_ms``), then an exhaustive
    search over batch 4..64 x 80 waits x 1..4 workers x 2..8 threads and a 1001-point wait
    scan around the winner (gain 0.03 requests/s). The goodput bisection resolves about
    0.1 requests/s. No one of 200,000 noise-free random configurations beats it (best 4718).
    Reference: ``443.73`` requests/s, the median noise-free goodput of the feasible ones among
    the 20,000 configurations below.

    Measured random-sampling rates: 20,000 configurations
    ``pipeline_space().sample(np.random.default_rng(i))``, ``i = 0..19999``, each evaluated
    once by the noisy simulator (``rng = default_rng(10**6 + i)``) and judged with
    :func:`deploytune.outcome.judge`. Result: 37.0% crash (25.3% invalid_config, 7.6% oom,
    2.5% runtime_error, 1.5% timeout), 54.6% infeasible, 8.4% feasible.

    Cost model: a completed evaluation (setup plus load ramp) 240 s scaled by model size
    (0.7x minilm to 1.6x roberta_large); invalid config 5 s, OOM 45 s, runtime error (a
    failed TensorRT build) 60 s, timeout 600 s (all scaled alike).

    Returns:
        The problem.
    """
    return Problem.build(
        "pipeline-sim", pipeline_space(), "throughput_rps", "maximize", CONSTRAINTS,
        _simulate_noisy, OPTIMUM, REFERENCE,
        cost=CostModel(
            feasible_s=240.0, infeasible_s=240.0, aborted_s=60.0,
            crash_s={CrashKind.INVALID_CONFIG.value: 5.0, CrashKind.OOM.value: 45.0,
                     CrashKind.TIMEOUT.value: TIME_LIMIT_S, CrashKind.RUNTIME_ERROR.value: 60.0,
                     CrashKind.TRANSIENT.value: 5.0},
            scale=_cost_scale),
        description=("Simulated text-classification serving pipeline with dynamic batching "
                     "(13 parameters, 4 conditional); maximise goodput s.t. p99 <= 50 ms at "
                     "150 rps, GPU memory <= 16 GB, accuracy >= 0.92. Random sampling: 37.0% "
                     "crash, 54.6% infeasible, 8.4% feasible."),
        families=("model",))
