"""One DeployBench run, and the files runs are kept in.

:func:`run_one` runs one sampler on one problem with one seed, in the calling process
(:func:`optimize_problem` is its call of :func:`deploytune.optimize`, shared with the trust
benchmark); :func:`resolve_problem` and :func:`expand_problems` turn names into problems (a
name ``"package.module:factory"`` names a zero-argument callable returning a
:class:`~deploybench.problem.Problem`, for custom problems and tests); :func:`run_path` says
where a run's files go. Every file is standard JSON (:func:`dumps_strict`: no ``NaN`` or
``Infinity``, those become ``null``) written atomically (:func:`write_text`).
"""

from __future__ import annotations

import enum
import importlib
import json
import math
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench.metrics import RunMetrics, run_metrics
from deploybench.problem import Problem

if TYPE_CHECKING:


    from deploytune.tuner import Result, TrialRecord

__all__ = [
    "RunTask",
    "dumps_strict",
    "expand_problems",
    "jsonable",
    "optimize_problem",
    "resolve_problem",
    "run_key",
    "run_one",
    "run_path",
    "safe_name",
    "summary_path",
    "write_text",
]


# ------------------------------------------------------------------------------- JSON helpers
def jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain, standard-JSON data.

    Non-finite floats become ``None``; numpy scalars and arrays become Python numbers and lists;
    enums become their values; tuples and sets become lists; mapping keys become strings;
    anything else unknown becomes its ``str``.

    Args:
        obj: Any value.

    Returns:
        A value that ``json.dumps(..., allow_nan=False)`` accepts.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj.value if isinstance(obj, enum.Enum) else obj
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [jsonable(v) for v in items]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return jsonable(obj.tolist())
    return str(obj)


def dumps_strict(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of :func:`jsonable` ``(obj)`` that refuses NaN and infinities.

    Args:
        obj: Any value.
        **kw: Passed to :func:`json.dumps` (``indent``, ``sort_keys``, ...).

    Returns:
        Standard JSON text.
    """
    return json.dumps(jsonable(obj), allow_nan=False, **kw)


def write_text(path: Path, text: str) -> None:
    """Write atomically: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_name(name: str) -> str:
    """A file-name-safe form of a problem or sampler name."""
    return _UNSAFE.sub("_", name).strip("._") or "_"


def run_path(out_dir: str | Path, problem: str, sampler: str, seed: int,
             budget: int | None = None) -> Path:
    """Where :func:`run_bench` writes the JSON-lines file of one run.

    Args:
        out_dir: The bench's output folder.
        problem: Problem name.
        sampler: Sampler name.
        seed: Seed.
        budget: The run's budget when the bench has several (``budgets``); ``None`` for a
            single-``budget`` bench.

    Returns:
        ``out_dir/runs/{problem}/{sampler}/seed_{seed}.jsonl``, or with a budget
        ``out_dir/runs/{problem}/b{budget}/{sampler}/seed_{seed}.jsonl``.
    """
    base = Path(out_dir) / "runs" / safe_name(problem)
    if budget is not None:
        base = base / f"b{int(budget)}"
    return base / safe_name(sampler) / f"seed_{seed}.jsonl"


# ----------------------------------------------------------------------------------- problems
def resolve_problem(name: str) -> Problem:
    """The :class:`Problem` named ``name``.

    Args:
        name: A registry name (``crashy-branin``), or ``"module:factory"`` naming a
            zero-argument callable that returns a Problem.

    Returns:
        The problem.

    Raises:
        ValueError: For an unknown name or a factory that does not return a Problem.
    """
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"problem {name!r}: cannot import {attr!r} from "
                             f"{module_name!r} ({exc})") from exc
        problem = factory()
        if not isinstance(problem, Problem):
            raise ValueError(f"problem {name!r}: the factory returned "
                             f"{type(problem).__name__}, not a Problem")
        return problem
    from deploybench.registry import get_problem

    return get_problem(name)


def _factory_exists(name: str) -> bool:
    """Whether ``"module:factory"`` names an importable callable (without calling it)."""
    module_name, _, attr = name.partition(":")
    try:
        return callable(getattr(importlib.import_module(module_name), attr))
    except (ImportError, AttributeError):
        return False


def expand_problems(names: Sequence[str]) -> list[str]:
    """Expand group names (``all``, ``deploy-sim``) and check every problem name.

    ``"module:factory"`` names are kept as they are.

    Args:
        names: Problem names or groups.

    Returns:
        The problem names, in order, without duplicates.

    Raises:
        ValueError: Naming the unknown names and listing the known ones.
    """
    known: list[str] = []
    if any(":" not in n for n in names):
        from deploybench.registry import problem_names

        known = list(problem_names())
    out: list[str] = []
    unknown: list[str] = []
    for name in names:
        if ":" in name:
            if not _factory_exists(name):
                unknown.append(name)
                continue
            expanded = [name]
        else:
            from deploybench.registry import expand_problem_names

            try:
                expanded = list(expand_problem_names([name]))
            except (KeyError, ValueError):
                expanded = []
            if not expanded or any(e not in known for e in expanded):
                unknown.append(name)
                continue
        out += [e for e in expanded if e not in out]
    if unknown:
        raise ValueError(f"unknown problem name(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(known)}, a group such as 'all', or 'module:factory'")
    return out


# ------------------------------------------------------------------------------------ one run
def _trial_rows(trials: Sequence[TrialRecord], metrics: RunMetrics, problem: Problem,
                wall: Mapping[int, float]) -> list[dict[str, Any]]:
    from deploytune.outcome import Status

    rows: list[dict[str, Any]] = []
    wasted = total = 0.0
    for i, t in enumerate(sorted(trials, key=lambda t: t.number)):
        sim = problem.trial_seconds(t.config, t.status, t.crash_kind, t.cost_s)
        total += sim
        if t.status is not Status.FEASIBLE:
            wasted += sim
        rows.append(jsonable({
            "trial": i + 1,
            "number": t.number,
            "config": t.config,
            "status": t.status.value,
            "crash_kind": t.crash_kind.value if t.crash_kind else None,
            "value": t.value,
            "metrics": t.metrics,
            "violations": t.violations,
            "error": t.error,
            "best_feasible_so_far": metrics.best_so_far[i],
            "regret_so_far": metrics.regret_curve[i],
            "sim_cost_s": sim,
            "cum_wasted_s": wasted,
            "cum_sim_s": total,
            "eval_s": t.cost_s,
            "wall_s": wall.get(t.number),
        }))
    return rows


def optimize_problem(problem: Problem, seed: int, budget: int, **kw: Any) -> Result:
    """:func:`deploytune.optimize` on ``problem``: its live evaluator, else its simulated one
    with noise seeded by ``seed``; the sampler seeded by ``seed`` too.

    Args:
        problem: The problem.
        seed: Seed of the sampler and of the problem's noise.
        budget: Number of trials.
        **kw: Further keyword arguments of :func:`deploytune.optimize` (``sampler``,
            ``callbacks``, ``validation``, ...).

    Returns:
        The run's :class:`~deploytune.tuner.Result`.
    """
    import optuna

    import deploytune

    evaluator = problem.live() if problem.live else problem.sim_evaluator(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return deploytune.optimize(
                evaluator, problem.space, objective=problem.objective.metric,
                direction=problem.objective.direction,
                constraints=[str(c) for c in problem.constraints], budget=budget, seed=seed,
                **kw)
    finally:  # optimize() closes only the evaluators it makes; the next run may share this process
        evaluator.close()


def run_one(problem_name: str, sampler_name: str, seed: int, budget: int) -> dict[str, Any]:
    """Run ``sampler_name`` on ``problem_name`` with ``seed`` for ``budget`` trials.

    Runs in the calling process. The evaluator's noise is seeded by ``seed`` as well. A
    simulated problem is evaluated by :meth:`Problem.sim_evaluator`, so the tuner (and a
    cost-aware sampler) sees each trial cost the cost model's simulated seconds.

    Args:
        problem_name: A problem name (see :func:`resolve_problem`).
        sampler_name: A registered sampler name.
        seed: Seed of the sampler and of the problem's noise.
        budget: Number of trials.

    Returns:
        A dict with ``problem``, ``sampler``, ``seed``, ``budget``, ``wall_s`` (seconds of the
        whole run), ``metrics`` (:meth:`RunMetrics.to_dict`) and ``rows`` (one JSON-ready dict
        per trial: ``trial`` (1-based index), ``number``, ``config``, ``status``,
        ``crash_kind``, ``value``, ``metrics``, ``violations``, ``error``,
        ``best_feasible_so_far``, ``regret_so_far``, ``sim_cost_s``, ``cum_wasted_s``,
        ``cum_sim_s``, ``eval_s`` (the trial's ``cost_s`` as the tuner recorded it: simulated
        seconds, every attempt of a retried transient failure included, or the measured ones
        for a live problem) and ``wall_s`` (seconds from the previous trial's end, sampling
        included)).
    """
    problem = resolve_problem(problem_name)
    wall: dict[int, float] = {}
    last = start = time.perf_counter()

    def on_trial(rec: TrialRecord) -> None:
        nonlocal last
        now = time.perf_counter()
        wall[rec.number] = now - last
        last = now

    result = optimize_problem(problem, seed, budget, sampler=sampler_name,
                              callbacks=[on_trial])
    elapsed = time.perf_counter() - start
    metrics = run_metrics(result.trials, problem)
    return {
        "problem": problem_name,
        "sampler": sampler_name,
        "seed": seed,
        "budget": budget,
        "wall_s": elapsed,
        "metrics": jsonable(metrics.to_dict()),
        "rows": _trial_rows(result.trials, metrics, problem, wall),
    }


@dataclass(frozen=True)
class RunTask:
    """One run of the grid: where its JSON-lines file goes (``path``)."""

    problem: str
    sampler: str
    seed: int
    budget: int
    path: str

    @property
    def key(self) -> tuple[str, str, int, int]:
        """(problem, sampler, seed, budget)."""
        return (self.problem, self.sampler, self.seed, self.budget)


def run_key(run: Mapping[str, Any]) -> tuple[str, str, int, int]:
    """(problem, sampler, seed, budget) of a run's result."""
    return (run["problem"], run["sampler"], run["seed"], run["budget"])


def summary_path(path: str | Path) -> Path:
    """The run-summary file that goes with a run's JSON-lines file.

    :func:`run_bench` writes it after the JSON-lines file, so its presence marks a complete
    run (``run_bench(..., resume=True)`` reads it back instead of running again).

    Args:
        path: A run's JSON-lines file (:func:`run_path`).

    Returns:
        The same path with ``.json`` instead of ``.jsonl`` (``seed_{s}.json``).
    """
    return Path(path).with_suffix(".json")
