"""A tiny *real* workload for ``bench record`` and replay tests.

:func:`evaluate_windows` runs in the recorder's isolated child processes (imported there as
``tests.bench.toy_workload:evaluate_windows``, from the working directory, which must be the
repository root) and really does what a profiler does, in miniature:

* ``fast``: returns at once; latency grows with ``batch_size`` and shrinks with ``threads``.
* ``slow``: really sleeps ``SLOW_S_PER_ITEM * batch_size`` seconds in its first window (like
  loading a model), so under :data:`TIMEOUT_S` batches 1 and 2 run, batch 4 ends over the time
  limit (within the recorder's doubled one) and larger batches are declared.
* ``fat``: really allocates and touches ``FAT_MB_PER_ITEM * batch_size`` MB with numpy, so
  under :data:`MEMORY_MB` (an ``RLIMIT_AS`` cap on top of a child interpreter with numpy, about
  140 MB of address space when measured) batches 1 and 2 run and batch 4 raises MemoryError.
* ``bad``: raises :class:`~deploytune.outcome.InvalidConfig`.

The metrics are deterministic functions of the configuration, with a small per-window drift
(window ``i`` is ``1 + 0.01 i`` times slower), so the repeats of a cell differ but every
number in a recorded table can be predicted by :func:`nominal_metrics`; only the seconds are
really measured.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.real import RealWorkload, Scenario
from deploybench.recording import record_workload
from deploytune.outcome import InvalidConfig
from deploytune.workloads._profile import flatten_windows, record_windows

__all__ = ["FAT_MB_PER_ITEM", "GRID", "MEMORY_MB", "P95_LIMIT_MS", "SLOW_S_PER_ITEM", "SPACE",
           "TIMEOUT_S", "evaluate_windows", "nominal_metrics", "recorded_toy_table",
           "toy_workload"]

SPACE: dict[str, Any] = {
    "kind": {"type": "categorical", "choices": ["fast", "slow", "fat", "bad"]},
    "batch_size": {"type": "int", "low": 1, "high": 16, "log": True},
    # only the fast kind has threads: keeps the grid (and the recording) small and makes the
    # recorder and the replay deal with an inactive parameter
    "threads": {"type": "int", "low": 1, "high": 2, "when": {"kind": ["fast"]}},
}
GRID: dict[str, tuple[int, ...]] = {"batch_size": (1, 2, 4, 8, 16)}

TIMEOUT_S = 3.0
"""Time limit of one evaluation: slow batch 2 sleeps 1.6 s, batch 4 sleeps 3.2 s."""
SLOW_S_PER_ITEM = 0.8
FAT_MB_PER_ITEM = 120
MEMORY_MB = 500.0
"""Address-space cap: ~140 MB of interpreter + numpy, plus 240 MB fits, plus 480 MB does not."""
P95_LIMIT_MS = 12.0
"""The scenario's latency cap: fast batches of 9 and more (1 thread) or 16 (2 threads) and
every slow batch are infeasible."""


def nominal_metrics(config: dict[str, Any], window: int) -> dict[str, float]:
    """The metrics window ``window`` of a ``fast``, ``slow`` or ``fat`` configuration reports."""
    batch = int(config["batch_size"])
    drift = 1.0 + 0.01 * window
    if config["kind"] == "fast":
        p50 = (1.0 + batch) * (1.0 if int(config["threads"]) == 1 else 0.6) * drift
        quality = 0.9
    elif config["kind"] == "slow":
        p50 = 1000.0 * SLOW_S_PER_ITEM * batch * drift
        quality = 0.99
    else:
        p50 = (3.0 + batch) * drift
        quality = 0.95
    return {"p50_ms": p50, "p95_ms": 1.2 * p50, "items_per_s": batch / (p50 / 1000.0),
            "quality": quality - 0.001 * window}


def evaluate_windows(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """The recorder's target: :func:`~deploytune.workloads._profile.record_windows` windows
    of ``config`` (the recorder chooses them; see the module doc for what each kind really
    does), flattened."""
    kind = config["kind"]
    batch = int(config["batch_size"])
    if kind == "bad":
        raise InvalidConfig(f"toy: kind 'bad' cannot run (batch {batch})")
    if kind == "slow":
        time.sleep(SLOW_S_PER_ITEM * batch)
    if kind == "fat":
        block = np.ones(FAT_MB_PER_ITEM * batch * 1024 * 1024 // 8)  # MemoryError under the cap
        block[::4096] += 1.0
        del block
    first = nominal_metrics(config, 0)
    report({"p95_ms": first["p95_ms"]}, step=1)
    started = time.perf_counter()
    more = [nominal_metrics(config, w) for w in range(1, record_windows())]
    return flatten_windows([first, *more], time.perf_counter() - started)


def toy_workload(timeout_s: float = TIMEOUT_S, memory_mb: float = MEMORY_MB) -> RealWorkload:
    """The toy as a :class:`RealWorkload` (one scenario, ``max``: most items per second under
    a p95 cap)."""
    return RealWorkload(
        name="toy",
        target="tests.bench.toy_workload:evaluate_windows",
        record_target="tests.bench.toy_workload:evaluate_windows",
        space=SPACE,
        grid=GRID,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        families=("kind",),
        scenarios=(Scenario("max", "items_per_s", "maximize", (f"p95_ms <= {P95_LIMIT_MS:g}",),
                            "toy"),),
    )


REPO_ROOT = Path(__file__).resolve().parents[2]
_RECORDED: list[Path] = []


def recorded_toy_table(directory: Path) -> Path:
    """Record the toy into ``directory`` once per test process (the recording takes about ten
    seconds of real child processes; later calls return the first table). Callers that change
    the file must copy it first."""
    if not _RECORDED:
        with contextlib.chdir(REPO_ROOT):  # the children import tests.bench from their cwd
            _RECORDED.append(record_workload(toy_workload(), out=directory / "toy.json",
                                             windows=3))
    return _RECORDED[0]
