"""A real llama.cpp server (llama-cpp-python) with SmolLM2-135M from PyPI, at a tiny load.

``make test`` installs the server and the model (``scripts/ensure-llama-cpp``). Every trial
starts the real server in its own process group, load-tests it with the built-in load
generator and stops it; nothing is mocked.
"""

from __future__ import annotations

import sys

import optuna
import pytest

import deploytune
from deploybench.llama_cpu import LLAMA_CONSTRAINTS, llama_cpu, llama_evaluator
from deploytune.evaluators.base import Monitor
from deploytune.evaluators.server import port_is_free, process_group_members
from deploytune.outcome import CrashKind, Status
from deploytune.workloads.llama_server import model_path, server_argv

TINY_LOAD = {"requests": 3, "concurrency": 1, "max_tokens": 8, "report_every": 1}
SMALL = {"model": "smollm2", "n_threads": 1, "n_batch": 128, "n_ubatch": 128, "n_ctx": 1024,
         "kv_type": "f16", "flash_attn": "false"}


def test_model_is_found_in_its_package_and_flags_are_translated() -> None:
    path = model_path("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    argv = server_argv(["--model", "smollm2", "--type_k", "q8_0", "--type_v=q4_0", "--port",
                        "9"])
    assert argv[:3] == [sys.executable, "-m", "llama_cpp.server"]
    assert argv[3:] == ["--model", str(path), "--type_k", "8", "--type_v", "2", "--port", "9"]
    with pytest.raises(ValueError, match="unknown; use one of smollm2, gemma3"):
        model_path("llama-70b")


@pytest.mark.slow
def test_load_generator_against_the_real_server() -> None:
    evaluation = llama_evaluator(TINY_LOAD).evaluate(dict(SMALL), Monitor())
    assert evaluation.error is None, evaluation.error
    m = evaluation.metrics
    assert m["completed"] == 3 and m["error_rate"] == 0
    assert 0 < m["ttft_p50_ms"] < 30000
    assert 0 < m["tpot_p50_ms"] < 2000
    assert 1 <= m["output_tokens_mean"] <= 8
    assert m["output_tokens_per_s"] > 0
    assert 100 < m["memory_mb"] < 2000  # the model, its 1024-token KV cache and the server
    assert m["kv_cache_mib"] > 0  # parsed from llama.cpp's start-up log
    assert process_group_members(evaluation.info["pid"]) == []
    assert port_is_free(evaluation.info["port"])


@pytest.mark.slow
def test_context_shorter_than_the_prompt_fails_requests() -> None:
    evaluation = llama_evaluator(TINY_LOAD).evaluate({**SMALL, "n_ctx": 32}, Monitor())
    assert evaluation.crash_kind is CrashKind.RUNTIME_ERROR
    assert "every request of the load test failed" in (evaluation.error or "")


@pytest.mark.slow
def test_real_tuning_run_with_a_start_up_crash_and_an_early_abort() -> None:
    """Four configurations, each visited once (grid): a feasible one, two quantized KV caches
    without flash attention (the server dies: invalid_config), and a 32k context whose memory
    at start-up already exceeds 1.5 x the cap (aborted before any request)."""
    space = {"n_ctx": {"type": "categorical", "choices": [512, 32768]},
             "kv_type": {"type": "categorical", "choices": ["f16", "q8_0"]}}
    evaluator = llama_evaluator(TINY_LOAD)
    base = {k: v for k, v in SMALL.items() if k not in space}

    class Fixed(deploytune.evaluators.base.Evaluator):
        def evaluate(self, config: dict[str, object], monitor: Monitor):  # type: ignore[override]
            return evaluator.evaluate({**base, **config}, monitor)

    class Grid(optuna.samplers.GridSampler):
        def after_trial(self, *args: object) -> None:  # type: ignore[override]
            """No ``study.stop()`` when the grid is exhausted: the budget ends the run."""

    sampler = Grid({"n_ctx": [512, 32768], "kv_type": ["f16", "q8_0"]}, seed=0)
    result = deploytune.optimize(
        Fixed(), space, objective="output_tokens_per_s",
        constraints=["memory_mb <= 450", "error_rate <= 0"], budget=4, sampler=sampler,
        early_abort={"before_feasible": 1.5, "after_feasible": 1.5})
    by_config = {(t.config["n_ctx"], t.config["kv_type"]): t for t in result.trials}
    assert len(by_config) == 4
    assert by_config[(512, "f16")].status is Status.FEASIBLE
    for n_ctx in (512, 32768):
        crash = by_config[(n_ctx, "q8_0")]
        assert crash.status is Status.CRASHED
        assert crash.crash_kind is CrashKind.INVALID_CONFIG
        assert "Failed to create llama_context" in (crash.error or "")
    aborted = by_config[(32768, "f16")]
    assert aborted.status is Status.ABORTED, (aborted.status, aborted.error, aborted.metrics)
    assert "memory_mb" in (aborted.error or "")
    assert "completed" not in aborted.metrics  # stopped before the load test
    assert result.best_trial is not None and result.best_trial.config["n_ctx"] == 512


def test_llama_cpu_problem_is_live_only() -> None:
    problem = llama_cpu()
    assert problem.live is not None
    assert [str(c) for c in problem.constraints] == [
        str(deploytune.Constraint.parse(c)) for c in LLAMA_CONSTRAINTS]
    with pytest.raises(RuntimeError, match="no simulation"):
        problem.simulate({}, None)  # type: ignore[arg-type]
