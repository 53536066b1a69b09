"""Running a spec file end to end: the engine behind ``deploytune tune`` and ``show``.

:func:`tune_spec` opens (or resumes) the spec's study, runs :func:`deploytune.optimize` with the
spec's evaluator, budget, sampler and rules under a live progress line, and writes the report.
:func:`open_study` finds an existing study from a spec file, an SQLite file or a storage URL,
opening an SQLite file read-only.

Which study a spec uses (``--fresh`` and its family of studies): :mod:`deploytune.study_choice`.

Storage faults (disk full, read-only or damaged database, unknown URL scheme, unreachable
server, missing driver) surface as :class:`StorageError`, whose message is one line naming the
storage and the cause (:mod:`deploytune.storage_faults`); what the storage already holds is
left as it was.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import optuna
from rich.console import Console
from rich.text import Text

from deploytune.history import ATTR_FRESH_OF
from deploytune.parallel.storage import open_storage
from deploytune.result import Result
from deploytune.storage_faults import (
    StorageError,
    describe_storage_failure,
    first_line,
    sqlite_path,
    storage_text,
)
from deploytune.study_choice import (
    StudyMismatch,
    StudyNotFound,
    resume_hint,
    select_study,
    spec_study_name,
    validated_study,
)
from deploytune.tuner import optimize
from deploytune.validation import Validation

if TYPE_CHECKING:
    from deploytune.spec import Spec

__all__ = [
    "ATTR_FRESH_OF",
    "StorageError",
    "StudyMismatch",
    "StudyNotFound",
    "describe_storage_failure",
    "open_study",
    "report_dir_of",
    "safe_file_name",
    "storage_text",
    "tune_spec",
]

_MAX_FILE_NAME = 100


# ------------------------------------------------------------------------------ file names


def safe_file_name(name: str) -> str:
    """A study name turned into one safe file-name component.

    Path separators (``/``, ``\\``), control characters and the characters Windows forbids
    (``:*?"<>|``) become ``_``; runs of dots become one ``_``, so ``..`` never survives; a
    leading dot or space is replaced and trailing spaces dropped; the result has at most 100
    characters and is never empty. Any other name (``digits``, ``résumé v2``) comes back
    unchanged.

    Args:
        name: A study name, possibly read from someone else's database.

    Returns:
        The file-name component.
    """
    text = re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|]', "_", name)
    text = re.sub(r"\.{2,}", "_", text)
    text = re.sub(r"^[. ]", "_", text).rstrip(" ")[:_MAX_FILE_NAME]
    return text or "study"


def _report_dir(storage: str, study_name: str, fallback: Path) -> Path:
    """The report folder of the study ``study_name`` stored in ``storage``."""
    from deploytune.spec.model import report_dir_for

    return report_dir_for(storage, safe_file_name(study_name), fallback)


# ------------------------------------------------------------------------------- storage faults


@contextmanager
def _storage_faults(storage: str, suffix: str = "", *, read_only: bool = False) -> Iterator[None]:
    """Turn a storage fault raised inside into a :class:`StorageError`."""
    try:
        yield
    except (StudyNotFound, StudyMismatch, StorageError):
        raise
    except Exception as exc:
        message = describe_storage_failure(exc, storage, read_only=read_only)
        if message is None:
            raise
        db = sqlite_path(storage)
        gone = db is not None and not db.exists()  # nothing kept to resume from
        raise StorageError(message + ("" if gone else suffix)) from exc


# ------------------------------------------------------------------------------ running a spec


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


def _evaluations_text(result: Result) -> str:
    """``"12 evaluations"``, and ``" (+ 3 finalists' re-runs)"`` when there were some."""
    final = sum(t.validation for t in result.trials)
    text = f"{len(result.trials) - final} evaluations"
    return text + (f" (+ {final} finalists' re-run{'s' if final != 1 else ''})" if final else "")


def _previous_result(spec: Spec, name: str) -> Result | None:
    """The study's result before this run, or ``None`` for a new study."""
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(spec.storage))
    except KeyError:
        return None
    return Result.from_study(study, spec.objective, spec.constraints)


def _budget_and_validation(spec: Spec, previous: Result | None, validate: Validation | None,
                           worker: bool) -> tuple[int | None, Validation]:
    """The budget and re-runs of this run: the spec's; only the finalists' re-runs of a study
    whose search is over (``validate``); or the search without them (a ``worker``)."""
    if validate is not None:
        assert previous is not None
        return sum(not t.validation for t in previous.trials), validate
    if worker:
        return spec.budget_trials, dataclasses.replace(spec.validation, finalists=0)
    return spec.budget_trials, spec.validation


def tune_spec(spec: Spec, *, console: Console, live: bool = True, report: bool = True,
              fresh: bool = False, validate: Validation | None = None,
              study_name: str | None = None, worker: bool = False) -> Result:
    """Run (or resume) the study of ``spec`` to its budget and write its report; or, with
    ``validate``, only re-run the finalists of the existing study (``deploytune validate``).

    Args:
        spec: The validated spec.
        console: Where progress and messages go (values from the spec are never read as
            markup).
        live: A live progress line; ``False`` prints one plain line per trial.
        report: Write ``report.html`` and the figures (a failure to write them is a one-line
            warning; the result is returned all the same).
        fresh: Start a new study ``<name>-N`` in the same storage instead of resuming; the
            existing studies are kept as they are.
        validate: Re-run the finalists of the existing study as these settings say, and
            nothing else: no new configuration, whatever the spec's budget (a study written
            by plain Optuna code works too, see :func:`validated_study`).
        study_name: The study to run or validate (default: the spec's, as ``fresh`` says).
        worker: One of several workers on the study (``deploytune worker``): the search
            only; the finalists' re-runs are left to ``deploytune tune``.

    Raises:
        KeyboardInterrupt: On Ctrl-C or SIGTERM, after the running trial was recorded as
            interrupted; running the same spec again resumes.
        StudyMismatch: When the storage holds the spec's study with a different problem
            (a ``ValueError``; nothing was changed).
        StorageError: When the storage cannot be opened, read or written (what it holds is
            kept; run the same spec again once the cause is fixed).
    """
    from deploytune.progress import TuneProgress
    from deploytune.samplers import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    resume = (f"; the trials recorded so far are kept: once fixed, `{resume_hint(spec)}` "
              f"resumes")
    with _storage_faults(spec.storage):
        if validate is not None:
            name = validated_study(spec, study_name)
        else:
            name = study_name or select_study(spec, fresh, console)
        previous = _previous_result(spec, name)
    budget, validation = _budget_and_validation(spec, previous, validate, worker)
    _say_which_study(console, name, previous, spec.study_name != name and not fresh)
    sampler = make_sampler(spec.sampler, space=spec.space, seed=spec.seed,
                           budget=spec.budget_trials, **spec.sampler_options)
    evaluator = spec.build_evaluator()
    console.print(Text(f"evaluator: {evaluator.describe()}"), soft_wrap=True)
    progress = TuneProgress(spec.objective, spec.budget_trials, previous, console, live)
    try:
        with _storage_faults(spec.storage, resume), _sigterm_as_interrupt(), progress:
            try:
                result = optimize(
                    evaluator, spec.space, objective=spec.objective.metric,
                    direction=spec.objective.direction, constraints=spec.constraints,
                    budget=budget, sampler=sampler, seed=spec.seed,
                    storage=spec.storage, study_name=name, callbacks=[progress.on_trial],
                    time_budget_s=spec.budget_seconds if validate is None else None,
                    retries=spec.retries, rules=spec.rules, early_abort=spec.early_abort,
                    pruner=spec.build_pruner(), on_trial_start=progress.on_start,
                    confidence=spec.confidence, validation=validation,
                    resources=spec.resources)
            except ValueError as exc:
                if progress.started:
                    raise
                # the tuner refused the study before any trial (a problem we did not foresee)
                raise StudyMismatch(
                    f"{exc} (storage {storage_text(spec.storage)}); run "
                    f"`{resume_hint(spec)} --fresh` to start a new study next to it") from exc
    finally:
        evaluator.close()
    if report and result.study is not None:
        _write_report_or_warn(result.study, _report_dir(spec.storage, name, spec.base_dir),
                              console, spec=spec.to_dict(),
                              again=f"deploytune show {spec.source} --report")
    return result


def _say_which_study(console: Console, name: str, previous: Result | None,
                     fresh_before: bool) -> None:
    """Say that the run resumes ``name`` (with what it holds), or that ``name`` is a study a
    ``--fresh`` run started earlier."""
    if previous is not None and previous.trials:
        console.print(Text.assemble("resuming study ", (name, "bold"),
                                    f": {_evaluations_text(previous)} recorded"),
                      soft_wrap=True)
    elif fresh_before:
        console.print(Text(f"study {name} (started with --fresh)"), soft_wrap=True)


def _write_report_or_warn(study: optuna.Study, folder: Path, console: Console, *,
                          spec: dict[str, Any] | None, again: str) -> None:
    """Write the report, or print one warning line saying why not (the study is untouched)."""
    from deploytune.analysis.report import write_report

    try:
        path = write_report(study, folder, spec=spec)
    except Exception as exc:  # a report must never cost the summary of a finished run
        console.print(Text(f"warning: the report was not written to {folder} "
                           f"({report_failure(exc)}); the study is intact: `{again}` "
                           f"tries again", style="yellow"), soft_wrap=True)
        return
    console.print(Text(f"report: {path}"), soft_wrap=True)


def report_failure(exc: BaseException) -> str:
    """``"<ExceptionType>: <first line>"`` of a failure to write a report or a figure."""
    return f"{type(exc).__name__}: {first_line(str(exc))}"


# ------------------------------------------------------------------------- opening a study


def _storage_url(target: str) -> str:
    if "://" in target:
        return target
    path = Path(target)
    if not path.exists():
        raise StudyNotFound(f"{target}: no such file; give a spec file (.yaml), an SQLite "
                            f"file (.db) or a storage URL such as sqlite:///study.db")
    return f"sqlite:///{path.resolve()}"


def _read_only_storage(url: str, target: str) -> optuna.storages.BaseStorage:
    """The storage at ``url``, opened without writing: an SQLite file read-only, no tables
    created anywhere (Optuna creates missing tables when it opens a storage)."""
    from urllib.parse import quote

    if url.lower().startswith("journal:"):
        return open_storage(url)  # a journal is read by replaying it: nothing is written
    db = sqlite_path(url)
    engine_kwargs: dict[str, Any] = {}
    if db is not None:
        if not db.exists():
            raise StudyNotFound(f"{target}: its storage {db} does not exist yet; run "
                                f"`deploytune tune` first or check the path")
        uri = f"file:{quote(str(db.resolve()))}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, check_same_thread=False)

        engine_kwargs["creator"] = connect
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                      skip_table_creation=True)


def open_study(target: str, study_name: str | None = None) -> tuple[optuna.Study, Spec | None]:
    """Load the study behind ``target``: a spec file, an SQLite file or a storage URL.

    Nothing is written: an SQLite file is opened read-only (a read-only file works), and no
    table is created in any storage. For a spec file, the spec's study is the newest one of
    its family (see the module docstring) whose problem matches the spec.

    Returns:
        The study, and the spec when ``target`` is a spec file.

    Raises:
        StudyNotFound: With the list of the studies the storage holds.
        StorageError: When the storage cannot be opened or read.
        deploytune.spec.SpecError: When ``target`` is a spec file with a mistake.
    """
    spec: Spec | None = None
    name: str | None
    if target.endswith((".yaml", ".yml")) and "://" not in target:
        from deploytune.spec import load_spec

        spec = load_spec(target, check_evaluator=False)
        url, name = spec.storage, study_name
    else:
        url, name = _storage_url(target), study_name
    with _storage_faults(url, read_only=True):
        storage = _read_only_storage(url, target)
        studies = storage.get_all_studies()
        names = [s.study_name for s in studies]
        if name is None and spec is not None:
            name = spec_study_name(studies, spec)
        if name is None:
            if len(names) != 1:
                listed = ", ".join(names) or "none"
                raise StudyNotFound(f"{target} holds {len(names)} studies ({listed}); choose "
                                    f"one with --study NAME")
            name = names[0]
        if name not in names:
            listed = ", ".join(names) or "none"
            raise StudyNotFound(f"{target}: no study named {name!r} (it holds: {listed}); run "
                                f"`deploytune tune` first or check the name")
        return optuna.load_study(study_name=name, storage=storage), spec


def read_study(target: str, study_name: str | None,
               read: Callable[[optuna.Study], Any]) -> tuple[optuna.Study, Spec | None, Any]:
    """:func:`open_study`, then ``read(study)`` with storage faults as :class:`StorageError`.

    Returns:
        The study, the spec (or ``None``) and what ``read`` returned.
    """
    study, spec = open_study(target, study_name)
    url = spec.storage if spec is not None else _storage_url(target)
    with _storage_faults(url, read_only=True):
        return study, spec, read(study)


def report_dir_of(target: str, study: optuna.Study, spec: Spec | None) -> Path:
    """Where ``deploytune show --report`` writes: ``<study>-report`` next to the SQLite file
    (the spec's storage, else the ``.db`` given), else in the spec's folder or the current one.

    The study name is made a safe file name first (:func:`safe_file_name`): a name read from a
    database never leads outside that folder.
    """
    if spec is not None:
        return _report_dir(spec.storage, study.study_name, spec.base_dir)
    return _report_dir(_storage_url(target), study.study_name, Path.cwd())
