"""``deploytune bench`` and ``deploytune problems``: the benchmark's commands.

They are registered on deploytune's command line through the ``deploytune.commands`` entry
point (:func:`register`), so the core package never imports the benchmark: without
``deploybench`` installed, ``deploytune`` has no ``bench`` command.

The core's printing and spec-loading helpers (``deploytune.cli.say``,
``deploytune.cli.load_spec_or_exit``) are imported inside each command: ``deploytune.cli``
imports this module while it registers plug-ins, so a top-level import of it here would be a
cycle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from deploybench.fidelity_cli import fidelity_command

if TYPE_CHECKING:
    pass

__all__ = ["DEFAULT_OUT", "DEFAULT_SAMPLERS", "bench", "problems_command", "register"]

DEFAULT_SAMPLERS = "random,tpe,ctpe,tba,tba-tpe"
"""Samplers benchmarked by default."""
DEFAULT_OUT = Path("results/bench")
"""Default output folder of ``deploytune bench``."""


def register(app: typer.Typer) -> None:
    """Add ``bench`` and ``problems`` to deploytune's typer ``app``."""
    app.add_typer(bench_app, name="bench")
    app.command("problems")(problems_command)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _check_samplers(text: str) -> list[str]:
    from deploytune.samplers import available, is_known, split_names

    names = split_names(text)
    if not names:
        raise typer.BadParameter("give at least one sampler name", param_hint="'--samplers'")
    known = available()
    unknown = [n for n in names if not is_known(n)]
    if unknown:
        raise typer.BadParameter(
            f"unknown sampler(s) {', '.join(map(repr, unknown))}; choose from {', '.join(known)}",
            param_hint="'--samplers'")
    return names


def _check_problems(text: str) -> list[str]:
    from deploybench.runs import expand_problems

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


def _check_budgets(text: str) -> list[int]:
    try:
        budget_list = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        budget_list = []
    if not budget_list or min(budget_list) < 1:
        raise typer.BadParameter(f"expected comma-separated budgets >= 1, got {text!r}",
                                 param_hint="'--budgets'")
    return budget_list


def _budget_list(budget: int | None, budgets: str | None) -> list[int] | None:
    """``--budgets`` parsed, or ``None`` for one ``--budget`` (refusing both at once)."""
    if budgets is None:
        return None
    if budget is not None:
        raise typer.BadParameter("give either --budget or --budgets, not both",
                                 param_hint="'--budget / --budgets'")
    return _check_budgets(budgets)


Problems = Annotated[str | None, typer.Option(
    "--problems", "-p",
    help="Comma-separated problem names or groups (see `deploytune problems`); 'all' for every "
         "shipped problem, 'gen-dev' / 'gen-test' for the generated development and test "
         "sets, 'module:factory' for a custom one.", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Seeds = Annotated[int | None, typer.Option(
    "--seeds", min=1, help="Number of seeds: runs seeds 0..N-1.", show_default=False)]
Budget = Annotated[int | None, typer.Option(
    "--budget", "-b", min=1, help="Trials per run.", show_default=False)]
Budgets = Annotated[str | None, typer.Option(
    "--budgets", help="Comma-separated budgets, e.g. 15,25,50, instead of --budget: every budget "
                      "is run separately.", show_default=False)]
Jobs = Annotated[int | None, typer.Option(
    "--jobs", "-j", min=1, help="Runs at a time (default: the number of CPUs).")]

bench_app = typer.Typer(
    name="bench", no_args_is_help=False, add_completion=False,
    help="Run DeployBench (every problem x sampler x seed), or, as a sub-command, one of the "
         "experiments on the tool.")
"""``deploytune bench``: the runs without a sub-command; the experiments as sub-commands."""


@bench_app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    problems: Problems = None,
    samplers: Annotated[str, typer.Option(
        "--samplers", "-s",
        help="Comma-separated sampler names (see `deploytune samplers`).")] = DEFAULT_SAMPLERS,
    seeds: Annotated[int, typer.Option("--seeds", min=1,
                                       help="Number of seeds: runs seeds 0..N-1.")] = 10,
    budget: Budget = None,
    budgets: Budgets = None,
    jobs: Jobs = None,
    runs_per_process: Annotated[int | None, typer.Option(
        "--runs-per-process", min=1,
        help="Seeds of one (problem, budget, sampler) run one after the other in each spawned "
             "process (spawning costs seconds of imports); 1 runs every run in a process of "
             "its own. Results do not depend on it. Default: about two processes per job.",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Keep the runs already complete in OUT (their seed_{s}.json "
                         "summary exists) and run only the others.")] = False,
    out: Out = DEFAULT_OUT,
    figures: Annotated[bool, typer.Option(
        "--figures/--no-figures", help="Draw PNG figures.")] = True,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Run DeployBench (default problems: all; budget 25 unless --budgets).

    Writes OUT/runs/{problem}/{sampler}/seed_{s}.jsonl (one line per trial; with --budgets,
    OUT/runs/{problem}/b{budget}/{sampler}/seed_{s}.jsonl) and, once the run is complete, its
    summary seed_{s}.json next to it, OUT/summary.json, OUT/summary.md (the table, then per
    (problem, budget) paired Wilcoxon tests and a scoreboard) and OUT/figures/*.png. The
    experiments are sub-commands: overhead, isolation, early-abort, probe, trust, record,
    tables, workers (`deploytune bench COMMAND --help`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from deploybench.runner import run_bench

    budget_list = _budget_list(budget, budgets)
    sampler_list = _check_samplers(samplers)
    problem_list = _check_problems(problems if problems is not None else "all")
    console = Console()
    result = run_bench(problem_list, sampler_list, list(range(seeds)),
                       None if budget_list is not None else (budget or 25),
                       jobs=jobs or os.cpu_count() or 1, out_dir=out, budgets=budget_list,
                       figures=figures, console=console, progress=progress,
                       runs_per_process=runs_per_process, resume=resume)
    if result.failures:
        n = len(result.failures)
        total = n + len(result.runs)
        console.print(Text.assemble((f"{n} of {total} runs failed", "red"),
                                    f" (see {out / 'summary.md'})"))
        raise typer.Exit(code=1)


@bench_app.command("overhead")
def overhead_command(
    problems: Problems = None,
    samplers: Annotated[str, typer.Option(
        "--samplers", "-s", help="Comma-separated sampler names.")] = DEFAULT_SAMPLERS,
    sizes: Annotated[str, typer.Option(
        "--sizes", help="Comma-separated history sizes.")] = "25,100,300",
    repeats: Annotated[int, typer.Option(
        "--repeats", min=1, help="Timed asks per sampler and size.")] = 5,
    out: Out = DEFAULT_OUT,
) -> None:
    """Time each sampler's ask (milliseconds) on a random history of one problem (default
    crashy-branin); writes OUT/overhead.md and OUT/overhead.json."""
    from rich.console import Console

    from deploybench.overhead import sampler_overhead
    from deploytune.cli import say

    sampler_list = _check_samplers(samplers)
    size_list = _check_sizes(sizes)
    problem_list = _check_problems(problems) if problems is not None else ["crashy-branin"]
    if len(problem_list) != 1:
        raise typer.BadParameter("give exactly one problem (its random history is used)",
                                 param_hint="'--problems'")
    console = Console()
    sampler_overhead(sampler_list, size_list, problem=problem_list[0], repeats=repeats,
                     out_dir=out, console=console)
    say(console, f"written {out / 'overhead.md'} and {out / 'overhead.json'}")


@bench_app.command("isolation")
def isolation_command(
    repeats: Annotated[int | None, typer.Option(
        "--repeats", min=1, help="Timed trials per evaluator (default 50).",
        show_default=False)] = None,
    out: Out = DEFAULT_OUT,
) -> None:
    """Time one trial of each kind of evaluator (the isolation overhead); writes
    OUT/isolation.md and OUT/isolation.json."""
    from rich.console import Console

    from deploybench.isolation import DEFAULT_REPEATS, isolation_overhead
    from deploytune.cli import say

    console = Console()
    n = DEFAULT_REPEATS if repeats is None else repeats
    command = f"deploytune bench isolation --repeats {n} --out {out}"
    isolation_overhead(repeats=n, out_dir=out, console=console, command=command)
    say(console, f"written {out / 'isolation.md'} and {out / 'isolation.json'}")


@bench_app.command("early-abort")
def early_abort_command(
    spec_file: Annotated[Path | None, typer.Option(
        "--spec", help="The spec whose problem is used (default: "
                       "examples/matmul_command/spec.yaml).", show_default=False)] = None,
    seeds: Seeds = None,
    budget: Budget = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.001, help="Time limit per trial in seconds, replacing the spec's.",
        show_default=False)] = None,
    limit_counterfactual: Annotated[float | None, typer.Option(
        "--limit-counterfactual", min=0.001,
        help="Also re-run every timed-out trial under this longer time limit (seconds), to "
             "measure what the time limit saved.", show_default=False)] = None,
    out: Out = DEFAULT_OUT,
) -> None:
    """Measure the seconds early abort saves on a spec's problem (on vs off, and a
    counterfactual re-run of every aborted trial); writes OUT/early_abort.md and
    OUT/early_abort.json."""
    from rich.console import Console

    from deploybench.early_abort import (
        DEFAULT_BUDGET,
        DEFAULT_SEEDS,
        compare_early_abort,
        default_spec_path,
        problem_from_spec,
    )
    from deploytune.cli import load_spec_or_exit, say

    console = Console()
    path = spec_file if spec_file is not None else default_spec_path()
    spec = load_spec_or_exit(path)
    problem = problem_from_spec(spec, timeout_s=timeout)
    n_seeds = DEFAULT_SEEDS if seeds is None else seeds
    n_trials = DEFAULT_BUDGET if budget is None else budget
    parts = ["deploytune bench early-abort", f"--seeds {n_seeds}", f"--budget {n_trials}"]
    if spec_file is not None:
        parts.append(f"--spec {spec_file}")
    if timeout is not None:
        parts.append(f"--timeout {timeout:g}")
    if limit_counterfactual is not None:
        parts.append(f"--limit-counterfactual {limit_counterfactual:g}")
    parts.append(f"--out {out}")
    try:
        source = os.path.relpath(path)
    except ValueError:  # another drive
        source = str(path)
    if source.startswith(".."):
        source = str(Path(path).resolve())
    compare_early_abort(problem, range(n_seeds), n_trials, out_dir=out, console=console,
                        command=" ".join(parts), source=source,
                        limit_counterfactual_s=limit_counterfactual)
    say(console, f"written {out / 'early_abort.md'} and {out / 'early_abort.json'}")


@bench_app.command("probe")
def probe_command(
    repeats: Annotated[int | None, typer.Option(
        "--repeats", min=1, help="Fresh-process runs per configuration (default 10).",
        show_default=False)] = None,
    limit: Annotated[float | None, typer.Option(
        "--limit", min=0.001,
        help="One latency limit in ms for every configuration (default: each configuration's "
             "own boundary, its median p95 sitting 1.5% below it).", show_default=False)] = None,
    out: Out = DEFAULT_OUT,
) -> None:
    """Probe real configurations (EfficientNet-Lite0 eager / ONNX Runtime, fp32 / int8, 1 / 2
    threads) near a latency limit: p95 mean, std, CV and flip rate over fresh-process runs;
    writes OUT/probe.md and OUT/probe.json."""
    from rich.console import Console

    from deploybench.probe import DEFAULT_REPEATS, ProbeRun, run_probe
    from deploytune.cli import say

    console = Console()
    n = DEFAULT_REPEATS if repeats is None else repeats
    parts = ["deploytune bench probe", f"--repeats {n}"]
    if limit is not None:
        parts.append(f"--limit {limit:g}")
    parts.append(f"--out {out}")

    def on_run(run: ProbeRun, done: int, total: int) -> None:
        what = (f"p95 {run.p95_ms:.1f} ms" if run.error is None and run.p95_ms is not None
                else f"failed: {run.error}")
        say(console, f"[{done}/{total}] {run.case} run {run.index + 1}: {what} "
                     f"(pid {run.pid}, {run.seconds:.1f} s, load {run.load1_before:.2f}, "
                     f"other processes {run.foreign_cores:.2f} cores)")

    say(console, f"probing {n} fresh-process runs per configuration (other processes on this "
                 f"machine change latency; their load is recorded with every run)")
    run_probe(repeats=n, limit_ms=limit, out_dir=out, command=" ".join(parts), on_run=on_run)
    say(console, f"written {out / 'probe.md'} and {out / 'probe.json'}")


@bench_app.command("trust")
def trust_command(
    problems: Problems = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1,
                                       help="Number of seeds: runs seeds 0..N-1.")] = 10,
    budget: Budget = None,
    budgets: Budgets = None,
    jobs: Jobs = None,
    out: Out = DEFAULT_OUT,
) -> None:
    """Score the recommended configuration by what deploying it gives (true P(feasible) and
    mean objective over 400 fresh measurements): the default sampler without re-runs, with
    finalists' re-runs, and with re-runs during the search too, under six recommendation
    policies, on noisy problems (default gen-noisy-dev). Writes OUT/trust.md and
    OUT/trust.json; resumes runs already in OUT."""
    import json
    import shlex

    from rich.console import Console

    from deploybench.trust import run_trust, trust_markdown
    from deploytune.cli import say

    console = Console()
    named = problems if problems is not None else "gen-noisy-dev"
    problem_list = _check_problems(named)
    budget_list = _budget_list(budget, budgets) or [25 if budget is None else budget]
    done = {"n": 0}

    def report(_: Any) -> None:
        done["n"] += 1
        if done["n"] % 25 == 0:
            say(console, f"{done['n']} runs done")

    runs = run_trust(problem_list, seeds, budget_list, out, jobs or os.cpu_count() or 1, report)
    command = shlex.join(["deploytune", "bench", "trust", "-p", named, "--seeds", str(seeds),
                          "--budgets", ",".join(map(str, budget_list)), "-o", str(out)])
    out.mkdir(parents=True, exist_ok=True)
    (out / "trust.json").write_text(json.dumps(runs, default=str) + "\n")
    (out / "trust.md").write_text(trust_markdown(runs, command) + "\n")
    say(console, f"written {out / 'trust.md'} and {out / 'trust.json'} ({len(runs)} runs)")


@bench_app.command("record")
def record_command(
    workload: Annotated[str, typer.Argument(
        help="The workload (effnet, minilm, whisper, or one of their problems).")],
    table: Annotated[Path | None, typer.Option(
        "--table", help="The table file (default: the one shipped in the package, "
                        "deploybench/data/WORKLOAD.json).", show_default=False)] = None,
    repeats: Annotated[int | None, typer.Option(
        "--repeats", min=1, help="Timed windows per cell (default: the workload's).",
        show_default=False)] = None,
    remeasure_contended: Annotated[float | None, typer.Option(
        "--remeasure-contended", min=0.0,
        help="Measure again the recorded cells during which other processes used more than "
             "this many CPU seconds.", show_default=False)] = None,
) -> None:
    """Measure the grid of a real workload and save its table for the *-replay problems
    (resumes a partial table)."""
    from collections.abc import Mapping

    from rich.console import Console

    from deploybench.real import get_workload
    from deploybench.recording import record_workload
    from deploytune.cli import say

    console = Console()
    try:
        chosen = get_workload(workload)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'WORKLOAD'") from None

    def on_cell(index: int, total: int, cell: Mapping[str, Any]) -> None:
        what = cell["status"] if cell["status"] == "ok" else cell["crash_kind"]
        if cell.get("declared"):
            what += " (declared)"
        elif cell["status"] == "ok":
            p95 = sorted(r["p95_ms"] for r in cell["repeats"])
            what += f" p95 {p95[len(p95) // 2]:.1f} ms"
        say(console, f"[{index}/{total}] {cell['config']} -> {what} ({cell['seconds']:.1f} s)")

    say(console, f"recording {chosen.name}: every cell isolated, time limit "
                 f"{chosen.timeout_s:g} s, memory cap {chosen.memory_mb:g} MB (keep the machine "
                 f"otherwise idle: co-tenancy changes latency)")
    path = record_workload(chosen, out=table, windows=repeats, on_cell=on_cell,
                           max_foreign_cpu_s=remeasure_contended)
    say(console, f"written {path}")


@bench_app.command("tables")
def tables_command(out: Out = DEFAULT_OUT) -> None:
    """Write the shipped recorded tables as markdown to OUT/tables.md."""
    from rich.console import Console

    from deploybench.real import WORKLOADS
    from deploybench.recording import default_table_path
    from deploybench.runs import write_text
    from deploybench.table_report import tables_markdown
    from deploytune.cli import say

    paths = [default_table_path(w) for w in WORKLOADS if default_table_path(w).exists()]
    write_text(out / "tables.md", tables_markdown(paths))
    say(Console(), f"written {out / 'tables.md'} ({len(paths)} tables)")


@bench_app.command("workers")
def workers_command(
    problem: Annotated[str, typer.Option(
        "--problem", help="A simulated problem (see `deploytune problems`).")] = "llm-sim-8b-24gb",
    sampler: Annotated[str, typer.Option("--sampler", help="The workers' sampler.")] = "cabo",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1.")] = 5,
    workers: Annotated[str, typer.Option(
        "--workers", help="Comma-separated worker counts; the first is the reference.")] = "1,2,4",
    budget: Annotated[int, typer.Option(
        "--budget", "-b", min=1, help="Evaluations per study.")] = 50,
    sleep: Annotated[float, typer.Option(
        "--sleep", min=0.0, help="Seconds each evaluation sleeps.")] = 2.0,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="A storage URL in which every run makes a new study (default: an "
                          "SQLite file per run under OUT/runs).", show_default=False)] = None,
    launch: Annotated[str, typer.Option(
        "--launch", help="fork: one process forks the workers, as `deploytune tune --workers "
                         "N` does; exec: an interpreter per worker, as `deploytune worker` on "
                         "separate machines.")] = "fork",
    out: Out = Path("results/workers"),
) -> None:
    """Wall-clock speed-up and regret of 1, 2 and 4 worker processes on one study whose
    evaluations sleep, with exact budgets, duplicates and left-over trials counted; writes
    OUT/workers.md and OUT/workers.json."""
    from deploybench.workers_cli import run_workers_command

    run_workers_command(problem, _check_samplers(sampler), seeds, workers, budget, sleep,
                        storage, launch, out)


bench_app.command("fidelity")(fidelity_command)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def problems_command() -> None:
    """List the DeployBench problems with a one-line description."""
    from deploybench.registry import get_problem, problem_names

    names = list(problem_names())
    width = max((len(n) for n in names), default=0)
    for name in names:
        try:
            desc = _first_sentence(get_problem(name).description)
        except ValueError as exc:  # a real-workload problem whose table was not recorded
            desc = f"(unavailable: {exc})"
        typer.echo(f"{name:<{width}}  {desc}".rstrip())
