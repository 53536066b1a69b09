"""Resuming a DeployBench: the runs of a grid already complete in an output folder, read back
(see :mod:`deploybench.runner`, "Resume")."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench.metrics import RunMetrics, run_metrics
from deploybench.problem import Problem
from deploybench.runs import (
    RunTask,
    dumps_strict,
    jsonable,
    resolve_problem,
    summary_path,
    write_text,
)

if TYPE_CHECKING:
    from deploytune.tuner import TrialRecord

__all__ = ["read_summary", "resumable"]


def read_summary(task: RunTask) -> dict[str, Any] | None:
    """The summary file of a complete run of ``task``, or ``None`` (missing, unreadable, of
    another run, or without its JSON-lines file)."""
    try:
        run = json.loads(summary_path(task.path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict) or not Path(task.path).is_file():
        return None
    if any(run.get(k) != v for k, v in zip(("problem", "sampler", "seed", "budget"), task.key,
                                            strict=True)):
        return None
    try:
        RunMetrics.from_dict(run["metrics"])
    except (KeyError, TypeError):
        return None
    run["path"] = task.path
    return run


def _trial_of_row(row: Mapping[str, Any], live: bool) -> TrialRecord:
    """Rebuild the :class:`TrialRecord` of one JSON-lines row (what :func:`run_metrics`
    needs: non-finite numbers were written as ``null`` and come back as missing)."""
    from deploytune.outcome import CrashKind, Status
    from deploytune.tuner import TrialRecord

    cost = row.get("eval_s")
    if cost is None and live:  # a live problem's seconds are the measured ones
        raise KeyError("eval_s")

    def numbers(d: Any) -> dict[str, float]:
        return {str(k): float(v) for k, v in (d or {}).items() if v is not None}

    return TrialRecord(
        number=int(row["number"]), config=dict(row["config"]), status=Status(row["status"]),
        crash_kind=CrashKind(row["crash_kind"]) if row.get("crash_kind") else None,
        metrics=numbers(row.get("metrics")),
        value=None if row.get("value") is None else float(row["value"]),
        violations=numbers(row.get("violations")), error=row.get("error"),
        cost_s=float(cost or 0.0))


def _rebuild_summary(task: RunTask, problem: Problem) -> dict[str, Any] | None:
    """The summary of a complete run recomputed from its JSON-lines file alone (output of a
    bench from before summary files), written to its summary file; ``None`` when the file is
    missing, unreadable or does not hold ``budget`` trials."""
    try:
        rows = [json.loads(line) for line in
                Path(task.path).read_text(encoding="utf-8").splitlines() if line.strip()]
        trials = [_trial_of_row(r, problem.live is not None) for r in rows]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if len(trials) != task.budget:
        return None
    run = {"problem": task.problem, "sampler": task.sampler, "seed": task.seed,
           "budget": task.budget,
           "wall_s": sum(float(r.get("wall_s") or 0.0) for r in rows),
           "metrics": jsonable(run_metrics(trials, problem).to_dict()), "path": task.path}
    write_text(summary_path(task.path), dumps_strict(run, indent=1) + "\n")
    return run


def resumable(tasks: Sequence[RunTask], out: Path) -> dict[tuple[str, str, int, int],
                                                            dict[str, Any]]:
    """The complete runs among ``tasks``, by key: read from their summary files or, in an
    output folder without any summary file (written before they existed), recomputed from
    their JSON-lines files."""
    done: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    legacy = not any((out / "runs").rglob("seed_*.json"))
    problems: dict[str, Problem | None] = {}
    for task in tasks:
        run = read_summary(task)
        if run is None and legacy and Path(task.path).is_file():
            if task.problem not in problems:
                try:
                    problems[task.problem] = resolve_problem(task.problem)
                except Exception:  # then it is run again, and fails there if it must
                    problems[task.problem] = None
            problem = problems[task.problem]
            run = _rebuild_summary(task, problem) if problem is not None else None
        if run is not None:
            done[task.key] = run
    return done
