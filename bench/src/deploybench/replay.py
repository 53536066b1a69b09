"""Recorded tables and the problems built on them: ``<workload>-<scenario>-replay`` (seconds per
run, from the table) and ``<workload>-<scenario>`` (live: every evaluation really runs).

A replay evaluation of a configuration looks its cell up in the table recorded by
``deploytune bench record`` and returns one of the cell's recorded repeats, drawn from the
problem's seeded noise; a cell that crashed when recorded raises the same kind of crash
(``MemoryError`` for ``oom``, ``TimeoutError``, :class:`~deploytune.outcome.InvalidConfig`,
``RuntimeError``) with the recorded message.

**Unmeasured cells.** Integer parameters are recorded on a grid (batch size 1, 4, 16, 64, ...);
a value in between is *interpolated* between its two recorded neighbours, on a log scale for
log-scaled parameters, one parameter after another: when both neighbours ran, every metric
and the seconds are blended linearly with the same repeat index; when either crashed, the
nearer neighbour decides (a tie goes to the larger value, the one that needs more memory and
time), crash included. Interpolated results are approximations and the table says which cells
were measured; cells a recording *declared* (larger batches after a timeout or OOM) replay as
the crash they were declared with.

The known optimum and the reference of a replay problem are computed by enumerating every
configuration of the space on the noise-free table (the mean of the recorded repeats).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.problem import CostModel, Problem
from deploybench.real import RealWorkload, Scenario
from deploytune.outcome import (
    Constraint,
    CrashKind,
    InvalidConfig,
    Objective,
    Status,
    parse_constraints,
)
from deploytune.space import Config, Int, Space

__all__ = ["RecordedCost", "RecordedTable", "ReplayLandscape", "ReplayResult", "landscape",
           "live_problem", "replay_problem"]


@dataclass(frozen=True)
class ReplayResult:
    """What one (possibly interpolated) cell gives.

    Attributes:
        status: ``ok`` (it ran; feasibility depends on the scenario) or ``crashed``.
        crash_kind: The crash kind of a crashed cell.
        error: The recorded error message of a crashed cell.
        seconds: Wall seconds of the evaluation when it was recorded.
        metrics: The metrics of the chosen repeat (or their mean).
        measured: Whether the cell itself was measured (not interpolated nor declared).
    """

    status: str
    crash_kind: str | None = None
    error: str = ""
    seconds: float = 0.0
    metrics: Mapping[str, float] = field(default_factory=dict)
    measured: bool = True


def _exception(result: ReplayResult) -> BaseException:
    message = result.error or f"{result.crash_kind} (recorded)"
    kind = result.crash_kind
    if kind == CrashKind.OOM.value:
        return MemoryError(message)
    if kind == CrashKind.TIMEOUT.value:
        return TimeoutError(message)
    if kind == CrashKind.INVALID_CONFIG.value:
        return InvalidConfig(message)
    return RuntimeError(message)


def _mean(repeats: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = set(repeats[0]).intersection(*repeats[1:]) if repeats else set()
    return {k: float(np.mean([r[k] for r in repeats])) for k in sorted(keys)}


class RecordedTable:
    """A table recorded by :func:`~deploybench.recording.record_workload`."""

    def __init__(self, data: Mapping[str, Any], source: str = "<table>") -> None:
        """Index the table's cells.

        Args:
            data: The parsed JSON of a table file.
            source: Where it came from (for error messages).

        Raises:
            ValueError: For a file that is not a recorded table.
        """
        from deploybench.recording import FORMAT

        if data.get("format") != FORMAT:
            raise ValueError(f"{source}: not a recorded table (format {data.get('format')!r}, "
                             f"expected {FORMAT!r}); record one with `deploytune bench "
                             f"record WORKLOAD`")
        self.source = source
        self.header = {k: v for k, v in data.items() if k != "cells"}
        self.space = Space.from_dict(data["space"])
        self.windows = int(data.get("windows", 1))
        self._cells = {self._key(c["config"]): c for c in data["cells"]}
        self._grid: dict[str, list[int]] = {}
        for p in self.space:
            if isinstance(p, Int):
                values = sorted({int(c["config"][p.name]) for c in data["cells"]
                                 if p.name in c["config"]})
                self._grid[p.name] = values

    @classmethod
    def load(cls, path: str | Path) -> RecordedTable:
        """Read a table file."""
        path = Path(path)
        return cls(json.loads(path.read_text()), source=str(path))

    @staticmethod
    def _key(config: Mapping[str, Any]) -> str:
        return json.dumps({k: config[k] for k in sorted(config)})

    @property
    def cells(self) -> list[Mapping[str, Any]]:
        """The recorded cells, in recording order."""
        return list(self._cells.values())

    def lookup(self, config: Mapping[str, Any], repeat: int | None = None) -> ReplayResult:
        """The result of ``config``: the recorded cell, or an interpolation (module doc).

        Args:
            config: A configuration of the table's space.
            repeat: Which recorded repeat to return (modulo the number of repeats);
                ``None`` for the mean of the repeats (the noise-free value).

        Raises:
            KeyError: For a grid configuration the table does not hold (an incomplete
                recording), naming it.
        """
        for name, values in self._grid.items():
            if name not in config or not values:
                continue
            value = int(config[name])
            if value in values:
                continue
            lo = max((v for v in values if v < value), default=values[0])
            hi = min((v for v in values if v > value), default=values[-1])
            if lo == hi:
                return self.lookup({**config, name: lo}, repeat)
            param = self.space[name]
            scale = math.log if getattr(param, "log", False) else float
            w = (scale(value) - scale(lo)) / (scale(hi) - scale(lo))
            a = self.lookup({**config, name: lo}, repeat)
            b = self.lookup({**config, name: hi}, repeat)
            return _blend(a, b, w)
        cell = self._cells.get(self._key(config))
        if cell is None:
            raise KeyError(f"{self.source}: no recorded cell for {dict(config)} (an "
                           f"incomplete recording? run `deploytune bench record "
                           f"{self.header.get('workload')}` to complete it)")
        repeats = cell.get("repeats") or []
        if cell["status"] == "crashed":
            return ReplayResult("crashed", cell["crash_kind"], cell.get("error", ""),
                                float(cell["seconds"]), measured=not cell.get("declared"))
        metrics = _mean(repeats) if repeat is None else dict(repeats[repeat % len(repeats)])
        return ReplayResult("ok", seconds=float(cell["seconds"]), metrics=metrics)


def _blend(a: ReplayResult, b: ReplayResult, w: float) -> ReplayResult:
    if a.status == "ok" and b.status == "ok":
        keys = set(a.metrics) & set(b.metrics)
        metrics = {k: (1 - w) * a.metrics[k] + w * b.metrics[k] for k in sorted(keys)}
        return ReplayResult("ok", seconds=(1 - w) * a.seconds + w * b.seconds,
                            metrics=metrics, measured=False)
    near = a if w < 0.5 - 1e-9 else b  # a tie (up to rounding) goes to the larger value
    return ReplayResult(near.status, near.crash_kind, near.error, near.seconds, near.metrics,
                        measured=False)


@dataclass(frozen=True)
class RecordedCost(CostModel):
    """Seconds of an evaluation as recorded in the table (the mean over the cell's history:
    one number per configuration, whatever the outcome)."""

    table: RecordedTable | None = None

    def seconds(self, config: Config, status: Status, crash_kind: CrashKind | None,
                rung: str | None = None) -> float:
        """The recorded wall seconds of ``config`` (interpolated for unmeasured cells)."""
        if self.table is None:
            return super().seconds(config, status, crash_kind)
        return float(self.table.lookup(config).seconds)


def _is_feasible(metrics: Mapping[str, float], constraints: Sequence[Constraint]) -> bool:
    return all(c.metric in metrics and c.is_met(metrics[c.metric]) for c in constraints)


def _all_configs(space: Space) -> list[dict[str, Any]]:
    """Every configuration of a space of categorical and integer parameters."""
    configs: list[dict[str, Any]] = [{}]
    for p in space:
        values: Sequence[Any]
        if isinstance(p, Int):
            values = range(p.low, p.high + 1)
        else:
            values = list(getattr(p, "choices", ()))
            if not values:
                raise ValueError(f"parameter {p.name!r}: replay needs categorical or integer "
                                 f"parameters")
        grown: list[dict[str, Any]] = []
        for config in configs:
            if space.is_active(p, config):
                grown.extend({**config, p.name: v} for v in values)
            else:
                grown.append(config)
        configs = grown
    return [c for c in configs if not space.is_forbidden(c)]


@dataclass(frozen=True)
class ReplayLandscape:
    """What enumerating a replay problem found.

    Attributes:
        optimum: The best noise-free feasible objective value.
        best_config: A configuration reaching it.
        reference: The median objective of feasible configurations under random sampling.
        crashed: Share of random samples that crash.
        infeasible: Share that run but violate a constraint.
        feasible: Share that are feasible.
        feasible_values: Parameter -> the values that occur in at least one feasible
            configuration (categorical parameters only).
    """

    optimum: float
    best_config: Mapping[str, Any]
    reference: float
    crashed: float
    infeasible: float
    feasible: float
    feasible_values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


def landscape(table: RecordedTable, objective: Objective,
              constraints: Sequence[Constraint], samples: int = 4000) -> ReplayLandscape:
    """Enumerate the table's space (optimum) and sample it at random (reference, shares).

    Raises:
        ValueError: When no configuration is feasible, or every feasible one ties.
    """
    best: tuple[float, Mapping[str, Any]] | None = None
    categorical = [p.name for p in table.space if getattr(p, "choices", None)]
    seen: dict[str, dict[Any, None]] = {name: {} for name in categorical}
    for config in _all_configs(table.space):
        result = table.lookup(config)
        if result.status != "ok" or not _is_feasible(result.metrics, constraints):
            continue
        for name in categorical:
            if name in config:
                seen[name][config[name]] = None
        value = float(result.metrics[objective.metric])
        if best is None or objective.better(value, best[0]):
            best = (value, config)
    if best is None:
        raise ValueError(f"{table.source}: no feasible configuration under "
                         f"{[str(c) for c in constraints]}")
    rng = np.random.default_rng(0)
    values: list[float] = []
    crashed = infeasible = 0
    for _ in range(samples):
        result = table.lookup(table.space.sample(rng))
        if result.status != "ok":
            crashed += 1
        elif not _is_feasible(result.metrics, constraints):
            infeasible += 1
        else:
            values.append(float(result.metrics[objective.metric]))
    reference = float(np.median(values)) if values else best[0] - objective.sign
    if not objective.sign * (best[0] - reference) > 0:
        reference = best[0] - objective.sign * max(abs(best[0]) * 0.1, 1e-6)
    return ReplayLandscape(best[0], best[1], reference, crashed / samples,
                           infeasible / samples, len(values) / samples,
                           {name: tuple(v) for name, v in seen.items()})


@functools.lru_cache(maxsize=8)
def _load_table(path: str) -> RecordedTable:
    return RecordedTable.load(path)


@functools.lru_cache(maxsize=32)
def _cached_landscape(table: RecordedTable, scenario: Scenario) -> ReplayLandscape:
    """:func:`landscape` once per (table, scenario): building a problem stays cheap."""
    return landscape(table, Objective(scenario.objective, scenario.direction),
                     parse_constraints(list(scenario.constraints)))


def _table_for(workload: RealWorkload) -> RecordedTable:
    from deploybench.recording import default_table_path

    path = default_table_path(workload.name)
    if not path.exists():
        raise ValueError(f"no recorded table for workload {workload.name!r} at {path}; record "
                         f"it with `deploytune bench record {workload.name}`")
    return _load_table(str(path))


def _with_memory(space: Space, monotone: Sequence[str]) -> Space:
    """``space`` with ``memory: increasing`` declared on the workload's monotone parameters
    (those along which the recorder found cost and memory only grow, e.g. batch size): what a
    user who knows the workload would declare in a spec."""
    spec = space.to_dict()
    for name in monotone:
        if name in spec:
            spec[name]["memory"] = "increasing"
    return Space.from_dict(spec, space.forbidden)


def _problem(workload: RealWorkload, scenario: Scenario, replay: bool) -> Problem:
    table = _table_for(workload)
    objective = Objective(scenario.objective, scenario.direction)
    constraints = parse_constraints(list(scenario.constraints))
    land = _cached_landscape(table, scenario)
    name = f"{workload.name}-{scenario.name}{'-replay' if replay else ''}"

    def simulate(config: Config, rng: np.random.Generator) -> Mapping[str, float]:
        result = table.lookup(config, int(rng.integers(0, max(1, table.windows))))
        if result.status != "ok":
            raise _exception(result)
        return dict(result.metrics)

    how = ("replays the table recorded " + str(table.header.get("recorded_at", "?"))
           if replay else "runs every evaluation for real, isolated")
    description = (
        f"{workload.name} {scenario.name}: {scenario.description}. This problem {how} "
        f"(time limit {workload.timeout_s:g} s, memory cap {workload.memory_mb:g} MB). "
        f"Under random sampling {land.crashed:.0%} of configurations crash, "
        f"{land.infeasible:.0%} run but violate a constraint, {land.feasible:.0%} are feasible; "
        f"the recorded optimum is {land.optimum:.4g} at {dict(land.best_config)}.")
    problem = Problem(name, _with_memory(table.space, workload.monotone), objective,
                      constraints, simulate, land.optimum,
                      land.reference, cost=RecordedCost(table=table), description=description,
                      families=workload.families,
                      feasible_families={f: land.feasible_values[f] for f in workload.families
                                         if f in land.feasible_values})
    if not replay:
        problem.live = functools.partial(_live_evaluator, workload)
    return problem


def _live_evaluator(workload: RealWorkload) -> Any:
    from deploytune.evaluators.isolated import IsolatedEvaluator

    return IsolatedEvaluator(workload.target, timeout_s=workload.timeout_s,
                             memory_mb=workload.memory_mb)


def replay_problem(workload: RealWorkload, scenario: Scenario) -> Problem:
    """``<workload>-<scenario>-replay``: evaluations replay the recorded table."""
    return _problem(workload, scenario, replay=True)


def live_problem(workload: RealWorkload, scenario: Scenario) -> Problem:
    """``<workload>-<scenario>``: evaluations really run, isolated (minutes per run); the
    optimum and reference are the recorded table's, so regret is measured against it."""
    return _problem(workload, scenario, replay=False)
