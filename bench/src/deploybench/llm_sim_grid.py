"""Exhaustive and random noise-free evaluation of an ``llm-sim`` instance: every configuration
of its grid (:func:`enumerate_metrics`), the grid optimum, the family values that can be
feasible, and the random-sampling reference.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import numpy as np

from deploybench.llm_sim_engine import simulate_llm
from deploybench.llm_sim_hardware import QUANTIZATIONS, LLMInstance, llm_space, resolve_instance
from deploybench.llm_sim_perf import STAGES, Cols, metrics_arrays, run_core
from deploytune.outcome import (
    InvalidConfig,
    Objective,
    Status,
    TransientError,
    judge,
    parse_constraints,
)
from deploytune.space import Config

__all__ = ["enumerate_metrics", "feasible_family_values", "grid_optimum", "random_reference"]


def _grid_columns(inst: LLMInstance) -> tuple[Cols, list[tuple[Any, ...]]]:
    """Columns of every configuration of the instance's space, in ``itertools.product`` order."""
    space = llm_space(inst)
    choices = [p.choices for p in space]  # type: ignore[attr-defined]
    idx = np.indices([len(ch) for ch in choices]).reshape(len(choices), -1)
    vals = [np.asarray(ch, dtype=object)[i] for ch, i in zip(choices, idx, strict=True)]
    named = dict(zip(space.names, vals, strict=True))
    cols: Cols = {
        "tp": named["tensor_parallel_size"].astype(np.int64),
        "u": named["gpu_memory_utilization"].astype(np.float64),
        "lmax": named["max_model_len"].astype(np.int64),
        "T": named["max_num_batched_tokens"].astype(np.int64),
        "S": named["max_num_seqs"].astype(np.int64),
        "chunked": named["enable_chunked_prefill"].astype(bool),
        "prefix": named["enable_prefix_caching"].astype(bool),
        "kv_fp8": named["kv_cache_dtype"] == "fp8",
        "quant": np.array([QUANTIZATIONS.index(q) for q in QUANTIZATIONS], dtype=np.int64)[
            idx[space.names.index("quantization")]],
        "eager": named["enforce_eager"].astype(bool),
    }
    return cols, choices


def enumerate_metrics(instance: LLMInstance | str) -> tuple[list[Config], dict[str, np.ndarray]]:
    """Noise-free full-fidelity results of every configuration of the instance's space.

    Returns:
        ``(configs, arrays)``: the configurations in ``itertools.product`` order of the space's
        choices, and arrays aligned with them: ``stage`` (index into :data:`STAGES`, runtime
        OOM included) and every metric of :func:`simulate_llm` (meaningful where
        ``stage == 0``).
    """
    inst = resolve_instance(instance)
    cols, choices = _grid_columns(inst)
    core = run_core(inst, cols)
    arrays = metrics_arrays(inst, core)
    stage = core["stage"].copy()
    stage[(stage == 0) & (core["p_runtime_oom"] > 0.5)] = len(STAGES) - 1
    arrays["stage"] = stage
    names = llm_space(inst).names
    configs = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]
    return configs, arrays


def _feasible_grid(inst: LLMInstance) -> tuple[np.ndarray, dict[str, np.ndarray],
                                               list[tuple[Any, ...]]]:
    """Noise-free feasibility of every grid configuration (a runtime OOM more likely than not
    counts as a crash), the metric arrays, and the choices per parameter (grid order)."""
    cols, choices = _grid_columns(inst)
    core = run_core(inst, cols)
    arrays = metrics_arrays(inst, core)
    ok = (core["stage"] == 0) & (core["p_runtime_oom"] <= 0.5)
    for con in parse_constraints(inst.constraints):
        ok &= arrays[con.metric] <= con.limit if con.op == "<=" else arrays[con.metric] >= con.limit
    return ok, arrays, choices


def grid_optimum(instance: LLMInstance | str) -> tuple[float, Config]:
    """The best noise-free feasible objective over the whole grid, and its configuration.

    Ties go to the first configuration in ``itertools.product`` order of the space's choices.

    Raises:
        ValueError: When no configuration is feasible.
    """
    inst = resolve_instance(instance)
    ok, arrays, choices = _feasible_grid(inst)
    if not ok.any():
        raise ValueError(f"{inst.name}: no feasible configuration in the grid")
    value = np.where(ok, arrays[inst.objective], -np.inf)
    best = int(np.argmax(value))
    shape = [len(ch) for ch in choices]
    pos = np.unravel_index(best, shape)
    config = {p: ch[int(i)] for p, ch, i in zip(llm_space(inst).names, choices, pos, strict=True)}
    return float(value[best]), config


def feasible_family_values(instance: LLMInstance | str,
                           families: tuple[str, ...] = ("tensor_parallel_size", "quantization"),
                           ) -> dict[str, tuple[Any, ...]]:
    """For each family parameter, the values that occur in at least one noise-free feasible
    configuration of the whole grid (in the order of the parameter's choices)."""
    inst = resolve_instance(instance)
    ok, _, choices = _feasible_grid(inst)
    shape = [len(ch) for ch in choices]
    names = llm_space(inst).names
    feasible = ok.reshape(shape)
    out: dict[str, tuple[Any, ...]] = {}
    for fam in families:
        axis = names.index(fam)
        other = tuple(i for i in range(len(shape)) if i != axis)
        any_ok = np.asarray(feasible.any(axis=other)).tolist()
        out[fam] = tuple(v for v, flag in zip(choices[axis], any_ok, strict=True) if flag)
    return out


def _judge_noise_free(inst: LLMInstance, config: Config) -> float | None:
    try:
        metrics = simulate_llm(inst, config, noise=False)
    except (InvalidConfig, MemoryError, TransientError):
        return None
    outcome = judge(metrics, Objective(inst.objective, "maximize"),
                    parse_constraints(inst.constraints))
    return outcome.value if outcome.status is Status.FEASIBLE else None


def random_reference(instance: LLMInstance | str, n: int = 20000) -> float:
    """Median noise-free objective of the feasible ones among ``n`` random configurations.

    Configuration ``i`` is ``llm_space(instance).sample(np.random.default_rng(i))``.
    """
    inst = resolve_instance(instance)
    space = llm_space(inst)
    values = [v for i in range(n)
              if (v := _judge_noise_free(inst, space.sample(np.random.default_rng(i))))
              is not None]
    return float(statistics.median(values))
