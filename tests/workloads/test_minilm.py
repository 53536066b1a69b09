"""MiniLM-L6 profiler: real evaluations at the smallest settings, isolated. Timing values are
reported, never asserted; quality is (it is deterministic)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from deploytune.evaluators.base import Monitor
from deploytune.evaluators.isolated import IsolatedEvaluator
from deploytune.execution import run_trial
from deploytune.outcome import Constraint, CrashKind, Objective, Status
from deploytune.space import Space
from deploytune.workloads.minilm import SENTENCES, SPACE

TARGET = "deploytune.workloads.minilm:evaluate"
OBJ = Objective("sentences_per_s")
CONS = [Constraint.parse("cosine_min >= 0.5")]


def run(config: dict[str, Any]) -> Any:
    ev = IsolatedEvaluator(TARGET, timeout_s=120)
    return run_trial(ev, config, OBJ, CONS, new_monitor=Monitor)


def test_space_and_sentences() -> None:
    Space.from_dict(SPACE)
    assert len(SENTENCES) == len(set(SENTENCES)) == 48


@pytest.mark.slow
def test_eager_fp32_is_the_reference() -> None:
    out = run({"backend": "eager", "precision": "fp32", "batch_size": 1, "threads": 1})
    assert out.status is Status.FEASIBLE, out.error
    m = out.metrics
    assert m["cosine_min"] > 0.9999 and m["nn_agreement"] == 1.0
    for key in ("p50_ms", "p95_ms", "sentences_per_s", "memory_mb"):
        assert math.isfinite(m[key]) and m[key] > 0


@pytest.mark.slow
def test_int8_dynamic_quantization_loses_real_fidelity() -> None:
    out = run({"backend": "eager", "precision": "int8", "batch_size": 2, "threads": 1})
    assert out.status is Status.FEASIBLE, out.error
    assert 0.5 < out.metrics["cosine_min"] < 0.99


@pytest.mark.slow
def test_onnxruntime_fp16_is_an_invalid_config() -> None:
    out = run({"backend": "onnxruntime", "precision": "fp16", "batch_size": 1, "threads": 1})
    assert out.status is Status.CRASHED and out.crash_kind is CrashKind.INVALID_CONFIG
