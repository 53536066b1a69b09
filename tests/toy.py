"""A small conditional deployment-like space and a deterministic crashing evaluator."""

from __future__ import annotations

from typing import Any

import deploytune

SPACE_DICT: dict[str, Any] = {
    "model": {"type": "categorical", "choices": ["small", "medium", "large"]},
    "backend": {"type": "categorical", "choices": ["eager", "compile", "onnxruntime"]},
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
    "mem_frac": {"type": "float", "low": 0.7, "high": 0.98},
    "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager", "onnxruntime"]}},
}
FORBIDDEN = [{"backend": ["compile"], "model": ["large"]}]
CONSTRAINTS = ["latency_ms <= 40", "memory_mb <= 900"]


def toy_evaluate(config: dict[str, Any]) -> dict[str, float]:
    """A deterministic deployment toy: large batches OOM, onnxruntime+small is invalid."""
    size = {"small": 1.0, "medium": 2.0, "large": 4.0}[config["model"]]
    if config["backend"] == "onnxruntime" and config["model"] == "small":
        raise deploytune.InvalidConfig("unsupported operator")
    memory = 100 * size + 12 * size * config["batch_size"] * config["mem_frac"]
    if memory > 1400:
        raise MemoryError(f"needs {memory:.0f} MB")
    speed = {"eager": 1.0, "compile": 0.6, "onnxruntime": 0.7}[config["backend"]]
    threads = config.get("threads", 4)
    latency = size * speed * (2 + config["batch_size"] * 0.8) * (4 / (threads + 2))
    return {"accuracy": 0.6 + 0.05 * size + 0.001 * config["batch_size"],
            "latency_ms": latency, "memory_mb": memory}
