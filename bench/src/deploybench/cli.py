"""``deploytune bench`` and ``deploytune problems``: the benchmark's commands.

They are registered on deploytune's command line through the ``deploytune.commands`` entry
point (:func:`register`), so the core package never imports the benchmark: without
``deploybench`` installed, ``deploytune`` has no ``bench`` command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from deploytune.spec import Spec

__all__ = ["DEFAULT_OUT", "DEFAULT_SAMPLERS", "bench", "problems_command", "register"]

DEFAULT_SAMPLERS = "random,tpe,ctpe,tba,tba-tpe"
"""Samplers benchmarked by default."""
DEFAULT_OUT = Path("results/bench")
"""Default output folder of ``deploytune bench``."""


def register(app: typer.Typer) -> None:
    """Add ``bench`` and ``problems`` to deploytune's typer ``app``."""
    app.command("bench")(bench)
    app.command("problems")(problems_command)


def say(console: Console, text: str) -> None:
    """Print ``text`` as it is (never read as rich markup or emoji codes), unwrapped."""
    console.print(Text(text), soft_wrap=True)


def _load_spec(path: Path) -> Spec:
    """The validated spec, or exit 2 with the SpecError's one-line message."""
    from deploytune.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


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
    from deploybench.runner import expand_problems

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


def bench(
    problems: Annotated[str | None, typer.Option(
        "--problems", "-p",
        help="Comma-separated problem names or groups (see `deploytune problems`); 'all' "
             "for every shipped problem, 'gen-dev' / 'gen-test' for the generated development "
             "and test sets, 'module:factory' for a custom one. Default: all (with "
             "--overhead: crashy-branin, whose random history is used).")] = None,
    samplers: Annotated[str, typer.Option(
        "--samplers", "-s",
        help="Comma-separated sampler names (see `deploytune samplers`).")] = DEFAULT_SAMPLERS,
    seeds: Annotated[int | None, typer.Option(
        "--seeds", min=1, help="Number of seeds: runs seeds 0..N-1 (default 10; with "
                               "--early-abort: 3).", show_default=False)] = None,
    budget: Annotated[int | None, typer.Option(
        "--budget", "-b", min=1, help="Trials per run (default 25; with --early-abort: 20).",
        show_default=False)] = None,
    budgets: Annotated[str | None, typer.Option(
        "--budgets", help="Comma-separated budgets, e.g. 15,25,50, instead of --budget: every "
                          "budget is run separately and samplers are compared per (problem, "
                          "budget) cell; runs go to OUT/runs/{problem}/b{budget}/.",
        show_default=False)] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Runs at a time (default: the number of CPUs).")] = None,
    runs_per_process: Annotated[int | None, typer.Option(
        "--runs-per-process", min=1,
        help="Seeds of one (problem, budget, sampler) run one after the other in each spawned "
             "process (spawning costs seconds of imports); 1 runs every run in a process of "
             "its own. Results do not depend on it. Default: about two processes per job.",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Keep the runs already complete in OUT (their seed_{s}.json "
                         "summary exists) and run only the others.")] = False,
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
    repeats: Annotated[int | None, typer.Option(
        "--repeats", min=1, help="With --overhead: timed asks per sampler and size (default "
                                 "5); with --isolation: timed trials per evaluator (default "
                                 "50); with --record: timed windows per cell (default: the "
                                 "workload's); with --probe: fresh-process runs per "
                                 "configuration (default 10).", show_default=False)] = None,
    isolation: Annotated[bool, typer.Option(
        "--isolation",
        help="Measure the per-trial overhead of isolated evaluators instead.")] = False,
    early_abort: Annotated[bool, typer.Option(
        "--early-abort",
        help="Measure the seconds early abort saves (on vs off, and a counterfactual re-run "
             "of every aborted trial) on a spec's problem instead.")] = False,
    probe: Annotated[bool, typer.Option(
        "--probe",
        help="Probe real configurations (EfficientNet-Lite0 eager / ONNX Runtime, fp32 / "
             "int8, 1 / 2 threads) near a latency limit instead: p95 mean, std, CV and flip "
             "rate over fresh-process runs.")] = False,
    limit: Annotated[float | None, typer.Option(
        "--limit", min=0.001,
        help="With --probe: one latency limit in ms for every configuration (default: each "
             "configuration's own boundary, its median p95 sitting 1.5% below it).",
        show_default=False)] = None,
    spec_file: Annotated[Path | None, typer.Option(
        "--spec", help="With --early-abort: the spec whose problem is used (default: "
                       "examples/matmul_command/spec.yaml).", show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.001, help="With --early-abort: time limit per trial in seconds, "
                                     "replacing the spec's.", show_default=False)] = None,
    limit_counterfactual: Annotated[float | None, typer.Option(
        "--limit-counterfactual", min=0.001,
        help="With --early-abort: also re-run every timed-out trial under this longer time "
             "limit (seconds), to measure what the time limit saved.",
        show_default=False)] = None,
    trust: Annotated[bool, typer.Option(
        "--trust",
        help="Score the recommended configuration by what deploying it gives (true "
             "P(feasible) and mean objective over 400 fresh measurements): the default sampler "
             "without re-runs, with finalists' re-runs, and with re-runs during the search too, "
             "under six recommendation policies, on noisy problems (default gen-noisy-dev). "
             "Writes OUT/trust.md and OUT/trust.json; resumes runs already in OUT.")] = False,
    tables: Annotated[bool, typer.Option(
        "--tables", help="Write the shipped recorded tables as markdown to OUT/tables.md "
                         "instead.")] = False,
    record: Annotated[str | None, typer.Option(
        "--record", help="Measure the grid of a real workload (effnet, minilm, whisper, or one "
                         "of their problems) and save its table for the *-replay problems "
                         "(resumes a partial table).", show_default=False)] = None,
    remeasure_contended: Annotated[float | None, typer.Option(
        "--remeasure-contended", min=0.0,
        help="With --record: measure again the recorded cells during which other processes "
             "used more than this many CPU seconds.", show_default=False)] = None,
    table: Annotated[Path | None, typer.Option(
        "--table", help="With --record: the table file (default: the one shipped in the "
                        "package, deploybench/data/WORKLOAD.json).",
        show_default=False)] = None,
) -> None:
    """Run DeployBench, or (with --overhead) time the samplers.

    Writes OUT/runs/{problem}/{sampler}/seed_{s}.jsonl (one line per trial; with --budgets,
    OUT/runs/{problem}/b{budget}/{sampler}/seed_{s}.jsonl) and, once the run is complete, its
    summary seed_{s}.json next to it, OUT/summary.json, OUT/summary.md
    (the table, then per (problem, budget) paired Wilcoxon tests and a scoreboard) and
    OUT/figures/*.png (with --budgets, OUT/figures/b{budget}/*.png); with --overhead,
    OUT/overhead.md and OUT/overhead.json; with --isolation, OUT/isolation.md and
    OUT/isolation.json; with --early-abort, OUT/early_abort.md and OUT/early_abort.json;
    with --trust, OUT/trust.md and OUT/trust.json; with --probe, OUT/probe.md and
    OUT/probe.json;
    with --record, the workload's table (see --table); with --tables, OUT/tables.md.
    """
    from rich.console import Console

    if overhead + isolation + early_abort + probe + tables + trust + (record is not None) > 1:
        raise typer.BadParameter(
            "give at most one of --overhead, --isolation, --early-abort, --probe, --record, "
            "--tables, --trust",
            param_hint="'--overhead / --isolation / --early-abort / --probe / --record / "
                       "--tables / --trust'")
    if limit is not None and not probe:
        raise typer.BadParameter("--limit is for --probe only", param_hint="'--limit'")
    if (resume or runs_per_process is not None) and (overhead or isolation or early_abort or probe
                                                     or tables or trust or record is not None):
        raise typer.BadParameter("--resume and --runs-per-process are for the bench runs only",
                                 param_hint="'--resume / --runs-per-process'")
    budget_list: list[int] | None = None
    if budgets is not None:
        if budget is not None:
            raise typer.BadParameter("give either --budget or --budgets, not both",
                                     param_hint="'--budget / --budgets'")
        if overhead or isolation or early_abort or probe or tables or record is not None:
            raise typer.BadParameter("--budgets is for the bench runs only",
                                     param_hint="'--budgets'")
        try:
            budget_list = [int(b) for b in budgets.split(",") if b.strip()]
        except ValueError:
            budget_list = []
        if not budget_list or min(budget_list) < 1:
            raise typer.BadParameter(f"expected comma-separated budgets >= 1, got {budgets!r}",
                                     param_hint="'--budgets'")
    console = Console()
    if tables:
        from deploybench.real import WORKLOADS
        from deploybench.recording import default_table_path
        from deploybench.runner import _write_text
        from deploybench.table_report import tables_markdown

        paths = [default_table_path(w) for w in WORKLOADS if default_table_path(w).exists()]
        _write_text(out / "tables.md", tables_markdown(paths))
        say(console, f"written {out / 'tables.md'} ({len(paths)} tables)")
        return
    if record is not None:
        _bench_record(record, table, repeats, console, remeasure_contended)
        return
    if isolation:
        _bench_isolation(repeats, out, console)
        return
    if early_abort:
        _bench_early_abort(spec_file, seeds, budget, timeout, out, console,
                           limit_counterfactual)
        return
    if probe:
        _bench_probe(repeats, limit, out, console)
        return
    sampler_list = _check_samplers(samplers)
    seeds = 10 if seeds is None else seeds
    budget = 25 if budget is None else budget
    if overhead:
        size_list = _check_sizes(sizes)
        problem_list = _check_problems(problems) if problems is not None else ["crashy-branin"]
        if len(problem_list) != 1:
            raise typer.BadParameter("with --overhead give exactly one problem (its random "
                                     "history is used)", param_hint="'--problems'")
        from deploybench.overhead import sampler_overhead

        sampler_overhead(sampler_list, size_list, problem=problem_list[0],
                         repeats=5 if repeats is None else repeats, out_dir=out,
                         console=console)
        say(console, f"written {out / 'overhead.md'} and {out / 'overhead.json'}")
        return
    if trust:
        named = problems if problems is not None else "gen-noisy-dev"
        _bench_trust(_check_problems(named), named, 10 if seeds is None else seeds,
                     budget_list or [25 if budget is None else budget], jobs, out, console)
        return
    problem_list = _check_problems(problems if problems is not None else "all")
    from deploybench.runner import run_bench

    result = run_bench(problem_list, sampler_list, list(range(seeds)),
                       None if budget_list is not None else budget,
                       jobs=jobs or os.cpu_count() or 1, out_dir=out, budgets=budget_list,
                       figures=figures, console=console, progress=progress,
                       runs_per_process=runs_per_process, resume=resume)
    if result.failures:
        n = len(result.failures)
        total = n + len(result.runs)
        console.print(Text.assemble((f"{n} of {total} runs failed", "red"),
                                    f" (see {out / 'summary.md'})"))
        raise typer.Exit(code=1)


def _bench_trust(problems: list[str], named: str, seeds: int, budgets: list[int],
                 jobs: int | None, out: Path, console: Console) -> None:
    """``deploytune bench --trust``: recommendation policies scored by the truth."""
    import json
    import shlex

    from deploybench.trust import run_trust, trust_markdown

    done = {"n": 0}

    def report(_: Any) -> None:
        done["n"] += 1
        if done["n"] % 25 == 0:
            say(console, f"{done['n']} runs done")

    runs = run_trust(problems, seeds, budgets, out, jobs or os.cpu_count() or 1, report)
    command = shlex.join(["deploytune", "bench", "--trust", "-p", named,
                          "--seeds", str(seeds), "--budgets", ",".join(map(str, budgets)),
                          "-o", str(out)])
    out.mkdir(parents=True, exist_ok=True)
    (out / "trust.json").write_text(json.dumps(runs, default=str) + "\n")
    (out / "trust.md").write_text(trust_markdown(runs, command) + "\n")
    say(console, f"written {out / 'trust.md'} and {out / 'trust.json'} ({len(runs)} runs)")


def _bench_record(name: str, table: Path | None, windows: int | None,
                  console: Console, remeasure_contended: float | None = None) -> None:
    """``deploytune bench --record WORKLOAD``: measure and save a real workload's grid."""
    from collections.abc import Mapping

    from deploybench.real import get_workload
    from deploybench.recording import record_workload

    try:
        workload = get_workload(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--record'") from None

    def on_cell(index: int, total: int, cell: Mapping[str, Any]) -> None:
        what = cell["status"] if cell["status"] == "ok" else cell["crash_kind"]
        if cell.get("declared"):
            what += " (declared)"
        elif cell["status"] == "ok":
            p95 = sorted(r["p95_ms"] for r in cell["repeats"])
            what += f" p95 {p95[len(p95) // 2]:.1f} ms"
        say(console, f"[{index}/{total}] {cell['config']} -> {what} "
                      f"({cell['seconds']:.1f} s)")

    say(console, f"recording {workload.name}: every cell isolated, time limit "
                  f"{workload.timeout_s:g} s, memory cap {workload.memory_mb:g} MB "
                  f"(keep the machine otherwise idle: co-tenancy changes latency)")
    path = record_workload(workload, out=table, windows=windows, on_cell=on_cell,
                           max_foreign_cpu_s=remeasure_contended)
    say(console, f"written {path}")


def _bench_isolation(repeats: int | None, out: Path, console: Console) -> None:
    """``deploytune bench --isolation``: time one trial of each kind of evaluator."""
    from deploybench.isolation import DEFAULT_REPEATS, isolation_overhead

    n = DEFAULT_REPEATS if repeats is None else repeats
    command = f"deploytune bench --isolation --repeats {n} --out {out}"
    isolation_overhead(repeats=n, out_dir=out, console=console, command=command)
    say(console, f"written {out / 'isolation.md'} and {out / 'isolation.json'}")


def _bench_early_abort(spec_file: Path | None, seeds: int | None, budget: int | None,
                       timeout: float | None, out: Path, console: Console,
                       limit_counterfactual: float | None = None) -> None:
    """``deploytune bench --early-abort``: early abort on and off on a spec's problem."""
    from deploybench.early_abort import (
        DEFAULT_BUDGET,
        DEFAULT_SEEDS,
        compare_early_abort,
        default_spec_path,
        problem_from_spec,
    )
    path = spec_file if spec_file is not None else default_spec_path()
    spec = _load_spec(path)
    problem = problem_from_spec(spec, timeout_s=timeout)
    n_seeds = DEFAULT_SEEDS if seeds is None else seeds
    n_trials = DEFAULT_BUDGET if budget is None else budget
    parts = ["deploytune bench --early-abort", f"--seeds {n_seeds}", f"--budget {n_trials}"]
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


def _bench_probe(repeats: int | None, limit: float | None, out: Path,
                 console: Console) -> None:
    """``deploytune bench --probe``: fresh-process runs of real configurations near a limit."""
    from deploybench.probe import DEFAULT_REPEATS, ProbeRun, run_probe

    n = DEFAULT_REPEATS if repeats is None else repeats
    parts = ["deploytune bench --probe", f"--repeats {n}"]
    if limit is not None:
        parts.append(f"--limit {limit:g}")
    parts.append(f"--out {out}")

    def on_run(run: ProbeRun, done: int, total: int) -> None:
        what = (f"p95 {run.p95_ms:.1f} ms" if run.error is None and run.p95_ms is not None
                else f"failed: {run.error}")
        say(console, f"[{done}/{total}] {run.case} run {run.index + 1}: {what} "
                      f"(pid {run.pid}, {run.seconds:.1f} s, load {run.load1_before:.2f}, "
                      f"other processes {run.foreign_cores:.2f} cores)")

    say(console, f"probing {n} fresh-process runs per configuration (other processes on "
                  f"this machine change latency; their load is recorded with every run)")
    run_probe(repeats=n, limit_ms=limit, out_dir=out, command=" ".join(parts), on_run=on_run)
    say(console, f"written {out / 'probe.md'} and {out / 'probe.json'}")


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
