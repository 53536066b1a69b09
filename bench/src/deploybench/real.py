"""Real DeployBench workloads: what ``deploytune bench record`` measures and which problems
(``<workload>-<scenario>`` live, ``<workload>-<scenario>-replay`` from the recorded table) are
built on it.

A :class:`RealWorkload` names a profiler of :mod:`deploytune.workloads`, the grid its table is
recorded on, the isolation limits every evaluation runs under (the time limit and the memory
cap make the real crash zones), and its :class:`Scenario` s: objective plus hard constraints
whose limits were chosen from the recorded measurements so that the feasible region is small
but not empty (the fractions are in ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WORKLOADS", "RealWorkload", "Scenario", "get_workload", "split_problem_name"]


@dataclass(frozen=True)
class Scenario:
    """One deployment goal on a real workload.

    Attributes:
        name: Short name (``edge``, ``server``); the problem is ``<workload>-<name>``.
        objective: The metric to optimise.
        direction: ``maximize`` or ``minimize``.
        constraints: Hard constraints, e.g. ``"p95_ms <= 60"``.
        description: What deployment this stands for.
    """

    name: str
    objective: str
    direction: str
    constraints: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class RealWorkload:
    """A real profiler and how its table is recorded.

    Attributes:
        name: Short name (``effnet``, ``minilm``, ``whisper``).
        target: ``module:function`` the tuner evaluates (one timed window).
        record_target: ``module:function`` the recorder evaluates (several timed windows).
        space: The search space (dict form of :class:`~deploytune.space.Space`).
        grid: Values measured per parameter; integer parameters in between are interpolated
            on replay. Parameters missing here are measured at every value (categoricals).
        timeout_s: Time limit of one evaluation (a slower run is a ``timeout`` crash).
        memory_mb: Address-space cap of one evaluation (``RLIMIT_AS``; exceeding it is ``oom``).
        monotone: Integer parameters along which cost and memory only grow: once a value
            crashes with ``timeout`` or ``oom``, larger values of the same row are declared with
            the same crash instead of being measured.
        scenarios: The deployment goals built on this workload.
        families: Top-level categorical parameters (for the "discovery" metric).
        windows: Timed windows (repeats) recorded per cell.
    """

    name: str
    target: str
    record_target: str
    space: Mapping[str, Any]
    grid: Mapping[str, tuple[Any, ...]]
    timeout_s: float
    memory_mb: float
    scenarios: tuple[Scenario, ...]
    monotone: tuple[str, ...] = ("batch_size",)
    families: tuple[str, ...] = field(default_factory=tuple)
    windows: int = 3

    def scenario(self, name: str) -> Scenario:
        """The scenario called ``name``.

        Raises:
            ValueError: For an unknown scenario, naming the known ones.
        """
        for s in self.scenarios:
            if s.name == name:
                return s
        raise ValueError(f"workload {self.name!r} has no scenario {name!r}; scenarios: "
                         f"{', '.join(s.name for s in self.scenarios)}")

    def problem_names(self, replay: bool) -> list[str]:
        """``<workload>-<scenario>`` (``-replay`` appended when ``replay``) for every scenario."""
        return [f"{self.name}-{s.name}{'-replay' if replay else ''}" for s in self.scenarios]


def _effnet() -> RealWorkload:
    from deploytune.workloads import efficientnet

    return RealWorkload(
        name="effnet",
        target="deploytune.workloads.efficientnet:evaluate",
        record_target="deploytune.workloads.efficientnet:evaluate_windows",
        space=efficientnet.SPACE,
        grid={"batch_size": (1, 4, 16, 64)},
        timeout_s=25.0,
        memory_mb=3000.0,
        families=("variant", "backend"),
        scenarios=(
            Scenario("edge", "top1_vs_lite2", "maximize",
                     ("p95_ms <= 60", "memory_mb <= 1000", "top1_agreement >= 0.95"),
                     "an edge box: the most accurate model (agreement with fp32 Lite2) whose "
                     "batches stay under a p95 latency cap and a memory cap, without losing "
                     "more than 5% of predictions to precision or runtime"),
            Scenario("server", "images_per_s", "maximize",
                     ("p95_ms <= 150", "top1_agreement >= 0.95", "memory_mb <= 1200"),
                     "a throughput server: the most images per second under a per-batch "
                     "latency cap, with predictions faithful to fp32"),
        ))


def _minilm() -> RealWorkload:
    from deploytune.workloads import minilm

    return RealWorkload(
        name="minilm",
        target="deploytune.workloads.minilm:evaluate",
        record_target="deploytune.workloads.minilm:evaluate_windows",
        space=minilm.SPACE,
        grid={"batch_size": (1, 4, 16, 64)},
        timeout_s=25.0,
        memory_mb=3000.0,
        families=("backend",),
        scenarios=(
            Scenario("edge", "cosine_min", "maximize",
                     ("p95_ms <= 25", "memory_mb <= 1000"),
                     "an edge embedding service: the most faithful embeddings (worst-case "
                     "cosine to fp32) under a tight p95 latency cap and a memory cap, where "
                     "the fast int8 configurations lose fidelity"),
            Scenario("server", "sentences_per_s", "maximize",
                     ("p95_ms <= 100", "cosine_min >= 0.99", "nn_agreement >= 0.95"),
                     "a throughput server: the most sentences per second under a per-batch "
                     "latency cap with embeddings faithful to fp32"),
        ))


def _whisper() -> RealWorkload:
    from deploytune.workloads import whisper

    return RealWorkload(
        name="whisper",
        target="deploytune.workloads.whisper:evaluate",
        record_target="deploytune.workloads.whisper:evaluate_windows",
        space=whisper.SPACE,
        grid={"beam_size": (1, 5), "batch_size": (1, 8)},
        windows=2,
        timeout_s=60.0,
        memory_mb=3000.0,
        families=("compute_type", "mode"),
        scenarios=(
            Scenario("edge", "wer", "minimize",
                     ("p95_ms <= 1000", "memory_mb <= 300"),
                     "an on-device dictation box: the lowest word error rate with every "
                     "utterance transcribed within a p95 latency cap and a memory cap"),
            Scenario("server", "audio_s_per_s", "maximize",
                     ("wer <= 0.06", "memory_mb <= 400"),
                     "a batch transcription server: the most seconds of audio per second with "
                     "a word error rate cap"),
        ))


_FACTORIES = {"effnet": _effnet, "minilm": _minilm, "whisper": _whisper}
WORKLOADS: tuple[str, ...] = tuple(_FACTORIES)
"""Names of the real workloads."""


def get_workload(name: str) -> RealWorkload:
    """The workload called ``name`` (or the workload of a problem name such as
    ``effnet-edge-replay``).

    Raises:
        ValueError: For an unknown name, listing the known workloads.
    """
    base = name.split("-", 1)[0]
    if base not in _FACTORIES:
        raise ValueError(f"unknown real workload {name!r}; known: {', '.join(WORKLOADS)} "
                         f"(or one of their problems, e.g. effnet-edge)")
    return _FACTORIES[base]()


def split_problem_name(name: str) -> tuple[RealWorkload, Scenario, bool] | None:
    """``effnet-edge-replay`` -> (workload, scenario, replay=True); ``None`` when ``name`` is
    not a real-workload problem."""
    parts = name.split("-")
    if parts[0] not in _FACTORIES or len(parts) not in (2, 3):
        return None
    if len(parts) == 3 and parts[2] != "replay":
        return None
    workload = _FACTORIES[parts[0]]()
    try:
        scenario = workload.scenario(parts[1])
    except ValueError:
        return None
    return workload, scenario, len(parts) == 3
