"""``deploytune bench fidelity``: the command (:func:`fidelity_command`, registered by
:mod:`deploybench.cli`) and its body, which checks the options, runs
:func:`deploybench.fidelity_bench.run_fidelity_bench` with a line per finished run, and prints
the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["fidelity_command", "run_fidelity_command"]


def run_fidelity_command(problems: str, methods: str, seeds: int, trials: int,
                         promote_below: str, jobs: int, out: Path) -> None:
    """Check the options (as typed), run the benchmark, print every run and then the report.

    Raises:
        typer.BadParameter: For an unknown method, a threshold outside [0, 1), or a problem
            without rungs.
    """
    import shlex

    from rich.console import Console

    from deploybench.fidelity_bench import METHODS, FidelitySettings, run_fidelity_bench
    from deploytune.cli import say

    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS]
    if unknown or "cabo" not in names:
        raise typer.BadParameter(f"choose among {', '.join(METHODS)}, cabo included",
                                 param_hint="'--methods'")
    try:
        thresholds = tuple(float(v) for v in promote_below.split(",") if v.strip())
    except ValueError:
        thresholds = (-1.0,)
    if any(not 0 <= v < 1 for v in thresholds):
        raise typer.BadParameter(f"expected comma-separated probabilities in [0, 1), got "
                                 f"{promote_below!r}", param_hint="'--promote-below'")
    settings = FidelitySettings(
        problems=tuple(p.strip() for p in problems.split(",") if p.strip()), methods=names,
        seeds=seeds, trials=trials, promote_below=thresholds, jobs=jobs)
    command = shlex.join(["deploytune", "bench", "fidelity", "--problems", problems,
                          "--methods", methods, "--seeds", str(seeds), "--trials", str(trials),
                          *(["--promote-below", promote_below] if thresholds else []),
                          "--out", str(out)])
    console = Console()

    def on_run(run: dict[str, Any]) -> None:
        say(console, f"{run['problem']} {run['method']} seed {run['seed']}: "
                     f"{len(run['rows'])} trials, {run['wall_s']:.1f} s")

    try:
        run_fidelity_bench(settings, out, command, on_run)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--problems'") from exc
    typer.echo((out / "fidelity.md").read_text())
    say(console, f"written {out / 'fidelity.md'}, {out / 'fidelity.json'} and "
                 f"{out / 'fidelity.png'}")


def fidelity_command(
    problems: Annotated[str, typer.Option(
        "--problems", help="Comma-separated problems with fidelity rungs.")
    ] = "llm-sim-8b-24gb,llm-sim-70b-2xh100",
    methods: Annotated[str, typer.Option(
        "--methods", help="Comma-separated methods: cabo (single fidelity, the reference), "
                          "cabo-rungs, cabo-estimate, ctpe-hyperband, ctpe-sh, random-asha, "
                          "smac3-mf.")
    ] = "cabo,cabo-rungs,cabo-estimate,ctpe-hyperband,ctpe-sh,random-asha,smac3-mf",
    seeds: Annotated[int, typer.Option("--seeds", min=2, help="Seeds 0..N-1.")] = 8,
    trials: Annotated[int, typer.Option(
        "--trials", min=1, help="Evaluations of the single-fidelity reference; its simulated "
                                "seconds are every method's cap.")] = 50,
    promote_below: Annotated[str, typer.Option(
        "--promote-below", help="Comma-separated thresholds of the rung rule: cabo-rungs runs "
        "once per value (default: once, with EarlyAbort's).", show_default=False)] = "",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Runs at once.")] = 2,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")
                   ] = Path("results/fidelity"),
) -> None:
    """Regret against simulated seconds of single-fidelity cabo, cabo with fidelity rungs,
    Optuna's TPE with Hyperband / successive halving, random search with ASHA and SMAC3's
    multi-fidelity facade, on problems whose evaluations pass rungs; writes OUT/fidelity.md,
    .json and .png."""
    run_fidelity_command(problems, methods, seeds, trials, promote_below, jobs, out)
