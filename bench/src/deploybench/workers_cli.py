"""The body of ``deploytune bench workers`` (:func:`deploybench.cli.workers_command`): checks
its options, runs :func:`deploybench.workers_bench.run_workers_bench` with a line per finished
run, and prints the report."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

__all__ = ["parse_worker_counts", "run_workers_command"]


def parse_worker_counts(text: str) -> tuple[int, ...]:
    """``--workers``: comma-separated positive worker counts, each once, in the given order.

    Raises:
        typer.BadParameter: For anything else.
    """
    try:
        counts = tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip()))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise typer.BadParameter(f"expected comma-separated worker counts >= 1, got {text!r}",
                                 param_hint="'--workers'")
    return counts


def _command(problem: str, sampler: str, seeds: int, workers: Sequence[int], budget: int,
             sleep: float, storage: str | None, launch: str, out: Path) -> str:
    parts = ["deploytune", "bench", "workers", "--problem", problem, "--sampler", sampler,
             "--seeds", str(seeds), "--workers", ",".join(map(str, workers)),
             "--budget", str(budget), "--sleep", f"{sleep:g}"]
    if storage is not None:
        parts += ["--storage", storage]
    if launch != "fork":
        parts += ["--launch", launch]
    return shlex.join([*parts, "--out", str(out)])


def run_workers_command(problem: str, samplers: Sequence[str], seeds: int, workers: str,
                        budget: int, sleep: float, storage: str | None, launch: str,
                        out: Path) -> None:
    """Check the options, run the benchmark, print every run and then the report.

    Args:
        problem: ``--problem``.
        samplers: ``--sampler``, checked and split (exactly one name is accepted).
        seeds: ``--seeds``.
        workers: ``--workers`` as typed.
        budget: ``--budget``.
        sleep: ``--sleep``.
        storage: ``--storage``.
        launch: ``--launch``: ``fork`` or ``exec``.
        out: ``--out``.
    """
    from rich.console import Console

    from deploybench.runs import resolve_problem
    from deploybench.workers_bench import WorkersSettings, run_workers_bench
    from deploytune.cli import say

    if len(samplers) != 1:
        raise typer.BadParameter("give one sampler", param_hint="'--sampler'")
    counts = parse_worker_counts(workers)
    if launch not in ("fork", "exec"):
        raise typer.BadParameter(f"expected fork or exec, got {launch!r}",
                                 param_hint="'--launch'")
    try:
        live = resolve_problem(problem).live is not None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--problem'") from exc
    if live:
        raise typer.BadParameter(f"{problem!r} runs real evaluations; choose a simulated "
                                 f"problem", param_hint="'--problem'")
    settings = WorkersSettings(problem=problem, sampler=samplers[0], seeds=seeds,
                               workers=counts, budget=budget, sleep_s=sleep, storage=storage,
                               launch=launch)
    console = Console()
    total = seeds * len(counts)
    done = {"n": 0}

    def on_run(run: dict[str, Any]) -> None:
        done["n"] += 1
        what = (f"{run.get('evaluations')} evaluations, {run.get('duplicates')} duplicates, "
                f"{run.get('left_over')} left over, regret {run.get('regret', float('nan')):.3f}")
        if run["failed"]:
            what = f"FAILED (exit codes {run['exit_codes']}); {what}"
        say(console, f"[{done['n']}/{total}] {run['workers']} workers, seed {run['seed']}: "
                     f"{run['wall_s']:.1f} s, {what}")

    command = _command(problem, samplers[0], seeds, counts, budget, sleep, storage, launch,
                       out)
    results = run_workers_bench(settings, out, command, on_run)
    typer.echo((out / "workers.md").read_text())
    say(console, f"written {out / 'workers.md'} and {out / 'workers.json'}")
    if any(r["failed"] for r in results["runs"]):
        raise typer.Exit(code=1)
