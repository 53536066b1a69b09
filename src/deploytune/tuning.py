"""Running a spec file end to end: the engine behind ``deploytune tune`` and ``show``.

:func:`tune_spec` opens (or resumes) the spec's study, runs :func:`deploytune.optimize` with the
spec's evaluator, budget, sampler and rules under a live progress line, and writes the report.
:func:`open_study` finds an existing study from a spec file, an SQLite file or a storage URL.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import optuna
from rich.console import Console

from deploytune.tuner import Result, optimize

if TYPE_CHECKING:
    from deploytune.spec import Spec

__all__ = ["StudyNotFound", "open_study", "report_dir_of", "tune_spec"]


class StudyNotFound(Exception):
    """The study named on the command line does not exist (the message says what does)."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so the running trial is recorded before the tuner exits."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _previous_result(spec: Spec) -> Result | None:
    """The study's result before this run, or ``None`` for a new study."""
    try:
        study = optuna.load_study(study_name=spec.study_name, storage=spec.storage)
    except KeyError:
        return None
    return Result.from_study(study, spec.objective, spec.constraints)


def tune_spec(spec: Spec, *, console: Console, live: bool = True,
              report: bool = True) -> Result:
    """Run (or resume) the study of ``spec`` to its budget and write its report.

    Raises:
        KeyboardInterrupt: On Ctrl-C or SIGTERM, after the running trial was recorded as
            interrupted; running the same spec again resumes.
        ValueError: When the storage holds a study of that name with a different problem.
    """
    from deploytune.progress import TuneProgress
    from deploytune.samplers import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    previous = _previous_result(spec)
    if previous is not None and previous.trials:
        console.print(f"resuming study [bold]{spec.study_name}[/]: {len(previous.trials)} "
                      f"evaluations recorded", highlight=False)
    sampler = make_sampler(spec.sampler, space=spec.space, seed=spec.seed,
                           budget=spec.budget_trials or 100, **spec.sampler_options)
    evaluator = spec.build_evaluator()
    console.print(f"evaluator: {evaluator.describe()}", highlight=False)
    progress = TuneProgress(spec.objective, spec.budget_trials, previous, console, live)
    try:
        with _sigterm_as_interrupt(), progress:
            result = optimize(
                evaluator, spec.space, objective=spec.objective.metric,
                direction=spec.objective.direction, constraints=spec.constraints,
                budget=spec.budget_trials, sampler=sampler, seed=spec.seed,
                storage=spec.storage, study_name=spec.study_name,
                callbacks=[progress.on_trial], time_budget_s=spec.budget_seconds,
                retries=spec.retries, rules=spec.rules, early_abort=spec.early_abort,
                pruner=spec.build_pruner(), on_trial_start=progress.on_start)
    finally:
        evaluator.close()
    if report and result.study is not None:
        from deploytune.analysis.report import write_report

        path = write_report(result.study, spec.report_dir, spec=spec.to_dict())
        console.print(f"report: {path}", highlight=False)
    return result


def _storage_url(target: str) -> str:
    if "://" in target:
        return target
    path = Path(target)
    if not path.exists():
        raise StudyNotFound(f"{target}: no such file; give a spec file (.yaml), an SQLite "
                            f"file (.db) or a storage URL such as sqlite:///study.db")
    return f"sqlite:///{path.resolve()}"


def open_study(target: str, study_name: str | None = None) -> tuple[optuna.Study, Spec | None]:
    """Load the study behind ``target``: a spec file, an SQLite file or a storage URL.

    Returns:
        The study, and the spec when ``target`` is a spec file.

    Raises:
        StudyNotFound: With the list of the studies the storage holds.
        deploytune.spec.SpecError: When ``target`` is a spec file with a mistake.
    """
    spec: Spec | None = None
    name: str | None
    if target.endswith((".yaml", ".yml")) and "://" not in target:
        from deploytune.spec import load_spec

        spec = load_spec(target, check_evaluator=False)
        url, name = spec.storage, study_name or spec.study_name
    else:
        url, name = _storage_url(target), study_name
    storage = optuna.storages.get_storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if name is None:
        if len(names) != 1:
            listed = ", ".join(names) or "none"
            raise StudyNotFound(f"{target} holds {len(names)} studies ({listed}); choose one "
                                f"with --study NAME")
        name = names[0]
    if name not in names:
        listed = ", ".join(names) or "none"
        raise StudyNotFound(f"{target}: no study named {name!r} (it holds: {listed}); run "
                            f"`deploytune tune` first or check the name")
    return optuna.load_study(study_name=name, storage=storage), spec


def report_dir_of(target: str, study: optuna.Study, spec: Spec | None) -> Path:
    """Where ``deploytune show --report`` writes: the spec's report folder, else
    ``<study>-report`` next to the SQLite file, else in the current folder."""
    if spec is not None:
        return spec.report_dir
    from deploytune.spec.model import report_dir_for

    return report_dir_for(_storage_url(target), study.study_name, Path.cwd())
