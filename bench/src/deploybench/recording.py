"""``deploytune bench record WORKLOAD``: measure a real workload's grid once and save it.

Every cell of the grid (every combination of the workload's categorical values and recorded
integer values) is evaluated the way the tuner would evaluate it: in a fresh isolated process
under the workload's time limit and memory cap. A cell that runs measures
the workload's number of timed windows in that process; each
window is one *repeat* (the replay samples one per evaluation, so measurement noise is kept).
A cell that crashes records the crash kind, the error and the seconds it took.

Rules that keep a recording honest and affordable:

* The recording runs with twice the time limit, because the extra windows take time a real
  evaluation would not spend; the profiler stops its first window with ``TimeoutError`` once
  the real limit has passed (``DEPLOYTUNE_RECORD_DEADLINE``), and a cell whose first window
  ended after the real limit is recorded as the ``timeout`` it would have been (its seconds are
  the limit).
* Along the workload's *monotone* parameters (batch size), cells are measured in ascending
  order; once one crashes with ``timeout`` or ``oom``, the larger values of the same row are
  *declared* with that crash, not measured (a larger batch neither runs faster nor needs less
  memory). Declared cells say so (``declared``) in the table.
* The table is rewritten after every cell, so a killed recording resumes where it stopped
  (cells recorded under the same settings are kept).

The file is JSON with a header: the command, the date, the machine (CPU model, cores),
package versions, limits and grid. Each cell also records ``foreign_cpu_s``, the CPU seconds
other processes used while it was measured (busy time of the machine minus the recorder's and
its evaluation's): latency on 2 cores depends on co-tenancy, so a cell measured beside another
busy process can be found, deleted and measured again (the recorder only measures missing
cells).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from deploybench.real import RealWorkload
from deploytune.space import Categorical, Int, Space

__all__ = ["FORMAT", "default_table_path", "grid_cells", "grid_rows", "record_workload",
           "unflatten_windows"]

FORMAT = "deploytune-recorded-table/1"
"""The ``format`` field of a table file."""

_DATA = Path(__file__).parent / "data"


def default_table_path(workload: str) -> Path:
    """Where the table of ``workload`` ships: ``deploybench/data/<workload>.json``."""
    return _DATA / f"{workload}.json"


def unflatten_windows(metrics: Mapping[str, float]) -> tuple[list[dict[str, float]], float]:
    """Invert :func:`~deploytune.workloads._profile.flatten_windows`: the metrics of each
    window, and the seconds spent on the windows after the first."""
    windows: dict[int, dict[str, float]] = {0: {}}
    extra = 0.0
    for key, value in metrics.items():
        if key == "extra_windows_s":
            extra = float(value)
            continue
        name, _, index = key.partition("#")
        windows.setdefault(int(index) if index else 0, {})[name] = float(value)
    return [windows[i] for i in sorted(windows)], extra


def _values(space: Space, workload: RealWorkload, name: str) -> tuple[Any, ...]:
    param = space[name]
    if name in workload.grid:
        return tuple(workload.grid[name])
    if isinstance(param, Categorical):
        return tuple(param.choices)
    if isinstance(param, Int):
        return tuple(range(param.low, param.high + 1))
    raise ValueError(f"grid of workload {workload.name!r}: parameter {name!r} is real-valued; "
                     f"give its recorded values in the workload's grid")


def grid_cells(workload: RealWorkload) -> Iterator[dict[str, Any]]:
    """Every configuration of the grid, once, in grid order (inactive parameters left out,
    forbidden combinations skipped)."""
    space = Space.from_dict(dict(workload.space))
    names = space.names
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for combo in itertools.product(*(_values(space, workload, n) for n in names)):
        full = dict(zip(names, combo, strict=True))
        config: dict[str, Any] = {}
        for p in space:
            if space.is_active(p, config):
                config[p.name] = full[p.name]
        key = space.key(config)
        if key in seen or space.is_forbidden(config):
            continue
        seen.add(key)
        yield config


def grid_rows(workload: RealWorkload) -> list[list[dict[str, Any]]]:
    """The grid's cells grouped in rows: the cells of a row differ only in the monotone
    parameters, and are sorted ascending along them."""
    monotone = [m for m in workload.monotone if m in workload.space]
    rows: dict[tuple[tuple[str, Any], ...], list[dict[str, Any]]] = {}
    for config in grid_cells(workload):
        row_key = tuple((k, v) for k, v in config.items() if k not in monotone)
        rows.setdefault(row_key, []).append(config)
    return [sorted(r, key=lambda c: tuple(c.get(m, 0) for m in monotone)) for r in rows.values()]


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for pkg in ("torch", "onnxruntime", "ctranslate2", "faster-whisper", "transformers",
                "numpy", "deploytune"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "packages": versions}


def _header(workload: RealWorkload, windows: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "workload": workload.name,
        "command": f"deploytune bench record {workload.name}",
        "recorded_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": _machine(),
        "target": workload.target,
        "record_target": workload.record_target,
        "timeout_s": workload.timeout_s,
        "memory_mb": workload.memory_mb,
        "windows": windows,
        "space": dict(workload.space),
        "grid": {k: list(v) for k, v in workload.grid.items()},
        "monotone": list(workload.monotone),
        "cells": [],
    }


def _same_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = ("format", "workload", "record_target", "timeout_s", "memory_mb", "windows", "space",
            "grid", "monotone")
    return all(json.dumps(old.get(k), sort_keys=True) == json.dumps(new.get(k), sort_keys=True)
               for k in keys)


def _write(path: Path, table: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _cell_key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (``/proc/stat``; 0 where unavailable)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (the evaluations)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure(workload: RealWorkload, config: dict[str, Any], windows: int) -> dict[str, Any]:
    from deploytune.evaluators.base import Monitor
    from deploytune.evaluators.isolated import IsolatedEvaluator
    from deploytune.execution import run_trial
    from deploytune.outcome import Objective, Status
    from deploytune.workloads import DEADLINE_ENV, WINDOWS_ENV

    deadline = time.time() + workload.timeout_s
    evaluator = IsolatedEvaluator(workload.record_target, timeout_s=2 * workload.timeout_s,
                                  memory_mb=workload.memory_mb,
                                  env={WINDOWS_ENV: str(windows), DEADLINE_ENV: f"{deadline:.3f}"})
    busy_before, own_before = _busy_cpu_s(), _own_cpu_s()
    try:
        outcome = run_trial(evaluator, config, Objective("p50_ms", "minimize"), [],
                            new_monitor=Monitor)
    finally:
        evaluator.close()
    foreign = (_busy_cpu_s() - busy_before) - (_own_cpu_s() - own_before)
    cell: dict[str, Any] = {"config": config, "foreign_cpu_s": round(max(0.0, foreign), 2)}
    if outcome.status is Status.CRASHED:
        kind = outcome.crash_kind.value if outcome.crash_kind else "runtime_error"
        seconds = outcome.cost_s
        if kind == "timeout":
            seconds = workload.timeout_s
        return {**cell, "status": "crashed", "crash_kind": kind,
                "error": (outcome.error or "")[-500:], "seconds": round(seconds, 3),
                "repeats": []}
    repeats, extra = unflatten_windows(outcome.metrics)
    seconds = max(0.0, outcome.cost_s - extra)
    if seconds > workload.timeout_s:
        return {**cell, "status": "crashed", "crash_kind": "timeout",
                "error": f"the evaluation took {seconds:.1f} s, over the "
                         f"{workload.timeout_s:g} s limit (measured with the limit doubled)",
                "seconds": workload.timeout_s, "repeats": repeats}
    return {**cell, "status": "ok", "seconds": round(seconds, 3), "repeats": repeats}


def _contended(cells: Sequence[Mapping[str, Any]], workload: RealWorkload,
               max_foreign_cpu_s: float) -> set[str]:
    """Keys of the cells measured while other processes used more than ``max_foreign_cpu_s``
    CPU seconds, and of the cells declared from them."""
    bad = {_cell_key(c["config"]) for c in cells
           if float(c.get("foreign_cpu_s", 0.0)) > max_foreign_cpu_s}
    rows = grid_rows(workload)
    for row in rows:
        tainted = False
        for config in row:
            key = _cell_key(config)
            tainted = tainted or key in bad
            if tainted:
                bad.add(key)
    return bad


def record_workload(workload: RealWorkload, out: Path | None = None,
                    windows: int | None = None,
                    on_cell: Callable[[int, int, Mapping[str, Any]], None] | None = None,
                    max_foreign_cpu_s: float | None = None,
                    ) -> Path:
    """Measure every cell of ``workload``'s grid and save the table (resuming a partial one).

    Args:
        workload: The workload.
        out: The table file (default :func:`default_table_path`).
        windows: Timed windows (repeats) per cell (default: the workload's).
        on_cell: Called after each cell with (index, total, cell) for progress output.
        max_foreign_cpu_s: When resuming, measure again every kept cell that was measured
            while other processes used more CPU seconds than this (and the cells of its row
            declared after it).

    Returns:
        The path of the table.
    """
    windows = windows or workload.windows
    path = out or default_table_path(workload.name)
    table = _header(workload, windows)
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        old = json.loads(path.read_text())
        if _same_settings(old, table):
            done = {_cell_key(c["config"]): c for c in old.get("cells", [])}
            if max_foreign_cpu_s is not None:
                for key in _contended(old.get("cells", []), workload, max_foreign_cpu_s):
                    done.pop(key, None)
            table["recorded_at"] = old.get("recorded_at", table["recorded_at"])
            table["recorded_s"] = float(old.get("recorded_s", 0.0))  # earlier sessions
    rows = grid_rows(workload)
    pending = dict(done)  # kept cells not reached yet: written too, so a kill loses none
    total = sum(len(r) for r in rows)
    index = 0
    started = time.time()
    for row in rows:
        stop: dict[str, Any] | None = None
        for config in row:
            index += 1
            key = _cell_key(config)
            if key in done and not done[key].get("declared"):  # declared: derive again
                cell = done[key]
            elif stop is not None:
                cell = {"config": config, "status": "crashed", "crash_kind": stop["crash_kind"],
                        "error": stop["error"], "seconds": stop["seconds"], "repeats": [],
                        "declared": f"{stop['crash_kind']} at "
                                    f"{_monotone_text(workload, stop['config'])}; larger "
                                    f"values are declared, not measured"}
            else:
                cell = _measure(workload, config, windows)
            if stop is None and cell["status"] == "crashed" and \
                    cell["crash_kind"] in ("timeout", "oom"):
                stop = cell
            table["cells"].append(cell)
            pending.pop(key, None)
            _write(path, {**table, "cells": [*table["cells"], *pending.values()]})
            if on_cell:
                on_cell(index, total, cell)
    table["recorded_s"] = round(float(table.get("recorded_s", 0.0)) + time.time() - started, 1)
    table["finished_at"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _write(path, table)
    return path


def _monotone_text(workload: RealWorkload, config: Mapping[str, Any]) -> str:
    return ", ".join(f"{m}={config[m]}" for m in workload.monotone if m in config)

