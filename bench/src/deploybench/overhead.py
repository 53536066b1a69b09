"""Sampler overhead: milliseconds one ``ask`` costs at a given history size.

For each history size N a history of N finished trials is built once with the ``random``
sampler on a cheap problem (``crashy-branin`` by default); each size uses the first N trials of
the same history. Then, for each sampler and size, ``repeats + 1`` times: a fresh sampler
(``make_sampler(name, space=..., seed=0, budget=N + 10)``) and a fresh copy of the N-trial
study are made, and ``study.ask()`` plus ``space.suggest(trial)`` is timed. The first,
untimed repetition warms up lazy imports and caches; the median of the others is reported.
Each timed ask therefore sees exactly N finished trials, as a resumed or shared study would.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench._markdown import markdown_table
from deploybench.problem import Problem

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial
    from rich.console import Console
    from rich.table import Table

__all__ = ["DEFAULT_SIZES", "overhead_markdown", "overhead_table", "sampler_overhead"]

DEFAULT_SIZES: tuple[int, ...] = (25, 100, 300)
"""History sizes (numbers of finished trials) measured by default."""


def _history(problem: Problem, n: int, seed: int) -> list[FrozenTrial]:
    import deploytune

    result = deploytune.optimize(
        problem.sim_evaluator(seed) if problem.live is None else problem.evaluator(seed),
        problem.space, objective=problem.objective.metric,
        direction=problem.objective.direction,
        constraints=[str(c) for c in problem.constraints], budget=n, sampler="random", seed=seed)
    assert result.study is not None
    return sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)


def _time_ask(name: str, problem: Problem, trials: Sequence[FrozenTrial]) -> float:
    """Seconds for one ask + suggest of a fresh ``name`` sampler on a copy of ``trials``."""
    import optuna

    from deploytune.samplers import make_sampler

    sampler = make_sampler(name, space=problem.space, seed=0, budget=len(trials) + 10)
    study = optuna.create_study(
        direction="maximize" if problem.objective.sign > 0 else "minimize", sampler=sampler)
    study.add_trials(trials)
    start = time.perf_counter()
    trial = study.ask()
    problem.space.suggest(trial)
    return time.perf_counter() - start


def sampler_overhead(
    samplers: Sequence[str],
    sizes: Sequence[int] = DEFAULT_SIZES,
    problem: str | Problem = "crashy-branin",
    repeats: int = 5,
    seed: int = 0,
    out_dir: str | Path | None = None,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Measure the milliseconds per ask of each sampler at each history size.

    Args:
        samplers: Sampler names.
        sizes: History sizes (numbers of finished trials), each >= 0.
        problem: The problem whose random history is used (a name or a Problem).
        repeats: Timed repetitions per (sampler, size); the median is reported.
        seed: Seed of the random history.
        out_dir: If given, ``overhead.md`` and ``overhead.json`` are written there.
        console: If given, the table is printed there.

    Returns:
        One dict per (sampler, size): ``sampler``, ``size``, ``median_ms``, ``min_ms``,
        ``max_ms``, ``repeats`` and ``error`` (``None``, or the message of a sampler that
        failed; its times are then ``None``).

    Raises:
        ValueError: For a negative size or fewer than one repetition.
    """
    import optuna

    from deploybench.runs import dumps_strict, resolve_problem, write_text

    size_list = sorted({int(s) for s in sizes})
    if not size_list or size_list[0] < 0:
        raise ValueError(f"sizes: give history sizes >= 0 (got {list(sizes)!r})")
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1 (got {repeats!r})")
    prob = resolve_problem(problem) if isinstance(problem, str) else problem
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    history = _history(prob, size_list[-1], seed) if size_list[-1] > 0 else []
    rows: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name in dict.fromkeys(samplers):
            for n in size_list:
                row: dict[str, Any] = {"sampler": name, "size": n, "median_ms": None,
                                       "min_ms": None, "max_ms": None, "repeats": repeats,
                                       "error": None}
                try:
                    times = [_time_ask(name, prob, history[:n]) for _ in range(repeats + 1)][1:]
                except Exception as exc:  # reported in the table
                    row["error"] = f"{type(exc).__name__}: {exc}"
                else:
                    ms = [1000.0 * t for t in times]
                    row.update(median_ms=statistics.median(ms), min_ms=min(ms), max_ms=max(ms))
                rows.append(row)
    if out_dir is not None:
        out = Path(out_dir)
        write_text(out / "overhead.json", dumps_strict(
            {"problem": prob.name, "sizes": size_list, "repeats": repeats, "rows": rows},
            indent=1) + "\n")
        write_text(out / "overhead.md", overhead_markdown(rows, prob.name))
    if console is not None:
        console.print(overhead_table(rows, prob.name))
    return rows


def _pivot(rows: Sequence[dict[str, Any]]) -> tuple[list[int], list[list[str]]]:
    sizes = sorted({r["size"] for r in rows})
    table: list[list[str]] = []
    for name in dict.fromkeys(r["sampler"] for r in rows):
        cells = [name]
        for n in sizes:
            r = next((r for r in rows if r["sampler"] == name and r["size"] == n), None)
            if r is None:
                cells.append("")
            elif r["error"]:
                cells.append("error")
            else:
                cells.append(f"{r['median_ms']:.2f}")
        table.append(cells)
    return sizes, table


def overhead_markdown(rows: Sequence[dict[str, Any]], problem: str = "") -> str:
    """The overhead rows as a markdown table (median ms per ask, one column per size).

    Args:
        rows: Rows from :func:`sampler_overhead`.
        problem: Name of the problem of the history, for the caption.

    Returns:
        Markdown text; failed samplers are listed under the table.
    """
    sizes, table = _pivot(rows)
    head = ["sampler"] + [f"ms/ask @ {n} trials" for n in sizes]
    lines = ["# Sampler overhead", "",
             f"Median milliseconds of `study.ask()` + `space.suggest()` with N finished trials "
             f"in the history (random history{' of ' + problem if problem else ''}).", "",
             *markdown_table(head, table)]
    errors = [r for r in rows if r["error"]]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {r['sampler']} @ {r['size']}: `{r['error']}`" for r in errors]
    return "\n".join(lines) + "\n"


def overhead_table(rows: Sequence[dict[str, Any]], problem: str = "") -> Table:
    """The overhead rows as a rich table (median ms per ask, one column per size).

    Args:
        rows: Rows from :func:`sampler_overhead`.
        problem: Name of the problem of the history, for the title.

    Returns:
        A :class:`rich.table.Table`.
    """
    from rich.table import Table

    sizes, table = _pivot(rows)
    t = Table(title=f"Sampler overhead (median ms per ask{', ' + problem if problem else ''})")
    t.add_column("sampler")
    for n in sizes:
        t.add_column(f"@ {n} trials", justify="right")
    for cells in table:
        t.add_row(*cells)
    return t
