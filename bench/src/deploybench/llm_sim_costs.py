"""What an ``llm-sim`` evaluation costs in simulated seconds: per fidelity and stage
(:func:`fidelity_cost_s`) and as the problems' cost model (:class:`LLMSimCost`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deploybench.llm_sim_engine import ANALYTIC_S, FIDELITIES, RUNTIME_OOM_AT, noise_free_stage
from deploybench.llm_sim_hardware import INSTANCES, LLMInstance, resolve_instance
from deploybench.llm_sim_perf import (
    FULL_REQUESTS,
    SHORT_REQUESTS,
    STAGES,
    STATIC_STAGES,
    config_columns,
    load_test_seconds,
    run_core,
)
from deploybench.problem import CostModel
from deploytune.outcome import CrashKind, Status
from deploytune.space import Config

__all__ = ["LLMSimCost", "fidelity_cost_s"]


def fidelity_cost_s(instance: LLMInstance | str, config: Mapping[str, Any],
                    fidelity: str = "full", outcome: str | None = None) -> float:
    """Simulated seconds of one evaluation of ``config`` at ``fidelity`` (deterministic).

    Args:
        instance: The instance or its name.
        config: A configuration.
        fidelity: One of :data:`FIDELITIES`.
        outcome: Where it ended: a name from :data:`STAGES` (``"ok"`` = it ran to the end),
            ``"transient"`` (a leaked snapshot: static checks + process start) or ``None`` for
            the noise-free stage of ``config``.

    Returns:
        Seconds: static checks 5-9 s; a weight-load OOM costs the load up to the failure; the
        no-cache-blocks and max-model-len errors cost load + profile; a CUDA-graph OOM adds the
        compilation and capture; a runtime OOM costs boot + 75% of the load test; a run that
        ends costs boot + the load test (``boot`` fidelity: boot only; ``analytic``: 0.05 s).
    """
    if fidelity not in FIDELITIES:
        raise ValueError(f"unknown fidelity {fidelity!r}; one of {', '.join(FIDELITIES)}")
    if fidelity == "analytic":
        return ANALYTIC_S
    inst = resolve_instance(instance)
    core = run_core(inst, config_columns(config))
    stage = outcome if outcome is not None else noise_free_stage(inst, config)
    c = {k: float(v[0]) for k, v in core.items()}
    static = c["static_s"]
    if stage in STAGES[1:STATIC_STAGES + 1]:
        return static
    if stage in ("snapshot", "transient"):
        return static + c["init_s"]
    if stage == "weight_oom":
        reached = min(1.0, c["free_gib"] / max(c["weights_gib"], 1e-9))
        return static + c["init_s"] + c["load_s"] * reached
    if stage in ("no_cache_blocks", "max_model_len"):
        return static + c["init_s"] + c["load_s"] + c["profile_s"]
    if stage == "cuda_graph_oom":
        return c["boot_s"]
    if fidelity == "boot":
        return c["boot_s"]
    requests = FULL_REQUESTS if fidelity == "full" else SHORT_REQUESTS
    test = float(load_test_seconds(core, requests)[0])
    if stage == "runtime_oom":
        return c["boot_s"] + RUNTIME_OOM_AT * test
    if stage == "ok":
        return c["boot_s"] + test
    raise ValueError(f"unknown outcome {stage!r}; one of {', '.join(STAGES)} or 'transient'")


@dataclass(frozen=True)
class LLMSimCost(CostModel):
    """Config-dependent seconds of a full-fidelity evaluation (see :func:`fidelity_cost_s`).

    The crash kind and the configuration's noise-free stage say where it failed: an ``oom``
    crash of a configuration that fails at startup noise-free costs that stage; of one that
    boots noise-free, a runtime OOM when its probability is above 0.1%, otherwise a CUDA-graph
    OOM (boot). An aborted evaluation costs boot plus a quarter of the load test, or, stopped
    at the end of a fidelity rung (``boot``, ``short``), what that rung costs.
    """

    instance: str = "llm-sim-8b-24gb"

    def seconds(self, config: Config, status: Status, crash_kind: CrashKind | None,
                rung: str | None = None) -> float:
        """Simulated seconds of an evaluation of ``config`` that ended with ``status`` (after
        the fidelity ``rung``, for an aborted one that passed one)."""
        inst = INSTANCES[self.instance]
        stage = noise_free_stage(inst, config)
        if status is Status.CRASHED:
            kind = crash_kind or CrashKind.RUNTIME_ERROR
            if kind is CrashKind.INVALID_CONFIG:
                return float(5.0 + 0.5 * int(config["tensor_parallel_size"]))
            if kind is CrashKind.TRANSIENT:
                return fidelity_cost_s(inst, config, "full", "transient")
            if kind is CrashKind.OOM and stage in ("ok", "runtime_oom"):
                p = float(run_core(inst, config_columns(config))["p_runtime_oom"][0])
                stage = "runtime_oom" if p > 1e-3 else "cuda_graph_oom"
            elif stage == "ok" or stage in STAGES[1:STATIC_STAGES + 1]:
                stage = "cuda_graph_oom" if stage == "ok" else stage
            return fidelity_cost_s(inst, config, "full", stage)
        if status is Status.ABORTED and rung in ("boot", "short"):
            return fidelity_cost_s(inst, config, rung, "ok")
        if status is Status.ABORTED:
            core = run_core(inst, config_columns(config))
            return float(core["boot_s"][0] + 0.25 * load_test_seconds(core, FULL_REQUESTS)[0])
        return fidelity_cost_s(inst, config, "full", "ok")

