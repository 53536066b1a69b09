"""DeployBench runner: every (problem, sampler, seed, budget) run in its own process.

:func:`run_one` runs one sampler on one problem with one seed, in the calling process.
:func:`run_bench` runs the whole grid, each run in a freshly spawned process (so no run, and no
order of runs, can influence another through module state, caches or random generators), and
writes, with one ``budget``::

    out/runs/{problem}/{sampler}/seed_{s}.jsonl   one line per trial
    out/summary.json                              aggregated rows, every run, failures, stats
    out/summary.md                                the summary table, then the statistics
    out/figures/*.png                             regret curves and waste bars

or, with several ``budgets`` (each budget is a run of its own: samplers such as ``tba-tpe``
schedule by the budget)::

    out/runs/{problem}/b{budget}/{sampler}/seed_{s}.jsonl
    out/figures/b{budget}/*.png

The statistics (:mod:`deploytune.bench.stats`) compare the samplers per (problem, budget)
cell with paired Wilcoxon tests over seeds, and score them across cells.

Every file is standard JSON (no ``NaN`` or ``Infinity``: those become ``null``).

Problems are named as in :mod:`deploytune.bench.registry`; a name of the form
``"package.module:factory"`` names a zero-argument callable returning a
:class:`~deploytune.bench.problem.Problem` instead (for custom problems and tests).
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploytune.bench._markdown import markdown_table
from deploytune.bench.metrics import Aggregate, RunMetrics, aggregate, run_metrics
from deploytune.bench.problem import Problem
from deploytune.bench.stats import BenchStats, bench_stats, stats_markdown

if TYPE_CHECKING:
    from rich.console import Console, Group

    from deploytune.tuner import TrialRecord

__all__ = [
    "BenchResult",
    "dumps_strict",
    "expand_problems",
    "jsonable",
    "resolve_problem",
    "run_bench",
    "run_one",
    "run_path",
    "scoreboard_table",
    "summary_markdown",
    "summary_rows",
    "summary_table",
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


def _write_text(path: Path, text: str) -> None:
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
    from deploytune.bench.registry import get_problem

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
        from deploytune.bench.registry import problem_names

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
            from deploytune.bench.registry import expand_problem_names

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


def run_one(problem_name: str, sampler_name: str, seed: int, budget: int) -> dict[str, Any]:
    """Run ``sampler_name`` on ``problem_name`` with ``seed`` for ``budget`` trials.

    Runs in the calling process. The evaluator's noise is seeded by ``seed`` as well.

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
        ``cum_sim_s``, ``eval_s`` and ``wall_s`` (seconds from the previous trial's end,
        sampling included)).
    """
    import optuna

    import deploytune

    problem = resolve_problem(problem_name)
    wall: dict[int, float] = {}
    last = start = time.perf_counter()

    def on_trial(rec: TrialRecord) -> None:
        nonlocal last
        now = time.perf_counter()
        wall[rec.number] = now - last
        last = now

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        result = deploytune.optimize(
            problem.live() if problem.live else problem.evaluator(seed), problem.space,
            objective=problem.objective.metric, direction=problem.objective.direction,
            constraints=[str(c) for c in problem.constraints], budget=budget,
            sampler=sampler_name, seed=seed, callbacks=[on_trial])
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


def _run_task(task: _Task) -> dict[str, Any]:
    """Worker entry point: run one task, write its JSON-lines file, return its summary."""
    try:
        run = run_one(task.problem, task.sampler, task.seed, task.budget)
    except Exception:  # reported as a failed run, never fatal to the bench
        Path(task.path).unlink(missing_ok=True)  # no stale file from an earlier bench
        return {"problem": task.problem, "sampler": task.sampler, "seed": task.seed,
                "budget": task.budget, "error": traceback.format_exc()}
    rows = run.pop("rows")
    _write_text(Path(task.path), "".join(dumps_strict(r) + "\n" for r in rows))
    run["path"] = task.path
    return run


def _run_isolated(task: _Task) -> dict[str, Any]:
    """Run ``task`` in a freshly spawned process of its own; failures become error records."""
    ctx = multiprocessing.get_context("spawn")
    try:
        with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx,
                                    max_tasks_per_child=1) as pool:
            return pool.submit(_run_task, task).result()
    except Exception as exc:  # e.g. the worker process died (BrokenProcessPool)
        Path(task.path).unlink(missing_ok=True)
        return {"problem": task.problem, "sampler": task.sampler, "seed": task.seed,
                "budget": task.budget,
                "error": f"the worker process failed: {type(exc).__name__}: {exc}"}


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
            (:func:`deploytune.bench.stats.bench_stats`).
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
        stats: Per-cell comparisons and scoreboard (:func:`~deploytune.bench.stats.bench_stats`),
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
    """The scoreboard of :func:`~deploytune.bench.stats.bench_stats` as a rich table.

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
) -> BenchResult:
    """Run every (problem, sampler, seed, budget), each in its own spawned process, and
    summarise.

    Give either ``budget`` (one budget; the historical output layout and one summary row per
    (problem, sampler)) or ``budgets`` (each budget run separately: runs under
    ``runs/{problem}/b{budget}/``, one summary row per (problem, budget, sampler)). Either way
    the summary ends with the per-(problem, budget) statistics and the scoreboard
    (:mod:`deploytune.bench.stats`).

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
        progress: Whether to show a progress bar.

    Returns:
        A :class:`BenchResult`. Failed runs are listed there and in the summary, not raised.

    Raises:
        ValueError: For unknown problem or sampler names, an empty grid, a budget below 1, or
            both or neither of ``budget`` and ``budgets``.
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

    if budget is not None and budgets is not None:
        raise ValueError("give either budget or budgets, not both")
    if budget is None and budgets is None:
        raise ValueError("give a budget (trials per run) or budgets")
    multi = budgets is not None
    budget_list = ([_check_budget(b) for b in dict.fromkeys(budgets)] if budgets is not None
                   else [_check_budget(budget)])
    if not budget_list:
        raise ValueError("budgets: give at least one budget")
    from deploytune.samplers import available

    problem_list = expand_problems(problems)
    sampler_list = list(dict.fromkeys(samplers))
    unknown = [s for s in sampler_list if s not in available()]
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
    n_jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    console = console or Console()

    results: list[dict[str, Any]] = []
    with Progress(TextColumn("[bold]bench"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
                  console=console, disable=not progress, transient=False) as bar:
        bar_id = bar.add_task("", total=len(tasks))
        pool = cf.ThreadPoolExecutor(max_workers=n_jobs)
        try:
            futures = [pool.submit(_run_isolated, t) for t in tasks]
            for fut in cf.as_completed(futures):
                res = fut.result()
                results.append(res)
                mark = "[red]failed[/red] " if "error" in res else ""
                at = f"b{res['budget']} / " if multi else ""
                bar.update(bar_id, advance=1, description=(
                    f"{mark}{escape(res['problem'])} / {at}{escape(res['sampler'])} / "
                    f"seed {res['seed']}"))
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
        from deploytune.bench.figures import make_figures

        if multi:
            for b in budget_list:
                mine = [r for r in runs if r["budget"] == b]
                if mine:
                    result.figures += make_figures(mine, out / "figures" / f"b{b}",
                                                   problem_list, sampler_list)
        else:
            result.figures = make_figures(runs, out / "figures", problem_list, sampler_list)
    summary = {
        "problems": problem_list, "samplers": sampler_list, "seeds": seed_list,
        "budget": None if multi else budget_list[0], "budgets": budget_list,
        "rows": rows, "stats": stats.to_dict(), "runs": runs, "failures": failures,
        "figures": [str(p) for p in result.figures],
    }
    _write_text(out / "summary.json", dumps_strict(summary, indent=1) + "\n")
    _write_text(out / "summary.md", summary_markdown(rows, failures, stats=stats))
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
        console.print(f"full tracebacks in {out / 'summary.json'} (\"failures\")")
    console.print(f"results in {out}")
    return result
