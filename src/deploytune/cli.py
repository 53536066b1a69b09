"""The ``deploytune`` command line.

Commands:

* ``deploytune bench``: run DeployBench (every problem x sampler x seed, each run in its own
  process) and write JSON-lines runs, a summary table and figures; with ``--overhead``, measure
  the samplers' milliseconds per ask instead.
* ``deploytune samplers``: list the sampler names.
* ``deploytune problems``: list the benchmark problems.

Heavy modules (matplotlib, the benchmark itself) are imported only by the command that needs
them, so ``deploytune --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "main"]

DEFAULT_SAMPLERS = "random,tpe,ctpe,tba,tba-tpe"
"""Samplers benchmarked by default."""
DEFAULT_OUT = Path("results/bench")
"""Default output folder of ``deploytune bench``."""

app = typer.Typer(
    name="deploytune",
    help="Find the best feasible ML deployment configuration; benchmark the samplers.",
    no_args_is_help=True,
    add_completion=False,
)
"""The typer application behind the ``deploytune`` command."""


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _check_samplers(text: str) -> list[str]:
    from deploytune.samplers import available

    names = _split(text)
    if not names:
        raise typer.BadParameter("give at least one sampler name", param_hint="'--samplers'")
    known = available()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown sampler(s) {', '.join(map(repr, unknown))}; choose from {', '.join(known)}",
            param_hint="'--samplers'")
    return list(dict.fromkeys(names))


def _check_problems(text: str) -> list[str]:
    from deploytune.bench.runner import expand_problems

    names = _split(text)
    if not names:
        raise typer.BadParameter("give at least one problem name", param_hint="'--problems'")
    try:
        return expand_problems(names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--problems'") from exc


def _check_sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in _split(text)]
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}",
                                 param_hint="'--sizes'") from exc
    if not sizes or min(sizes) < 0:
        raise typer.BadParameter(f"expected history sizes >= 0, got {text!r}",
                                 param_hint="'--sizes'")
    return sizes


@app.command()
def bench(
    problems: Annotated[str | None, typer.Option(
        "--problems", "-p",
        help="Comma-separated problem names or groups (see `deploytune problems`); 'all' "
             "for every problem, 'module:factory' for a custom one. Default: all (with "
             "--overhead: crashy-branin, whose random history is used).")] = None,
    samplers: Annotated[str, typer.Option(
        "--samplers", "-s",
        help="Comma-separated sampler names (see `deploytune samplers`).")] = DEFAULT_SAMPLERS,
    seeds: Annotated[int, typer.Option(
        "--seeds", min=1, help="Number of seeds: runs seeds 0..N-1.")] = 10,
    budget: Annotated[int, typer.Option("--budget", "-b", min=1, help="Trials per run.")] = 25,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Runs at a time (default: the number of CPUs).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = DEFAULT_OUT,
    figures: Annotated[bool, typer.Option(
        "--figures/--no-figures", help="Draw PNG figures.")] = True,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show a progress bar.")] = True,
    overhead: Annotated[bool, typer.Option(
        "--overhead",
        help="Measure each sampler's milliseconds per ask instead of running the bench.")] = False,
    sizes: Annotated[str, typer.Option(
        "--sizes", help="With --overhead: comma-separated history sizes.")] = "25,100,300",
    repeats: Annotated[int, typer.Option(
        "--repeats", min=1, help="With --overhead: timed asks per sampler and size.")] = 5,
) -> None:
    """Run DeployBench, or (with --overhead) time the samplers.

    Writes OUT/runs/{problem}/{sampler}/seed_{s}.jsonl (one line per trial),
    OUT/summary.json, OUT/summary.md and OUT/figures/*.png; with --overhead,
    OUT/overhead.md and OUT/overhead.json.
    """
    from rich.console import Console

    sampler_list = _check_samplers(samplers)
    console = Console()
    if overhead:
        size_list = _check_sizes(sizes)
        problem_list = _check_problems(problems) if problems is not None else ["crashy-branin"]
        if len(problem_list) != 1:
            raise typer.BadParameter("with --overhead give exactly one problem (its random "
                                     "history is used)", param_hint="'--problems'")
        from deploytune.bench.overhead import sampler_overhead

        sampler_overhead(sampler_list, size_list, problem=problem_list[0], repeats=repeats,
                         out_dir=out, console=console)
        console.print(f"written {out / 'overhead.md'} and {out / 'overhead.json'}")
        return
    problem_list = _check_problems(problems if problems is not None else "all")
    from deploytune.bench.runner import run_bench

    result = run_bench(problem_list, sampler_list, list(range(seeds)), budget,
                       jobs=jobs or os.cpu_count() or 1, out_dir=out, figures=figures,
                       console=console, progress=progress)
    if result.failures:
        n = len(result.failures)
        total = n + len(result.runs)
        console.print(f"[red]{n} of {total} runs failed[/red] (see {out / 'summary.md'})")
        raise typer.Exit(code=1)


@app.command("samplers")
def samplers_command() -> None:
    """List the sampler names usable with --samplers and optimize(sampler=...)."""
    from deploytune.samplers import DEFAULT_SAMPLER, available

    for name in available():
        typer.echo(f"{name}  (= {DEFAULT_SAMPLER})" if name == "default" else name)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


@app.command("problems")
def problems_command() -> None:
    """List the DeployBench problems with a one-line description."""
    from deploytune.bench.registry import get_problem, problem_names

    names = list(problem_names())
    width = max((len(n) for n in names), default=0)
    for name in names:
        desc = _first_sentence(get_problem(name).description)
        typer.echo(f"{name:<{width}}  {desc}".rstrip())


def main() -> None:
    """Entry point of the ``deploytune`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
