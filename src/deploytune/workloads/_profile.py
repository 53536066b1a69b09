"""Measurement pieces shared by the workload profilers: the timed loop that streams p95, a
file cache for fp32 reference outputs, ONNX Runtime sessions and peak memory."""

from __future__ import annotations

import math
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEADLINE_ENV",
    "RECORD_WINDOWS",
    "WINDOWS_ENV",
    "cached_array",
    "flatten_windows",
    "latency_metrics",
    "onnx_session",
    "onnx_weight_bits",
    "ort_session",
    "peak_rss_mb",
    "prepare_torch_model",
    "private_compile_cache",
    "record_windows",
    "timed_batches",
    "timed_windows",
    "torch_weight_bits",
]

MEASURE_S = 1.5
"""Seconds of timed batches (at least MIN_TIMED, at most MAX_TIMED batches)."""
MIN_TIMED = 3
MAX_TIMED = 30


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (NaN when empty)."""
    return float(np.percentile(values, q)) if values else math.nan


def timed_batches(run: Callable[[], Any], report: Callable[..., None],
                  warm_up: bool = True) -> list[float]:
    """Call ``run`` once untimed (warm-up, compilation; skipped with ``warm_up=False``), then
    time it for about :data:`MEASURE_S` seconds, streaming the p95 in ms after every batch."""
    if warm_up:
        run()
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < MAX_TIMED and (
            len(latencies) < MIN_TIMED or time.perf_counter() - started < MEASURE_S):
        if warm_up:
            _check_deadline()
        t0 = time.perf_counter()
        run()
        latencies.append((time.perf_counter() - t0) * 1000)
        report({"p95_ms": percentile(latencies, 95)}, step=len(latencies))
    return latencies


RECORD_WINDOWS = 3
"""Timed windows per evaluation when a grid is recorded (``deploytune bench record``),
unless the environment variable :data:`WINDOWS_ENV` says otherwise."""
WINDOWS_ENV = "DEPLOYTUNE_RECORD_WINDOWS"
"""Environment variable the recorder sets to choose the windows of a recorded cell."""
DEADLINE_ENV = "DEPLOYTUNE_RECORD_DEADLINE"
"""Environment variable the recorder sets to the epoch time at which the evaluation's real time
limit ends: the first window stops there with ``TimeoutError`` (the recorder's own limit is
longer, to leave time for the extra windows of the cells that are in time)."""


def _check_deadline() -> None:
    deadline = os.environ.get(DEADLINE_ENV)
    if deadline and time.time() > float(deadline):
        raise TimeoutError("the evaluation went past its time limit (recorded cell)")


def record_windows() -> int:
    """Timed windows a recorded cell measures: ``$DEPLOYTUNE_RECORD_WINDOWS`` or
    :data:`RECORD_WINDOWS`."""
    return max(1, int(os.environ.get(WINDOWS_ENV, RECORD_WINDOWS)))


def timed_windows(run: Callable[[], Any], report: Callable[..., None],
                  windows: int) -> tuple[list[list[float]], float]:
    """:func:`timed_batches` followed by ``windows - 1`` more timed windows of the same
    configuration in the same process (the repeats of a recorded cell; only the first window
    streams).

    Returns:
        The latencies (ms) of each window, and the seconds spent on the windows after the
        first, which a normal evaluation would not have spent.
    """
    first = timed_batches(run, report)
    started = time.perf_counter()
    more = [timed_batches(run, lambda *a, **k: None, warm_up=False)
            for _ in range(windows - 1)]
    return [first, *more], time.perf_counter() - started


def flatten_windows(per_window: list[dict[str, float]], extra_s: float) -> dict[str, float]:
    """One metrics dict for the evaluator: the first window's metrics as they are, window
    ``i >= 1`` suffixed ``#i``, plus ``extra_windows_s`` (see :func:`timed_windows`)."""
    out = dict(per_window[0])
    for i, metrics in enumerate(per_window[1:], start=1):
        out.update({f"{key}#{i}": value for key, value in metrics.items()})
    out["extra_windows_s"] = float(extra_s)
    return out


def latency_metrics(latencies: list[float], batch_size: int, unit: str) -> dict[str, float]:
    """p50/p95/p99 ms, ``<unit>_per_s`` at the median and the peak memory."""
    p50 = percentile(latencies, 50)
    return {"p50_ms": p50, "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99), f"{unit}_per_s": batch_size / (p50 / 1000),
            "memory_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cached_array(name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, saved under the temporary folder as ``name`` and reused afterwards."""
    cache = Path(tempfile.gettempdir()) / f"deploytune-{name}.npy"
    if cache.exists():
        return np.load(cache)
    value = compute()
    tmp = cache.with_suffix(f".{os.getpid()}.npy")
    np.save(tmp, value)
    os.replace(tmp, cache)
    return value


def ort_session(path: str, threads: int) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def prepare_torch_model(model: Any, config: dict[str, Any]) -> tuple[Any, Any]:
    """Apply ``config["precision"]`` (``fp32``, ``bf16``, ``fp16`` or ``int8`` dynamic
    quantization of the linear layers) and ``config["backend"] == "compile"`` to a torch model.

    Returns:
        The model to call and the dtype its floating-point inputs must have.
    """
    import torch

    precision = config["precision"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if precision == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                       dtype=torch.qint8)
    elif dtype is not torch.float32:
        model = model.to(dtype)
    if config["backend"] == "compile":
        model = torch.compile(model)
    return model, dtype


def torch_weight_bits(model: Any) -> float:
    """Mean bits per weight of a deployed torch model, as it really is in memory: 32 for fp32,
    16 for bf16/fp16, about 8 where dynamic quantization packed a layer's weights as int8
    (``torch.ao`` quantizes only ``nn.Linear`` layers, so a CNN stays mostly fp32)."""
    import torch

    bits = count = 0
    for module in model.modules():
        weight_fn = getattr(module, "weight", None)
        if callable(weight_fn) and not isinstance(weight_fn, torch.nn.Parameter):
            packed = weight_fn()  # a dynamically quantized layer: packed int8 weights
            bits += packed.numel() * packed.element_size() * 8
            count += packed.numel()
        for param in module.parameters(recurse=False):
            bits += param.numel() * param.element_size() * 8
            count += param.numel()
    return bits / count if count else math.nan


def onnx_weight_bits(path: str) -> float:
    """Mean bits per stored weight (initializer element) of an ONNX model file."""
    import onnx

    sizes = {onnx.TensorProto.FLOAT: 32, onnx.TensorProto.FLOAT16: 16,
             onnx.TensorProto.BFLOAT16: 16, onnx.TensorProto.INT8: 8, onnx.TensorProto.UINT8: 8,
             onnx.TensorProto.INT32: 32, onnx.TensorProto.INT64: 64,
             onnx.TensorProto.DOUBLE: 64}
    bits = count = 0
    for init in onnx.load(path, load_external_data=False).graph.initializer:
        n = math.prod(init.dims) if init.dims else 1
        if init.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and n < 16:
            continue  # shapes and indices, not weights
        bits += n * sizes.get(init.data_type, 32)
        count += n
    return bits / count if count else math.nan


def private_compile_cache(workdir: str) -> None:
    """Point torch.compile's on-disk cache at ``workdir`` for this evaluation.

    The default cache (``/tmp/torchinductor_<user>``) is shared by every trial: a trial killed
    at its time limit while writing a compiled kernel leaves a truncated ``.so`` behind, and a
    later trial then fails with ``ImportError: ... file too short`` (seen in the demo). A
    private cache makes every compile cold, which is what a fresh deployment pays anyway.
    """
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(workdir, "inductor")


def onnx_session(export: Callable[[str], None], config: dict[str, Any], workdir: str) -> Any:
    """Export a model with ``export(path)``, quantize it for ``precision: int8`` (ONNX Runtime's
    dynamic quantizer) and open a session with ``config["threads"]`` threads.

    Raises:
        InvalidConfig: For bf16 / fp16, which this profiler does not run on ONNX Runtime.
    """
    from deploytune.outcome import InvalidConfig

    if config["precision"] not in ("fp32", "int8"):
        raise InvalidConfig(f"onnxruntime backend: precision {config['precision']} is not "
                            f"supported by this profiler (fp32 or int8)")
    path = os.path.join(workdir, "model.onnx")
    export(path)
    if config["precision"] == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = os.path.join(workdir, "model.int8.onnx")
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8)
        path = quantized
    return ort_session(path, int(config["threads"]))
