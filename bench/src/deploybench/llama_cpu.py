"""``llama-cpu``: tune a real llama.cpp OpenAI-compatible server on this CPU.

Every evaluation starts ``llama_cpp.server`` (through
:mod:`deploytune.workloads.llama_server`, which resolves the model to the GGUF file shipped in
its PyPI package) as its own process group, waits until ``/v1/models`` answers, drives the
built-in load generator against it (streaming chat completions) and stops it, with
:class:`~deploytune.evaluators.server.ServerEvaluator`. Nothing is simulated: the objective is
measured output tokens per second under a TTFT and a TPOT SLO, a memory cap (peak resident
memory of the server) and zero failed requests.

Knobs (llama.cpp's own flag names): ``model`` (SmolLM2-135M Q4_1, Gemma-3-270M Q4_K_M),
``n_threads``, ``n_batch``, ``n_ubatch``, ``n_ctx``, ``kv_type`` (``type_k`` = ``type_v``),
``flash_attn``. Real failure zones: a quantized KV cache without flash attention cannot create
its context (the server dies at start-up: ``invalid_config``); an ``n_ctx`` shorter than prompt
plus output fails requests (errors: infeasible, or a crash when every request fails); a large
``n_ctx`` grows memory linearly (the memory cap); two threads on two cores collapse when
anything else runs.

llama-cpp-python's server handles one request at a time (a lock around the model), so the
server has no "parallel slots" knob: the load generator's concurrency queues requests, and
TTFT includes that queueing, as a user of this server would see it. By default the server
*interrupts* the request being streamed when a new one arrives (``interrupt_requests``): under
concurrent load every response is cut after a few tokens (measured: 4.8 output tokens per
request instead of 48, with no error), a "fast because broken" trap. The argv sets
``--interrupt_requests false``, so a measured configuration serves every request whole.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from deploybench.problem import CostModel, Problem
from deploytune.outcome import CrashKind
from deploytune.space import Config, Space

__all__ = [
    "DEFAULTS",
    "LLAMA_CONSTRAINTS",
    "LLAMA_LOAD",
    "llama_cpu",
    "llama_evaluator",
    "llama_server_argv",
    "llama_space",
]

LLAMA_LOAD: dict[str, Any] = {"requests": 10, "concurrency": 2, "max_tokens": 48,
                              "report_every": 2, "request_timeout_s": 60.0}
"""The load of one evaluation: 10 streamed chat requests from the built-in prompt set, two in
flight, 48 output tokens at most."""

LLAMA_CONSTRAINTS = ["ttft_p95_ms <= 3000", "tpot_p95_ms <= 40", "memory_mb <= 600",
                     "error_rate <= 0"]
"""SLOs: p95 time to first token (queueing included) and time per output token, peak memory of
the server, and no failed request."""

DEFAULTS: dict[str, Any] = {"model": "smollm2", "n_threads": 1, "n_batch": 512,
                            "n_ubatch": 512, "n_ctx": 2048, "kv_type": "f16",
                            "flash_attn": "false"}
"""What ``llama_cpp.server`` uses when no flag is given, on this 2-core machine
(``n_threads`` = half the cores), with SmolLM2: the baseline the tuned configuration is compared
with."""

TIMEOUT_S = 240.0
"""Wall-clock limit of one evaluation (start, load, stop)."""


def llama_space(models: tuple[str, ...] = ("smollm2", "gemma3")) -> Space:
    """The search space: model, threads, batch sizes, context, KV-cache type, flash attention."""
    return Space.from_dict({
        "model": {"type": "categorical", "choices": list(models)},
        "n_threads": {"type": "int", "low": 1, "high": 2},
        "n_batch": {"type": "categorical", "choices": [8, 32, 128, 512], "memory": "increasing"},
        "n_ubatch": {"type": "categorical", "choices": [8, 32, 128, 512],
                     "memory": "increasing"},
        "n_ctx": {"type": "categorical", "choices": [256, 512, 2048, 8192, 32768],
                  "memory": "increasing"},
        "kv_type": {"type": "categorical", "choices": ["f16", "q8_0", "q4_0"]},
        "flash_attn": {"type": "categorical", "choices": ["false", "true"]},
    })


def llama_server_argv() -> list[str]:
    """The server's argv template (placeholders name the space's parameters and the port)."""
    return [sys.executable, "-m", "deploytune.workloads.llama_server",
            "--model", "{model}", "--n_threads", "{n_threads}", "--n_batch", "{n_batch}",
            "--n_ubatch", "{n_ubatch}", "--n_ctx", "{n_ctx}", "--type_k", "{kv_type}",
            "--type_v", "{kv_type}", "--flash_attn", "{flash_attn}",
            "--interrupt_requests", "false", "--host", "127.0.0.1", "--port", "{port}"]


def llama_evaluator(load: Mapping[str, Any] | None = None, timeout_s: float = TIMEOUT_S) -> Any:
    """A :class:`~deploytune.evaluators.server.ServerEvaluator` of the llama.cpp server."""
    from deploytune.evaluators.server import ServerEvaluator, ServerSettings
    from deploytune.loadgen import LoadSpec

    settings = ServerSettings(tuple(llama_server_argv()), health_url="http://127.0.0.1:{port}/v1/models",
                              startup_timeout_s=120.0, stop_timeout_s=10.0)
    return ServerEvaluator(settings, LoadSpec.from_dict(dict(load or LLAMA_LOAD)),
                           timeout_s=timeout_s)


def _not_simulated(config: Config, rng: np.random.Generator) -> Mapping[str, float]:
    raise RuntimeError("llama-cpu has no simulation: every evaluation starts the real server "
                       "(run it with `deploytune bench --problems llama-cpu --jobs 1`)")


BEST_KNOWN = 45.5
"""Best output tokens/s measured for a feasible configuration (2026-11-23, the 20-trial
``tba-tpe`` run in docs/benchmarks.md: SmolLM2, 2 threads, n_batch 32, n_ubatch 128, n_ctx
8192, f16 KV cache, flash attention). Not an enumerated optimum: a better configuration gets
regret 0."""
DEFAULTS_VALUE = 30.9
"""Mean output tokens/s of :data:`DEFAULTS` over 8 measurements (28.3-35.4; they met the TTFT
SLO in 1 of 8): what an untuned server gives."""


def _cost() -> CostModel:
    """Rough seconds by outcome, for reports only: the runner counts the measured wall seconds
    of a live problem's trials (:meth:`Problem.trial_seconds`)."""
    return CostModel(feasible_s=20.0, infeasible_s=20.0, aborted_s=8.0,
                     crash_s={CrashKind.INVALID_CONFIG.value: 2.0, CrashKind.OOM.value: 3.0,
                              CrashKind.TIMEOUT.value: TIMEOUT_S,
                              CrashKind.RUNTIME_ERROR.value: 10.0,
                              CrashKind.TRANSIENT.value: 2.0})


def llama_cpu() -> Problem:
    """``llama-cpu``: maximise output tokens/s of a real llama.cpp server under TTFT/TPOT SLOs,
    a memory cap and zero failed requests (live only: ``Problem.live`` builds the server
    evaluator; ``simulate`` refuses).

    Optimum: :data:`BEST_KNOWN`, the best value measured so far (no enumeration: each
    evaluation is a real server start and load test). Reference: :data:`DEFAULTS_VALUE`,
    llama.cpp's defaults (:data:`DEFAULTS`) measured with the same load.
    """
    problem = Problem.build(
        "llama-cpu", llama_space(), "output_tokens_per_s", "maximize", LLAMA_CONSTRAINTS,
        _not_simulated, BEST_KNOWN, DEFAULTS_VALUE, cost=_cost(),
        description=("A real llama.cpp server (llama-cpp-python) on this CPU, SmolLM2-135M or "
                     "Gemma-3-270M; maximise output tokens/s s.t. p95 TTFT <= 3 s, p95 TPOT "
                     "<= 40 ms, peak memory <= 600 MB and no failed request."),
        families=("model",))
    problem.live = functools.partial(llama_evaluator, None, TIMEOUT_S)
    return problem
