"""The service model of one ``pipeline-sim`` configuration (:mod:`deploybench.pipeline_sim`):
the models' work per token, dynamic padding, batching under a Poisson load, contention between
the workers, p99 latency and goodput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CPU_CORES", "GOODPUT_SLO_MS", "MAX_LEN", "ServiceModel", "TextModel", "padded_length"]

GOODPUT_SLO_MS = 250.0
"""p99 latency bound of the goodput ramp that defines ``throughput_rps``."""
CPU_CORES = 16
"""CPU cores of the simulated server."""
MAX_LEN = 512
"""Longest request, tokens (what a batch is padded to at worst)."""


@dataclass(frozen=True)
class TextModel:
    """One transformer encoder of the simulated model zoo.

    Attributes:
        params_m: Parameters, millions.
        layers: Transformer layers.
        hidden: Hidden size.
        accuracy: Task accuracy in fp32.
        int8_drop: Accuracy lost by int8 quantisation (dynamic, or static with ample
            calibration data).
        trt_workspace_mb: TensorRT workspace the fastest tactics need at batch 32.
    """

    params_m: float
    layers: int
    hidden: int
    accuracy: float
    int8_drop: float
    trt_workspace_mb: float

    @property
    def gflop_per_token(self) -> float:
        """Dense GFLOPs per token (2 x non-embedding parameters)."""
        return 2.0 * 12.0 * self.layers * self.hidden**2 / 1e9

    def attention_gflop_per_token(self, length: float) -> float:
        """Attention-score GFLOPs per token at sequence length ``length``."""
        return 4.0 * self.layers * length * self.hidden / 1e9


def padded_length(padding: str, batch: float) -> float:
    """Average padded sequence length of a batch of ``batch`` requests."""
    dynamic = min(float(MAX_LEN), 80.0 * (1.0 + 0.45 * math.log(max(batch, 1.0))))
    if padding == "dynamic":
        return dynamic
    if padding == "bucketed":
        return min(float(MAX_LEN), 1.35 * dynamic)
    return float(MAX_LEN)


@dataclass(frozen=True)
class ServiceModel:
    """Noise-applied service model of one configuration (times in ms)."""

    model: TextModel
    on_cpu: bool
    peak: float
    overhead_ms: float
    padding: str
    batch: int
    max_wait: float
    workers: int
    tok_threads: int
    hit_rate: float
    gpu_noise: float
    cpu_noise: float
    tail: float

    def service_ms(self, b: float) -> float:
        """Model execution time of one batch of ``b`` requests (one worker alone)."""
        length = padded_length(self.padding, b)
        tokens = b * length
        gflop = self.model.gflop_per_token + self.model.attention_gflop_per_token(length)
        half = 0.0 if self.on_cpu else 256.0  # tokens at which the GPU is half busy
        return (self.overhead_ms + gflop * (tokens + half) / self.peak) * self.gpu_noise

    def contended_ms(self, b: float) -> float:
        """Batch execution time with every worker competing for the device."""
        if self.on_cpu:  # workers split the cores and fight the tokenisers for them
            return self.service_ms(b) * (1.0 + self.workers * self.tok_threads / CPU_CORES)
        return self.service_ms(b) * (1.0 + 0.08 * (self.workers - 1))

    def tokenize_ms(self, b: float) -> float:
        """Tokenisation and Python overhead of one batch."""
        oversub = max(1.0, self.workers * self.tok_threads / CPU_CORES)
        speedup = self.tok_threads / (1.0 + 0.15 * (self.tok_threads - 1))
        return (0.4 + b * 0.12 / speedup) * oversub * self.cpu_noise

    def capacity_rps(self, b: float) -> float:
        """Model requests per second the workers sustain with batches of ``b``."""
        s, c = self.contended_ms(b), self.tokenize_ms(b)
        per_worker_cycle = (s + c) / self.workers
        device_limit = s if not self.on_cpu else s / self.workers
        return 1000.0 * b / max(per_worker_cycle, device_limit)

    def batch_at(self, per_worker: float) -> float:
        """Typical batch size when each worker receives ``per_worker`` requests per second.

        A batch collects what arrives while the previous one runs plus up to ``max_wait_ms``
        (the least fixed point of ``b = 1 + rate * (wait + cycle(b))``, capped at the maximum).
        """
        b = 1.0
        for _ in range(8):
            cycle = self.contended_ms(b) + self.tokenize_ms(b)
            new = min(float(self.batch), 1.0 + per_worker * (self.max_wait + cycle) / 1000.0)
            if new - b < 0.01:
                return new
            b = new
        return b

    def p99_ms(self, rate: float) -> float:
        """p99 latency at an offered Poisson load of ``rate`` requests per second."""
        model_rate = rate * (1.0 - self.hit_rate)
        per_worker = model_rate / self.workers
        b = self.batch_at(per_worker)
        rho = model_rate / self.capacity_rps(b)
        if rho >= 1.0:
            return math.inf
        fill = self.max_wait
        if per_worker > 0:
            fill = min(fill, 1000.0 * (self.batch - 1) / per_worker)
        work = self.contended_ms(b) + self.tokenize_ms(b)
        queue = 2.3 * work * rho / (1.0 - rho)
        return (fill + work + queue) * self.tail

    def goodput_rps(self) -> float:
        """Highest offered rate whose p99 latency meets :data:`GOODPUT_SLO_MS`."""
        top = self.capacity_rps(float(self.batch)) / (1.0 - self.hit_rate)
        grid = [top * 10.0 ** (-3.0 * k / 29.0) for k in range(30)]  # descending
        for i, rate in enumerate(grid):
            if self.p99_ms(rate) <= GOODPUT_SLO_MS:
                lo, hi = rate, grid[i - 1] if i > 0 else top
                for _ in range(14):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if self.p99_ms(mid) <= GOODPUT_SLO_MS else (lo, mid)
                return lo
        return 0.0
