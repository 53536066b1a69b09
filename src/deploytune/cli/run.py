"""Running a spec's study from the command line: one tuner (``tune``, ``worker``,
``validate``) or several worker processes on this machine (``tune --workers N``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from deploytune.cli.output import fail, make_console, say

if TYPE_CHECKING:
    from rich.console import Console

    from deploytune.spec import Spec
    from deploytune.validation import Validation

__all__ = ["run_study", "run_workers"]


def run_workers(spec_file: Path, spec: Spec, console: Console, workers: int,
                fresh: bool) -> str:
    """Run ``workers`` local worker processes on the spec's study to the end of its search;
    the study's name (the finalists' re-runs and the report are left to the caller).

    The workers are forked from this process (:func:`~deploytune.parallel.launch.fork_workers`)
    once it has imported what they need; each runs what ``deploytune worker`` runs."""
    from deploytune.parallel.launch import fork_workers
    from deploytune.parallel.lock import shared_across_processes
    from deploytune.tuning import StorageError, select_study

    if not shared_across_processes(spec.storage):
        raise fail(f"{spec_file}: --workers: worker processes share the study through its "
                   f"storage; use sqlite:///file.db, postgresql://... or journal:///file.log")
    try:
        name = select_study(spec, fresh, console)
    except StorageError as exc:
        raise fail(str(exc), code=1) from None
    say(console, f"study {name}: {workers} workers")
    _import_for_workers(spec)

    def entry(_index: int) -> int:
        try:
            run_study(spec_file, spec, make_console(), live=False, report=False,
                      resume=f"deploytune worker {spec_file}", study_name=name, worker=True)
        except typer.Exit as stop:
            return stop.exit_code
        return 0

    try:
        codes = fork_workers(entry, workers, lambda line: say(console, line))
    except KeyboardInterrupt:
        say(console, f"\nstopped: running trials were recorded as interrupted and will be "
                     f"evaluated again; run `deploytune tune {spec_file}` to resume")
        raise typer.Exit(code=130) from None
    failed = [c for c in codes if c != 0]
    if failed:
        status = max(failed) if max(failed) > 0 else 1  # a worker killed by a signal
        raise fail(f"{spec_file}: a worker stopped with exit status {failed[0]} (its "
                   f"message is above); the study keeps every recorded trial", code=status)
    return name


def _import_for_workers(spec: Spec) -> None:
    """Import what every worker needs before they are forked, once: the tuner, what the
    spec's sampler imports before its first ask, and the storage's driver (its schema made)."""
    import deploytune.progress
    import deploytune.tuner  # noqa: F401
    from deploytune.parallel.storage import warm_storage
    from deploytune.samplers import SpaceSampler, make_sampler

    warm_storage(spec.storage)
    sampler = make_sampler(spec.sampler, space=spec.space, seed=spec.seed,
                           budget=spec.budget_trials, **spec.sampler_options)
    if isinstance(sampler, SpaceSampler):
        sampler.warm_up()


def run_study(spec_path: Path, spec: Spec, console: Console, *, live: bool | None,
              report: bool, resume: str, fresh: bool = False,
              validate: Validation | None = None, study_name: str | None = None,
              worker: bool = False) -> None:
    """Run the spec's study to its budget and print the summary; Ctrl-C exits 130, a study
    holding another problem or a metric the evaluator does not report exits 2, a storage
    failure or another reason to stop (a failing sampler) exits 1."""
    from deploytune.cli.render_analysis import render_summary
    from deploytune.tuner import MetricNotReported, TuningStopped
    from deploytune.tuning import StorageError, StudyMismatch, StudyNotFound, tune_spec

    if live is None:  # a log file or a pipe gets one plain line per trial
        live = console.is_interactive
    try:
        result = tune_spec(spec, console=console, live=live, report=report, fresh=fresh,
                           validate=validate, study_name=study_name, worker=worker)
    except KeyboardInterrupt:
        say(console, f"\nstopped: the running trial was recorded as interrupted and "
                      f"will be evaluated again; run `{resume}` to resume")
        raise typer.Exit(code=130) from None
    except (StudyMismatch, StudyNotFound) as exc:
        raise fail(f"{spec_path}: {exc}") from None
    except StorageError as exc:
        raise fail(str(exc), code=1) from None
    except TuningStopped as exc:  # one line; the trial is re-queued, nothing was counted
        raise fail(f"{spec_path}: {exc}",
                   code=2 if isinstance(exc, MetricNotReported) else 1) from None
    name = result.study.study_name if result.study is not None else spec.study_name
    if not worker:
        render_summary(result, console, title=f"study {name}")
