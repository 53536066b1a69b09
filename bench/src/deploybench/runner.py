"""DeployBench runner: every (problem, sampler, seed, budget) run in spawned processes.

:func:`run_one` runs one sampler on one problem with one seed, in the calling process.
:func:`run_bench` runs the whole grid in freshly spawned processes, each running a chunk of the
seeds of one (problem, budget, sampler) one after the other (``runs_per_process``; every run
builds its own problem, evaluator and sampler, so no run, and no order of runs, changes
another's results), and writes, with one ``budget``::

    out/runs/{problem}/{sampler}/seed_{s}.jsonl   one line per trial
    out/runs/{problem}/{sampler}/seed_{s}.json    the run's summary, written last (complete run)
    out/summary.json                              aggregated rows, every run, failures, stats
    out/summary.md                                the summary table, then the statistics
    out/figures/*.png                             regret curves and waste bars

or, with several ``budgets`` (each budget is a run of its own: samplers such as ``tba-tpe``
schedule by the budget)::

    out/runs/{problem}/b{budget}/{sampler}/seed_{s}.jsonl (and .json)
    out/figures/b{budget}/*.png

``run_bench(..., resume=True)`` reads the complete runs back instead of running them again.

The statistics (:mod:`deploybench.stats`) compare the samplers per (problem, budget)
cell with paired Wilcoxon tests over seeds, and score them across cells.

Every file is standard JSON (no ``NaN`` or ``Infinity``: those become ``null``).

Problems are named as in :mod:`deploybench.registry`; a name of the form
``"package.module:factory"`` names a zero-argument callable returning a
:class:`~deploybench.problem.Problem` instead (for custom problems and tests).
"""

from __future__ import annotations

import concurrent.futures as cf
import enum
import importlib
import json
import math
import multiprocessing
import os
import re
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench._markdown import markdown_table
from deploybench.metrics import Aggregate, RunMetrics, aggregate, run_metrics
from deploybench.problem import Problem
from deploybench.stats import BenchStats, bench_stats, stats_markdown

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from rich.console import Console, Group

    from deploytune.tuner import Result, TrialRecord

__all__ = [
    "BenchResult",
    "dumps_strict",
    "expand_problems",
    "jsonable",
    "optimize_problem",
    "resolve_problem",
    "run_bench",
    "run_one",
    "run_path",
    "scoreboard_table",
    "summary_markdown",
    "summary_path",
    "summary_rows",
    "summary_table",
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


def _safe(name: str) -> str:
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
    base = Path(out_dir) / "runs" / _safe(problem)
    if budget is not None:
        base = base / f"b{int(budget)}"
    return base / _safe(sampler) / f"seed_{seed}.jsonl"


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
class _Task:
    problem: str
    sampler: str
    seed: int
    budget: int
    path: str

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.problem, self.sampler, self.seed, self.budget)


def _key(run: Mapping[str, Any]) -> tuple[str, str, int, int]:
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


def _failure(task: _Task, error: str) -> dict[str, Any]:
    return {"problem": task.problem, "sampler": task.sampler, "seed": task.seed,
            "budget": task.budget, "error": error}


def _run_task(task: _Task) -> dict[str, Any]:
    """Run one task in this process, write its JSON-lines file and then its summary file,
    return its summary (a failure becomes an error record; no file is left behind)."""
    done = summary_path(task.path)
    done.unlink(missing_ok=True)  # no stale "complete" mark while the run is not
    try:
        run = run_one(task.problem, task.sampler, task.seed, task.budget)
        rows = run.pop("rows")
        write_text(Path(task.path), "".join(dumps_strict(r) + "\n" for r in rows))
        run["path"] = task.path
        write_text(done, dumps_strict(run, indent=1) + "\n")
    except Exception:  # reported as a failed run, never fatal to the bench
        Path(task.path).unlink(missing_ok=True)  # no stale file from an earlier bench
        done.unlink(missing_ok=True)
        return _failure(task, traceback.format_exc())
    return run


def _chunk_worker(tasks: Sequence[_Task], conn: Connection) -> None:
    """Entry point of a spawned worker: run ``tasks`` one after the other, sending each
    run's summary (or error record) to the parent as soon as it is written."""
    try:
        for task in tasks:
            conn.send(_run_task(task))
    finally:
        conn.close()


def _run_chunk(chunk: Sequence[_Task], report: Callable[[dict[str, Any]], None]) -> None:
    """Run ``chunk`` in one freshly spawned process, calling ``report`` with each run's
    summary or error record as it arrives; never raises for a failed run.

    When the process dies, every run it had not finished is reported as failed (a run whose
    summary file it wrote before dying is read back instead).
    """
    pending = {t.key: t for t in chunk}
    note = "it could not be started"
    try:
        for task in chunk:  # a summary file is now written only by this worker
            summary_path(task.path).unlink(missing_ok=True)
        ctx = multiprocessing.get_context("spawn")
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_chunk_worker, args=(list(chunk), writer),
                           name=f"deploytune-bench-{chunk[0].sampler}")
        try:
            try:
                proc.start()
            finally:
                writer.close()  # the child holds its own end: EOF when it exits
            while pending:
                try:
                    run = reader.recv()
                except (EOFError, OSError):  # the process died
                    break
                if pending.pop(_key(run), None) is not None:
                    report(run)
            proc.join()
            note = f"exit code {proc.exitcode}"
        finally:
            reader.close()
            if proc.is_alive():
                proc.kill()
                proc.join()
    except Exception as exc:
        note = f"{type(exc).__name__}: {exc}"
    finally:
        for task in pending.values():
            run = _read_summary(task)
            if run is None:
                Path(task.path).unlink(missing_ok=True)
                run = _failure(task, f"the worker process failed ({note}) before this run "
                                     f"finished")
            report(run)


def _chunks(tasks: Sequence[_Task], size: int) -> list[list[_Task]]:
    """Split ``tasks`` into chunks of at most ``size`` runs of one (problem, budget, sampler),
    the chunks of a group as even as possible (7 seeds by 3: 3, 2, 2)."""
    groups: dict[tuple[str, int, str], list[_Task]] = {}
    for t in tasks:
        groups.setdefault((t.problem, t.budget, t.sampler), []).append(t)
    out: list[list[_Task]] = []
    for group in groups.values():
        k = -(-len(group) // size)
        base, extra = divmod(len(group), k)
        start = 0
        for j in range(k):
            stop = start + base + (j < extra)
            out.append(group[start:stop])
            start = stop
    return out


# ------------------------------------------------------------------------------------- resume
def _read_summary(task: _Task) -> dict[str, Any] | None:
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


def _rebuild_summary(task: _Task, problem: Problem) -> dict[str, Any] | None:
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


def _resumable(tasks: Sequence[_Task], out: Path) -> dict[tuple[str, str, int, int],
                                                            dict[str, Any]]:
    """The complete runs among ``tasks``, by key: read from their summary files or, in an
    output folder without any summary file (written before they existed), recomputed from
    their JSON-lines files."""
    done: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    legacy = not any((out / "runs").rglob("seed_*.json"))
    problems: dict[str, Problem | None] = {}
    for task in tasks:
        run = _read_summary(task)
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


# ------------------------------------------------------------------------------------ summary
@dataclass
class BenchResult:
    """What :func:`run_bench` produced.

    Attributes:
        out_dir: The output folder.
        rows: One aggregated row per (problem, sampler), or per (problem, budget, sampler)
            with several budgets (see :func:`summary_rows`).
        runs: One summary per successful run (``problem``, ``sampler``, ``seed``, ``budget``,
            ``wall_s``, ``path``, ``metrics``).
        failures: One record per failed run (``problem``, ``sampler``, ``seed``, ``budget``,
            ``error``).
        figures: Paths of the figures written.
        stats: The per-(problem, budget) comparisons and the scoreboard
            (:func:`deploybench.stats.bench_stats`).
        budgets: The budgets run.
    """

    out_dir: Path
    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    stats: BenchStats | None = None
    budgets: list[int] = field(default_factory=list)


def summary_rows(runs: Sequence[Mapping[str, Any]], problems: Sequence[str],
                 samplers: Sequence[str], failures: Sequence[Mapping[str, Any]] = (),
                 budgets: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Aggregate run summaries into one row per (problem, sampler), or per (problem, budget,
    sampler) when ``budgets`` is given.

    Args:
        runs: Run summaries, each with ``problem``, ``sampler`` and ``metrics`` (and
            ``budget`` when ``budgets`` is given).
        problems: Problems, in row order.
        samplers: Samplers, in row order.
        failures: Failed runs, counted per row as ``n_failed``.
        budgets: Budgets, in row order within a problem; ``None``: one row per (problem,
            sampler), whatever the runs' budgets, and no ``budget`` key.

    Returns:
        Dicts with ``problem``, (``budget``,) ``sampler``, ``n_failed`` and the fields of
        :meth:`Aggregate.to_dict`.
    """
    rows = []
    cells: list[tuple[str, int | None]] = [
        (p, b) for p in problems for b in (budgets if budgets is not None else [None])]
    for p, b in cells:
        def here(r: Mapping[str, Any], p: str = p, b: int | None = b) -> bool:
            return r["problem"] == p and (b is None or r.get("budget") == b)

        for s in samplers:
            ms = [RunMetrics.from_dict(r["metrics"]) for r in runs
                  if here(r) and r["sampler"] == s]
            agg: Aggregate = aggregate(ms)
            n_failed = sum(here(f) and f["sampler"] == s for f in failures)
            head: dict[str, Any] = {"problem": p} if b is None else {"problem": p, "budget": b}
            rows.append({**head, "sampler": s, "n_failed": n_failed, **agg.to_dict()})
    return rows


def _pm(mean: float | None, std: float | None, fmt: str = ".4g", std_fmt: str = ".3g",
        sep: str = " ± ") -> str:
    if mean is None:
        return "—"
    return f"{mean:{fmt}}{sep}{std or 0.0:{std_fmt}}"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else f"{x:{fmt}}"


_COLUMNS = ("problem", "sampler", "best value", "regret", "median regret", "waste %",
            "trials to 1st feasible", "wasted sim. s", "nothing feasible", "discovery", "failed")


def _cells(row: Mapping[str, Any], with_budget: bool = False) -> list[str]:
    waste = row["waste_mean"]
    return [
        row["problem"], *([str(row.get("budget", ""))] if with_budget else []), row["sampler"],
        _pm(row["best_value_mean"], row["best_value_std"]),
        _pm(row["regret_mean"], row["regret_std"], ".3f", ".3f"),
        _num(row["regret_median"], ".3f"),
        "—" if waste is None else f"{100 * waste:.0f}",
        _num(row["ttff_mean"], ".1f"),
        _num(row["wasted_seconds_mean"], ".0f"),
        f"{row['n_nothing_feasible']}/{row['n_runs']}",
        _num(row["discovery_mean"], ".2g"),
        str(row["n_failed"]),
    ]


def summary_markdown(rows: Sequence[Mapping[str, Any]],
                     failures: Sequence[Mapping[str, Any]] = (),
                     title: str = "DeployBench summary",
                     stats: BenchStats | None = None) -> str:
    """The summary as a markdown document: one table, then the failed runs if any, then the
    statistics if given.

    Args:
        rows: Rows from :func:`summary_rows` (with a ``budget`` key, the table gets a budget
            column).
        failures: Failed runs.
        title: The heading.
        stats: Per-cell comparisons and scoreboard (:func:`~deploybench.stats.bench_stats`),
            appended as sections.

    Returns:
        Markdown text.
    """
    with_budget = any("budget" in r for r in rows)
    columns = (*_COLUMNS[:1], "budget", *_COLUMNS[1:]) if with_budget else _COLUMNS
    lines = [f"# {title}", "",
             "Mean ± population std over seeds. Best value: over runs that found a feasible "
             "configuration. Regret: normalised (0 = optimum, 1 = reference or nothing "
             "feasible). Trials to 1st feasible: mean over runs that found one. Discovery: "
             "distinct family values evaluated.", "",
             *markdown_table(columns, (_cells(r, with_budget) for r in rows))]
    if failures:
        lines += ["", "## Failed runs", ""]
        for f in failures:
            last = str(f["error"]).strip().splitlines()[-1:] or [""]
            budget = f" / budget {f['budget']}" if with_budget and "budget" in f else ""
            lines.append(f"- {f['problem']}{budget} / {f['sampler']} / seed {f['seed']}: "
                         f"`{last[0]}`")
    if stats is not None and stats.cells:
        lines += ["", stats_markdown(stats).rstrip("\n")]
    return "\n".join(lines) + "\n"


def summary_table(rows: Sequence[Mapping[str, Any]],
                  title: str = "DeployBench summary") -> Group:
    """The summary for a terminal: one compact rich table per problem.

    Args:
        rows: Rows from :func:`summary_rows`.
        title: The heading.

    Returns:
        A :class:`rich.console.Group` of a heading and the tables.
    """
    from rich import box
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    heads = ("sampler", "best value", "regret", "med.", "waste", "TTFF", "wasted s",
             "none", "disc.", "fail")
    show_failed = any(r["n_failed"] for r in rows)
    parts: list[Any] = [f"[bold]{escape(title)}[/bold]: mean±std over seeds; regret 0 = "
                        f"optimum, 1 = reference or nothing feasible (med. = median); TTFF = "
                        f"trials to first feasible; wasted s = simulated seconds on non-feasible "
                        f"trials; none = runs without a feasible trial; disc. = family values "
                        f"evaluated; fail = failed runs"]
    for problem, budget in dict.fromkeys((r["problem"], r.get("budget")) for r in rows):
        name = problem if budget is None else f"{problem}, budget {budget}"
        table = Table(title=escape(name), title_justify="left", box=box.SIMPLE_HEAD,
                      padding=(0, 1), collapse_padding=True, pad_edge=False,
                      show_edge=False)
        for i, head in enumerate(heads if show_failed else heads[:-1]):
            table.add_column(head, justify="left" if i == 0 else "right", no_wrap=True)
        for r in rows:
            if (r["problem"], r.get("budget")) != (problem, budget):
                continue
            waste = r["waste_mean"]
            cells = [
                r["sampler"],
                _pm(r["best_value_mean"], r["best_value_std"], ".3g", ".2g", sep="±"),
                _pm(r["regret_mean"], r["regret_std"], ".2f", ".2f", sep="±"),
                _num(r["regret_median"], ".2f"),
                "—" if waste is None else f"{100 * waste:.0f}%",
                _num(r["ttff_mean"], ".1f"),
                _num(r["wasted_seconds_mean"], ".0f"),
                f"{r['n_nothing_feasible']}/{r['n_runs']}",
                _num(r["discovery_mean"], ".2g"),
                str(r["n_failed"]),
            ]
            table.add_row(*map(escape, cells if show_failed else cells[:-1]))
        parts.append(table)
    return Group(*parts)


# -------------------------------------------------------------------------------------- bench
def _check_budget(budget: Any) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget: must be a positive number of trials (got {budget!r})")
    return budget


def scoreboard_table(stats: BenchStats) -> Any:
    """The scoreboard of :func:`~deploybench.stats.bench_stats` as a rich table.

    Args:
        stats: The bench's statistics.

    Returns:
        A :class:`rich.table.Table`.
    """
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"scoreboard over {len(stats.cells)} (problem, budget) cells: won = "
                        f"lowest mean regret, worse = significantly worse than the best other "
                        f"(Wilcoxon p < {stats.alpha:g})", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False,
                  show_edge=False)
    for i, head in enumerate(("sampler", "won", "worse", "regret rank", "wasted-s rank",
                              "med. TTFF", "disc.")):
        table.add_column(head, justify="left" if i == 0 else "right", no_wrap=True)

    def num(x: float | None, fmt: str) -> str:
        return "—" if x is None else f"{x:{fmt}}"

    for sc in stats.scoreboard:
        table.add_row(escape(sc.sampler), f"{sc.cells_won}/{sc.n_cells}",
                      str(sc.cells_significantly_worse), num(sc.regret_rank_mean, ".2f"),
                      num(sc.wasted_seconds_rank_mean, ".2f"), num(sc.ttff_median, ".1f"),
                      num(sc.discovery_rate, ".2f"))
    return table


def run_bench(
    problems: Sequence[str],
    samplers: Sequence[str],
    seeds: Sequence[int],
    budget: int | None = None,
    jobs: int | None = None,
    out_dir: str | Path = "results/bench",
    *,
    budgets: Sequence[int] | None = None,
    figures: bool = True,
    console: Console | None = None,
    progress: bool = True,
    runs_per_process: int | None = None,
    resume: bool = False,
) -> BenchResult:
    """Run every (problem, sampler, seed, budget) in freshly spawned processes, and summarise.

    Give either ``budget`` (one budget; the historical output layout and one summary row per
    (problem, sampler)) or ``budgets`` (each budget run separately: runs under
    ``runs/{problem}/b{budget}/``, one summary row per (problem, budget, sampler)). Either way
    the summary ends with the per-(problem, budget) statistics and the scoreboard
    (:mod:`deploybench.stats`).

    Runs of one (problem, budget, sampler) are grouped into chunks of up to
    ``runs_per_process`` seeds; each chunk runs, one run after the other, in a process spawned
    for it alone, and every run builds its own problem, evaluator and sampler there, so a run's
    results do not depend on the chunking (samplers derive everything from the history and the
    seed). Spawning costs seconds of imports (deploytune, Optuna, scikit-learn), often more
    than a run, hence the chunks. A run that fails is reported as a failed run of its own; when
    a worker process dies, the runs of its chunk it had not finished are reported as failed.

    Every run writes ``seed_{s}.jsonl`` and then ``seed_{s}.json``, its summary (the run's
    entry of ``summary.json``): the summary file marks a complete run. With ``resume``, a run
    whose summary file exists (with its JSON-lines file, for the same problem, sampler, seed
    and budget) is read back instead of run again; the others (missing, failed, or interrupted
    before their summary file was written) are run; the summary, statistics and figures cover
    them all. In an output folder without any summary file (written by a version of the bench
    from before them), a run's metrics are recomputed from its JSON-lines file instead (the
    problem is then built in this process) and its summary file is written; a JSON-lines file
    without ``budget`` rows is run again. Resume trusts the files: runs are not re-checked
    against the current code.

    Args:
        problems: Problem names (groups such as ``all`` are expanded).
        samplers: Sampler names.
        seeds: Seeds; each seeds both the sampler and the problem's noise.
        budget: Trials per run.
        jobs: Runs at a time (default: the number of CPUs).
        out_dir: Output folder (see the module docstring for its layout).
        budgets: Several budgets (trials per run), instead of ``budget``.
        figures: Whether to draw the figures.
        console: Where to print the progress bar and the table (default: a new console).
        progress: Whether to show a progress bar (it counts runs, resumed ones included).
        runs_per_process: Runs of one (problem, budget, sampler) per spawned process; 1 isolates
            every run in a process of its own. ``None`` (default): ``ceil(runs / (2 x jobs))``
            runs to run, so that there are about two chunks per job (the last chunks to finish
            overlap the others), never more than the seeds of one (problem, budget, sampler).
        resume: Read back the runs already complete in ``out_dir`` instead of running them
            again (see above).

    Returns:
        A :class:`BenchResult`. Failed runs are listed there and in the summary, not raised.

    Raises:
        ValueError: For unknown problem or sampler names, an empty grid, a budget below 1,
            both or neither of ``budget`` and ``budgets``, or ``runs_per_process`` below 1.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    if budget is not None and budgets is not None:
        raise ValueError("give either budget or budgets, not both")
    if budget is None and budgets is None:
        raise ValueError("give a budget (trials per run) or budgets")
    if runs_per_process is not None and (isinstance(runs_per_process, bool) or not isinstance(
            runs_per_process, int) or runs_per_process < 1):
        raise ValueError(f"runs_per_process: must be a positive number of runs "
                         f"(got {runs_per_process!r})")
    multi = budgets is not None
    budget_list = ([_check_budget(b) for b in dict.fromkeys(budgets)] if budgets is not None
                   else [_check_budget(budget)])
    if not budget_list:
        raise ValueError("budgets: give at least one budget")
    from deploytune.samplers import available, is_known

    problem_list = expand_problems(problems)
    sampler_list = list(dict.fromkeys(samplers))
    unknown = [s for s in sampler_list if not is_known(s)]
    if unknown:
        raise ValueError(f"unknown sampler name(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(available())}")
    seed_list = [int(s) for s in dict.fromkeys(seeds)]
    if not (problem_list and sampler_list and seed_list):
        raise ValueError("run_bench: give at least one problem, one sampler and one seed")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [_Task(p, s, seed, b, str(run_path(out, p, s, seed, b if multi else None)))
             for p in problem_list for b in budget_list for s in sampler_list
             for seed in seed_list]
    console = console or Console()
    results: list[dict[str, Any]] = []
    if resume:
        done = _resumable(tasks, out)
        results += [done[t.key] for t in tasks if t.key in done]
        if done:
            console.print(Text(f"resumed {len(done)} of {len(tasks)} runs from {out}"),
                          highlight=False)
    loaded = {_key(r) for r in results}
    todo = [t for t in tasks if t.key not in loaded]
    max_jobs = max(1, jobs or os.cpu_count() or 1)
    size = runs_per_process or max(1, -(-len(todo) // (2 * max_jobs)))
    chunks = _chunks(todo, size)
    n_jobs = max(1, min(max_jobs, len(chunks)))

    with Progress(TextColumn("[bold]bench"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
                  console=console, disable=not progress, transient=False) as bar:
        bar_id = bar.add_task("resumed" if results else "", total=len(tasks),
                              completed=len(results))

        def report(res: dict[str, Any]) -> None:  # called from the chunks' threads
            results.append(res)
            mark = "[red]failed[/red] " if "error" in res else ""
            at = f"b{res['budget']} / " if multi else ""
            bar.update(bar_id, advance=1, description=(
                f"{mark}{escape(res['problem'])} / {at}{escape(res['sampler'])} / "
                f"seed {res['seed']}"))

        pool = cf.ThreadPoolExecutor(max_workers=n_jobs)
        try:
            futures = [pool.submit(_run_chunk, chunk, report) for chunk in chunks]
            for fut in cf.as_completed(futures):
                fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    order = {(t.problem, t.sampler, t.seed, t.budget): i for i, t in enumerate(tasks)}
    results.sort(key=lambda r: order[(r["problem"], r["sampler"], r["seed"], r["budget"])])
    runs = [r for r in results if "error" not in r]
    failures = [r for r in results if "error" in r]
    rows = summary_rows(runs, problem_list, sampler_list, failures,
                        budget_list if multi else None)
    stats = bench_stats(runs, problem_list, sampler_list, budget_list)
    result = BenchResult(out, rows, runs, failures, stats=stats, budgets=budget_list)
    if figures and runs:
        from deploybench.figures import make_figures

        if multi:
            from deploybench.figures import overview_figure

            for b in budget_list:
                mine = [r for r in runs if r["budget"] == b]
                if mine:
                    result.figures += make_figures(mine, out / "figures" / f"b{b}",
                                                   problem_list, sampler_list)
            overview = overview_figure(runs, sampler_list, budget_list,
                                       out / "figures" / "overview.png")
            if overview is not None:
                result.figures.append(overview)
        else:
            result.figures = make_figures(runs, out / "figures", problem_list, sampler_list)
    summary = {
        "problems": problem_list, "samplers": sampler_list, "seeds": seed_list,
        "budget": None if multi else budget_list[0], "budgets": budget_list,
        "rows": rows, "stats": stats.to_dict(), "runs": runs, "failures": failures,
        "figures": [str(p) for p in result.figures],
    }
    write_text(out / "summary.json", dumps_strict(summary, indent=1) + "\n")
    write_text(out / "summary.md", summary_markdown(rows, failures, stats=stats))
    console.print(summary_table(rows))
    if len(sampler_list) > 1 and stats.cells:
        console.print(scoreboard_table(stats))
    for f in failures:
        last = (str(f["error"]).strip().splitlines() or [""])[-1]
        at = f" / budget {f['budget']}" if multi else ""
        console.print(f"[red]run failed[/red]: {escape(f['problem'])}{at} / "
                      f"{escape(f['sampler'])} / seed {f['seed']}: {escape(last)}",
                      highlight=False)
    if failures:
        console.print(Text(f"full tracebacks in {out / 'summary.json'} (\"failures\")"))
    console.print(Text(f"results in {out}"))
    return result
