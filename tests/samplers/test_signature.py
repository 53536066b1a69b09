"""Repeated deterministic crashes of one combination of nominal values, and how ``cabo`` uses
them (``signature_rule``)."""

from __future__ import annotations

from typing import Any

import pytest

import deploytune
from deploytune.history import TrialRecord
from deploytune.outcome import CrashKind, InvalidConfig, Status
from deploytune.samplers.cabo import CaboSampler
from deploytune.samplers.signature import CrashSignatures, nominal_names
from deploytune.space import Space

SPACE = Space.from_dict({
    "backend": {"type": "categorical", "choices": ["eager", "onnx", "compile"]},
    "precision": {"type": "categorical", "choices": ["fp32", "fp16", "int8"]},
    "tp": {"type": "categorical", "choices": [1, 2, 4]},
    "batch": {"type": "int", "low": 1, "high": 64},
})


def _crash(n: int, backend: str, precision: str, kind: CrashKind, batch: int = 1
           ) -> TrialRecord:
    return TrialRecord(n, {"backend": backend, "precision": precision, "tp": 1,
                           "batch": batch}, Status.CRASHED, kind)


def test_signature_is_the_unordered_categorical_values() -> None:
    assert nominal_names(SPACE) == ["backend", "precision"]
    sig = CrashSignatures(SPACE, [])
    assert sig.signature({"backend": "onnx", "precision": "fp16", "tp": 2, "batch": 9}) == (
        "onnx", "fp16")
    assert not sig


@pytest.mark.parametrize(("history", "repeats"), [
    ([], 0),
    ([_crash(0, "onnx", "fp16", CrashKind.INVALID_CONFIG)], 1),
    ([_crash(0, "onnx", "fp16", CrashKind.INVALID_CONFIG, 3),
      _crash(1, "onnx", "fp16", CrashKind.INVALID_CONFIG, 40)], 2),
    ([_crash(0, "onnx", "fp16", CrashKind.TIMEOUT),
      _crash(1, "onnx", "fp16", CrashKind.TIMEOUT)], 2),
    # two kinds, an OOM (the memory rules' matter), a run: no floor
    ([_crash(0, "onnx", "fp16", CrashKind.INVALID_CONFIG),
      _crash(1, "onnx", "fp16", CrashKind.TIMEOUT)], 0),
    ([_crash(0, "onnx", "fp16", CrashKind.OOM)], 0),
    ([_crash(0, "onnx", "fp16", CrashKind.INVALID_CONFIG),
      TrialRecord(1, {"backend": "onnx", "precision": "fp16", "tp": 1, "batch": 2},
                  Status.INFEASIBLE, None, 1.0)], 0),
    # another signature's crashes say nothing about this one
    ([_crash(0, "onnx", "fp32", CrashKind.INVALID_CONFIG),
      _crash(1, "eager", "fp16", CrashKind.INVALID_CONFIG)], 0),
])
def test_repeats_and_floor(history: list[TrialRecord], repeats: int) -> None:
    sig = CrashSignatures(SPACE, history)
    probe = {"backend": "onnx", "precision": "fp16", "tp": 4, "batch": 64}
    assert sig.repeats(probe) == repeats
    expected = (repeats + 1) / (repeats + 2) if repeats else 0.0
    assert sig.floor([probe])[0] == pytest.approx(expected)


def invalid_onnx_fp16(c: dict[str, Any]) -> dict[str, float]:
    """onnx at fp16 is rejected whatever the batch; the rest runs, fastest at onnx."""
    if c["backend"] == "onnx" and c["precision"] == "fp16":
        raise InvalidConfig("onnx: fp16 not supported")
    speed = {"eager": 1.0, "onnx": 3.0, "compile": 2.0}[c["backend"]]
    speed *= {"fp32": 1.0, "fp16": 2.0, "int8": 1.5}[c["precision"]]
    return {"throughput": speed * (1 + c["batch"] / 64) * c["tp"] ** 0.1}


def _onnx_fp16_after_two(sampler: CaboSampler) -> int:
    """Trials of onnx/fp16 proposed after two of them had crashed."""
    result = deploytune.optimize(invalid_onnx_fp16, SPACE, objective="throughput",
                                 budget=30, sampler=sampler)
    crashed = later = 0
    for t in result.trials:
        if t.config["backend"] == "onnx" and t.config["precision"] == "fp16":
            later += crashed >= 2
            crashed += 1
    return later


@pytest.mark.slow
def test_default_never_proposes_a_combination_that_crashed_twice() -> None:
    """Issue 17's goal: with the default (``signature_rule=hard``) onnx/fp16 is not proposed
    after two crashes with the same deterministic error; without the rule it is (its
    predicted throughput is the highest, so the assertion can fail)."""
    hard = sum(_onnx_fp16_after_two(CaboSampler(SPACE, seed=s, budget=30)) for s in range(4))
    off = sum(_onnx_fp16_after_two(CaboSampler(SPACE, seed=s, budget=30,
                                               signature_rule="off")) for s in range(4))
    assert hard == 0
    assert off > 0


def test_unknown_rule_is_named() -> None:
    with pytest.raises(ValueError, match=r"option signature_rule must be one of off, soft, hard"):
        CaboSampler(SPACE, seed=0, signature_rule="exact")

