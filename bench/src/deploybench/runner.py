"""DeployBench runner: every (problem, sampler, seed, budget) run in spawned processes.

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

One run is :func:`deploybench.runs.run_one` (with the file helpers and problem names there);
the summary tables are :mod:`deploybench.summary`. Both are re-exported here.

**Processes.** Runs of one (problem, budget, sampler) are grouped into chunks of up to
``runs_per_process`` seeds; each chunk runs, one run after the other, in a process spawned
for it alone, and every run builds its own problem, evaluator and sampler there, so a run's
results do not depend on the chunking (samplers derive everything from the history and the
seed). Spawning costs seconds of imports (deploytune, Optuna, scikit-learn), often more
than a run, hence the chunks. A run that fails is reported as a failed run of its own; when
a worker process dies, the runs of its chunk it had not finished are reported as failed.

**Resume.** Every run writes ``seed_{s}.jsonl`` and then ``seed_{s}.json``, its summary (the run's
entry of ``summary.json``): the summary file marks a complete run. With ``resume``, a run
whose summary file exists (with its JSON-lines file, for the same problem, sampler, seed
and budget) is read back instead of run again; the others (missing, failed, or interrupted
before their summary file was written) are run; the summary, statistics and figures cover
them all. In an output folder without any summary file (written by a version of the bench
from before them), a run's metrics are recomputed from its JSON-lines file instead (the
problem is then built in this process) and its summary file is written; a JSON-lines file
without ``budget`` rows is run again. Resume trusts the files: runs are not re-checked
against the current code.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench.resume import read_summary, resumable
from deploybench.runs import (
    RunTask,
    dumps_strict,
    expand_problems,
    jsonable,
    optimize_problem,
    resolve_problem,
    run_key,
    run_one,
    run_path,
    summary_path,
    write_text,
)
from deploybench.stats import bench_stats
from deploybench.summary import (
    BenchResult,
    scoreboard_table,
    summary_markdown,
    summary_rows,
    summary_table,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from rich.console import Console


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


def _failure(task: RunTask, error: str) -> dict[str, Any]:
    return {"problem": task.problem, "sampler": task.sampler, "seed": task.seed,
            "budget": task.budget, "error": error}


def _run_task(task: RunTask) -> dict[str, Any]:
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


def _chunk_worker(tasks: Sequence[RunTask], conn: Connection) -> None:
    """Entry point of a spawned worker: run ``tasks`` one after the other, sending each
    run's summary (or error record) to the parent as soon as it is written."""
    try:
        for task in tasks:
            conn.send(_run_task(task))
    finally:
        conn.close()


def _run_chunk(chunk: Sequence[RunTask], report: Callable[[dict[str, Any]], None]) -> None:
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
                if pending.pop(run_key(run), None) is not None:
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
            run = read_summary(task)
            if run is None:
                Path(task.path).unlink(missing_ok=True)
                run = _failure(task, f"the worker process failed ({note}) before this run "
                                     f"finished")
            report(run)


def _chunks(tasks: Sequence[RunTask], size: int) -> list[list[RunTask]]:
    """Split ``tasks`` into chunks of at most ``size`` runs of one (problem, budget, sampler),
    the chunks of a group as even as possible (7 seeds by 3: 3, 2, 2)."""
    groups: dict[tuple[str, int, str], list[RunTask]] = {}
    for t in tasks:
        groups.setdefault((t.problem, t.budget, t.sampler), []).append(t)
    out: list[list[RunTask]] = []
    for group in groups.values():
        k = -(-len(group) // size)
        base, extra = divmod(len(group), k)
        start = 0
        for j in range(k):
            stop = start + base + (j < extra)
            out.append(group[start:stop])
            start = stop
    return out


# -------------------------------------------------------------------------------------- bench
def _check_budget(budget: Any) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget: must be a positive number of trials (got {budget!r})")
    return budget


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
    """Run every (problem, sampler, seed, budget) in freshly spawned processes, and summarise
    (one row per (problem, sampler), or per (problem, budget, sampler) with ``budgets``; then
    the statistics and the scoreboard of :mod:`deploybench.stats`). The processes, the output
    layout and what ``resume`` reads back: see the module docstring.

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
            every run. ``None``: about two chunks per job, ``ceil(runs / (2 x jobs))``.
        resume: Read back the runs already complete in ``out_dir`` instead of running them
            again.

    Returns:
        A :class:`BenchResult`. Failed runs are listed there and in the summary, not raised.

    Raises:
        ValueError: For unknown problem or sampler names, an empty grid, a budget below 1,
            both or neither of ``budget`` and ``budgets``, or ``runs_per_process`` below 1.
    """
    from rich.console import Console

    problem_list, sampler_list, seed_list, budget_list = _checked_grid(
        problems, samplers, seeds, budget, budgets, runs_per_process)
    multi = budgets is not None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [RunTask(p, s, seed, b, str(run_path(out, p, s, seed, b if multi else None)))
             for p in problem_list for b in budget_list for s in sampler_list
             for seed in seed_list]
    console = console or Console()
    results = _resumed(tasks, out, console) if resume else []
    loaded = {run_key(r) for r in results}
    todo = [t for t in tasks if t.key not in loaded]
    max_jobs = max(1, jobs or os.cpu_count() or 1)
    chunks = _chunks(todo, runs_per_process or max(1, -(-len(todo) // (2 * max_jobs))))
    _run_chunks(chunks, max(1, min(max_jobs, len(chunks))), len(tasks), results, console,
                progress, multi)
    order = {(t.problem, t.sampler, t.seed, t.budget): i for i, t in enumerate(tasks)}
    results.sort(key=lambda r: order[(r["problem"], r["sampler"], r["seed"], r["budget"])])
    runs = [r for r in results if "error" not in r]
    failures = [r for r in results if "error" in r]
    rows = summary_rows(runs, problem_list, sampler_list, failures,
                        budget_list if multi else None)
    stats = bench_stats(runs, problem_list, sampler_list, budget_list)
    result = BenchResult(out, rows, runs, failures, stats=stats, budgets=budget_list)
    if figures and runs:
        result.figures = _figures(runs, out, problem_list, sampler_list, budget_list, multi)
    write_text(out / "summary.json", dumps_strict({
        "problems": problem_list, "samplers": sampler_list, "seeds": seed_list,
        "budget": None if multi else budget_list[0], "budgets": budget_list,
        "rows": rows, "stats": stats.to_dict(), "runs": runs, "failures": failures,
        "figures": [str(p) for p in result.figures]}, indent=1) + "\n")
    write_text(out / "summary.md", summary_markdown(rows, failures, stats=stats))
    _print_summary(result, console, len(sampler_list) > 1, multi)
    return result


def _resumed(tasks: Sequence[RunTask], out: Path, console: Console) -> list[dict[str, Any]]:
    """The runs of ``tasks`` already complete in ``out``, read back (and said so)."""
    from rich.text import Text

    done = resumable(tasks, out)
    if done:
        console.print(Text(f"resumed {len(done)} of {len(tasks)} runs from {out}"),
                      highlight=False)
    return [done[t.key] for t in tasks if t.key in done]


def _checked_grid(problems: Sequence[str], samplers: Sequence[str], seeds: Sequence[int],
                  budget: int | None, budgets: Sequence[int] | None,
                  runs_per_process: int | None
                  ) -> tuple[list[str], list[str], list[int], list[int]]:
    """The grid of :func:`run_bench` (problems expanded, duplicates dropped), checked."""
    from deploytune.samplers import available, is_known

    if budget is not None and budgets is not None:
        raise ValueError("give either budget or budgets, not both")
    if budget is None and budgets is None:
        raise ValueError("give a budget (trials per run) or budgets")
    if runs_per_process is not None and (isinstance(runs_per_process, bool) or not isinstance(
            runs_per_process, int) or runs_per_process < 1):
        raise ValueError(f"runs_per_process: must be a positive number of runs "
                         f"(got {runs_per_process!r})")
    budget_list = ([_check_budget(b) for b in dict.fromkeys(budgets)] if budgets is not None
                   else [_check_budget(budget)])
    if not budget_list:
        raise ValueError("budgets: give at least one budget")
    problem_list = expand_problems(problems)
    sampler_list = list(dict.fromkeys(samplers))
    unknown = [s for s in sampler_list if not is_known(s)]
    if unknown:
        raise ValueError(f"unknown sampler name(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(available())}")
    seed_list = [int(s) for s in dict.fromkeys(seeds)]
    if not (problem_list and sampler_list and seed_list):
        raise ValueError("run_bench: give at least one problem, one sampler and one seed")
    return problem_list, sampler_list, seed_list, budget_list


def _run_chunks(chunks: Sequence[Sequence[RunTask]], n_jobs: int, total: int,
                results: list[dict[str, Any]], console: Console, progress: bool,
                multi: bool) -> None:
    """Run ``chunks`` on ``n_jobs`` threads (each chunk in a spawned process), appending every
    run's result to ``results`` (which holds the resumed ones) under a progress bar."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]bench"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
                  console=console, disable=not progress, transient=False) as bar:
        bar_id = bar.add_task("resumed" if results else "", total=total,
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


def _figures(runs: Sequence[dict[str, Any]], out: Path, problems: Sequence[str],
             samplers: Sequence[str], budgets: Sequence[int], multi: bool) -> list[Path]:
    """The figures of the runs (per budget and an overview with several budgets)."""
    from deploybench.figures import make_figures, overview_figure

    if not multi:
        return make_figures(runs, out / "figures", problems, samplers)
    drawn: list[Path] = []
    for b in budgets:
        mine = [r for r in runs if r["budget"] == b]
        if mine:
            drawn += make_figures(mine, out / "figures" / f"b{b}", problems, samplers)
    overview = overview_figure(runs, samplers, budgets, out / "figures" / "overview.png")
    if overview is not None:
        drawn.append(overview)
    return drawn


def _print_summary(result: BenchResult, console: Console, compare: bool, multi: bool) -> None:
    """The summary table, the scoreboard (several samplers) and the failures, on ``console``."""
    from rich.markup import escape
    from rich.text import Text

    console.print(summary_table(result.rows))
    if compare and result.stats is not None and result.stats.cells:
        console.print(scoreboard_table(result.stats))
    for f in result.failures:
        last = (str(f["error"]).strip().splitlines() or [""])[-1]
        at = f" / budget {f['budget']}" if multi else ""
        console.print(f"[red]run failed[/red]: {escape(f['problem'])}{at} / "
                      f"{escape(f['sampler'])} / seed {f['seed']}: {escape(last)}",
                      highlight=False)
    if result.failures:
        console.print(Text(f"full tracebacks in {result.out_dir / 'summary.json'} "
                           f"(\"failures\")"))
    console.print(Text(f"results in {result.out_dir}"))
