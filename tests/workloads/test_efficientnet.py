"""EfficientNet-Lite0 profiler: real evaluations at the smallest settings, isolated, with a real
memory-cap OOM and a real rejected combination. Timing values are reported, never asserted."""

from __future__ import annotations

import math
from typing import Any

import pytest

from deploytune.evaluators.base import Monitor
from deploytune.evaluators.isolated import IsolatedEvaluator
from deploytune.execution import run_trial
from deploytune.outcome import Constraint, CrashKind, Objective, Status
from deploytune.space import Space
from deploytune.workloads.efficientnet import SPACE, crops

TARGET = "deploytune.workloads.efficientnet:evaluate"
OBJ = Objective("images_per_s")
CONS = [Constraint.parse("p95_ms <= 1000")]


def run(config: dict[str, Any], memory_mb: float | None = None) -> Any:
    ev = IsolatedEvaluator(TARGET, timeout_s=120, memory_mb=memory_mb)
    return run_trial(ev, config, OBJ, CONS, new_monitor=Monitor)


def test_space_is_valid_and_crops_are_real_photos() -> None:
    Space.from_dict(SPACE)
    x = crops(4)
    assert x.shape == (4, 3, 224, 224) and x.dtype.name == "float32"
    assert -1.0 <= float(x.min()) < float(x.max()) <= 1.0 and float(x.std()) > 0.1


@pytest.mark.slow
def test_eager_fp32_batch1_one_thread_measures_everything() -> None:
    out = run({"backend": "eager", "precision": "fp32", "batch_size": 1, "threads": 1})
    assert out.status is Status.FEASIBLE, out.error
    m = out.metrics
    assert m["top1_agreement"] == 1.0  # fp32 eager is the reference itself
    for key in ("p50_ms", "p95_ms", "p99_ms", "images_per_s", "memory_mb"):
        assert math.isfinite(m[key]) and m[key] > 0
    assert m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"]


@pytest.mark.slow
def test_onnxruntime_fp32_agrees_with_the_reference() -> None:
    out = run({"backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "threads": 1})
    assert out.status is Status.FEASIBLE, out.error
    assert out.metrics["top1_agreement"] >= 0.9


@pytest.mark.slow
def test_onnxruntime_bf16_is_an_invalid_config() -> None:
    out = run({"backend": "onnxruntime", "precision": "bf16", "batch_size": 1, "threads": 1})
    assert out.status is Status.CRASHED and out.crash_kind is CrashKind.INVALID_CONFIG
    assert "onnxruntime" in (out.error or "")


@pytest.mark.slow
def test_large_batch_under_a_memory_cap_is_a_real_oom() -> None:
    """bs 1 fits in 1300 MB of address space; bs 32 makes torch's allocator fail."""
    small = run({"backend": "eager", "precision": "fp32", "batch_size": 1, "threads": 1},
                memory_mb=1300)
    assert small.status is Status.FEASIBLE, small.error
    big = run({"backend": "eager", "precision": "fp32", "batch_size": 32, "threads": 1},
              memory_mb=1300)
    assert big.status is Status.CRASHED and big.crash_kind is CrashKind.OOM, big.error


def test_every_variant_ships_its_weights_and_unknown_ones_are_named() -> None:
    import os

    import pytest

    from deploytune.workloads.efficientnet import VARIANTS, _weights_path

    for variant in VARIANTS:
        path = _weights_path(variant)
        assert os.path.getsize(path) > 10_000_000  # a real state dict, not a stub
    with pytest.raises(ValueError, match="variant: unknown EfficientNet variant 'lite9'"):
        _weights_path("lite9")
