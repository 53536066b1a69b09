"""Whisper tiny.en profiler: real evaluations at small settings, isolated, on real espeak-ng
speech, with a real compute type that CTranslate2 rejects on this CPU. Timing values are
reported, never asserted; the word error rate is (decoding is deterministic)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from deploytune.evaluators.base import Monitor
from deploytune.evaluators.isolated import IsolatedEvaluator
from deploytune.execution import run_trial
from deploytune.outcome import Constraint, CrashKind, Objective, Status
from deploytune.space import Space
from deploytune.workloads.whisper import (
    SAMPLE_RATE,
    SPACE,
    TRANSCRIPTS,
    _runs_as_requested,
    utterances,
    word_error_rate,
)

TARGET = "deploytune.workloads.whisper:evaluate"
OBJ = Objective("audio_s_per_s")
CONS = [Constraint.parse("wer <= 0.5")]
METRICS = ("p50_ms", "p95_ms", "p99_ms", "audio_s_per_s", "rtf", "wer", "memory_mb")


def run(config: dict[str, Any]) -> tuple[Any, list[Monitor]]:
    monitors: list[Monitor] = []

    def new_monitor() -> Monitor:
        monitors.append(Monitor())
        return monitors[-1]

    ev = IsolatedEvaluator(TARGET, timeout_s=120, memory_mb=None)
    return run_trial(ev, config, OBJ, CONS, new_monitor=new_monitor), monitors


def test_space_utterances_and_word_error_rate() -> None:
    space = Space.from_dict(SPACE)
    assert space.is_valid({"compute_type": "int8", "beam_size": 1, "mode": "batched",
                                 "batch_size": 2, "threads": 1})
    assert space.is_valid({"compute_type": "int8", "beam_size": 1,
                                 "mode": "sequential", "threads": 1})
    audio = utterances()
    assert len(audio) == len(TRANSCRIPTS) == len(set(TRANSCRIPTS))
    for a in audio:
        assert a.dtype == np.float32 and a.ndim == 1
        assert 2.0 < len(a) / SAMPLE_RATE < 8.0
        assert 0.1 < float(np.abs(a).max()) <= 1.0 and float(a.std()) > 0.01
    assert word_error_rate(["The cat sat."], ["the cat sat"]) == 0.0
    assert word_error_rate(["the cat sat"], ["the dog sat"]) == 1 / 3
    assert word_error_rate(["the cat sat"], ["the cat sat down"]) == 1 / 3
    assert word_error_rate(["the cat sat"], ["the sat"]) == 1 / 3
    assert word_error_rate(["Hello, World!", "a b"], ["hello   world", "a c"]) == 1 / 4
    # a bare int8 runs as int8_float32 on CPU; another type is a silent substitution
    assert _runs_as_requested("int8", "int8_float32")
    assert _runs_as_requested("float32", "float32")
    assert not _runs_as_requested("int8_float16", "int8_float32")


@pytest.mark.slow
def test_int8_greedy_sequential_one_thread_measures_everything() -> None:
    out, monitors = run({"compute_type": "int8", "beam_size": 1, "mode": "sequential",
                         "threads": 1})
    assert out.status is Status.FEASIBLE, out.error
    m = out.metrics
    print({k: round(m[k], 3) for k in METRICS})
    for key in METRICS:
        assert isinstance(m[key], float) and math.isfinite(m[key]) and m[key] > 0, key
    assert m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"]
    assert math.isclose(m["rtf"] * m["audio_s_per_s"], 1.0)
    assert m["wer"] < 0.5
    assert monitors[-1].reports == len(TRANSCRIPTS)  # p95 streamed after every utterance


def test_float16_is_an_invalid_config_from_ctranslate2() -> None:
    out, _ = run({"compute_type": "float16", "beam_size": 1, "mode": "sequential",
                  "threads": 1})
    assert out.status is Status.CRASHED and out.crash_kind is CrashKind.INVALID_CONFIG, out.error
    assert "Requested float16 compute type" in (out.error or "")


@pytest.mark.slow
def test_batched_mode_runs_and_measures_wer() -> None:
    out, monitors = run({"compute_type": "int8", "beam_size": 1, "mode": "batched",
                         "batch_size": 2, "threads": 1})
    assert out.status is Status.FEASIBLE, out.error
    m = out.metrics
    print({k: round(m[k], 3) for k in METRICS})
    for key in METRICS:
        assert isinstance(m[key], float) and math.isfinite(m[key]) and m[key] > 0, key
    assert m["wer"] < 0.5
    assert monitors[-1].reports >= 3
