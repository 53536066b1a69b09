"""Running a spec file end to end: the engine behind ``deploytune tune`` and ``show``.

:func:`tune_spec` opens (or resumes) the spec's study, runs :func:`deploytune.optimize` with the
spec's evaluator, budget, sampler and rules under a live progress line, and writes the report.
:func:`open_study` finds an existing study from a spec file, an SQLite file or a storage URL,
opening an SQLite file read-only.

Which study a spec uses: its ``study`` name, unless ``deploytune tune --fresh`` started a new
study next to it. ``--fresh`` never deletes or renames anything: it creates ``<name>-2`` (then
``-3``, ...) in the same storage and marks it with the study attribute ``dt.fresh_of``; from
then on the spec resumes the newest study of that family whose problem (objective, direction,
constraints, space) matches the spec.

Storage faults (disk full, read-only or damaged database, unknown URL scheme, unreachable
server, missing driver) surface as :class:`StorageError`, whose message is one line naming the
storage and the cause; what the storage already holds is left as it was.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import optuna
from rich.console import Console
from rich.text import Text

from deploytune.history import ATTR_FRESH_OF, ATTR_SETUP
from deploytune.problem import claimable, difference, setup_of
from deploytune.tuner import Result, optimize
from deploytune.validation import Validation

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy

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


class StudyNotFound(Exception):
    """The study named on the command line does not exist (the message says what does)."""


class StudyMismatch(ValueError):
    """The storage holds the spec's study with a different problem definition.

    The message names the study, the storage and what differs, and offers ``--fresh``.
    """


class StorageError(Exception):
    """The study's storage cannot be opened, read or written.

    The message is one line: the storage (passwords hidden), the cause and what to do.
    """


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
    from deploytune.spec.model import report_dir_for

    return report_dir_for(storage, safe_file_name(study_name), fallback)


# ------------------------------------------------------------------------------- storage faults


def storage_text(url: str) -> str:
    """The storage URL as shown to the user: the password of ``scheme://user:pw@host`` hidden."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


_HINTS: list[tuple[str, str]] = [
    ("disk is full", "free disk space, then run the same command again"),
    ("no space left", "free disk space, then run the same command again"),
    ("file too large", "free disk space or raise the file size limit, then run again"),
    ("readonly database", "make the database file and its folder writable"),
    ("read-only", "make the database file and its folder writable"),
    ("not a database", "the file is damaged or not a database: restore it from a backup or "
                       "point `storage` at another file"),
    ("malformed", "the file is damaged: restore it from a backup or point `storage` at "
                  "another file"),
    ("no such table", "the database has no Optuna tables (deleted, replaced or not an Optuna "
                      "storage?): restore it or point `storage` at another file"),
    ("unable to open database", "check that the file and its folder exist and are accessible"),
    ("disk i/o error", "check the disk (free space, errors) and that the file was not deleted "
                       "or moved"),
    ("database is locked", "another process holds the database; wait and run again"),
    ("connection refused", "check that the database server is running and the host and port"),
    ("could not connect", "check that the database server is running and the host and port"),
    ("could not translate host", "check the host name in the storage URL"),
    ("timeout", "check that the database server is reachable"),
    ("password authentication", "check the user name and password"),
    ("table schema", "run `optuna storage upgrade --storage URL`, or use the Optuna version "
                     "that wrote it"),
]


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= 300 else line[:299] + "…"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


_DRIVERS = {"psycopg2": "psycopg2-binary", "psycopg": "'psycopg[binary]'",
            "MySQLdb": "mysqlclient", "pymysql": "pymysql"}
"""pip packages of the database drivers SQLAlchemy imports."""


def _cause(exc: BaseException) -> str | None:
    """The storage cause in ``exc``'s chain as one phrase, or ``None`` when it is none."""
    import sqlalchemy.exc as sa_exc

    chain = _chain(exc)
    missing = next((e.name for e in chain if isinstance(e, ModuleNotFoundError) and e.name),
                   None)
    if any(isinstance(e, ImportError) and "DB access module" in str(e) for e in chain) or (
            missing is not None and missing.partition(".")[0] in _DRIVERS):
        if missing:
            return (f"its database driver is not installed (no module named {missing!r}); "
                    f"pip install {_DRIVERS.get(missing.partition('.')[0], missing)}")
        return "its database driver is not installed; pip install the driver for it"
    for e in chain:
        if isinstance(e, sa_exc.NoSuchModuleError):
            scheme = str(e).rsplit(":", 1)[-1].strip()
            return (f"unknown storage scheme {scheme!r}; use sqlite:///file.db, "
                    f"postgresql://user@host/db or mysql://user@host/db")
        if isinstance(e, sa_exc.ArgumentError):
            return (f"not a storage URL ({_first_line(str(e))}); use sqlite:///file.db or "
                    f"postgresql://user@host/db")
        if isinstance(e, sa_exc.DBAPIError) and e.orig is not None:
            return _first_line(str(e.orig)) or type(e.orig).__name__
        if isinstance(e, sqlite3.Error):
            return _first_line(str(e)) or type(e).__name__
    for e in chain:
        if isinstance(e, sa_exc.SQLAlchemyError | optuna.exceptions.StorageInternalError):
            return _first_line(str(e).split("(Background on this error")[0])
        if isinstance(e, RuntimeError) and "table schema" in str(e):
            return _first_line(str(e))
    return None


def describe_storage_failure(exc: BaseException, storage: str, *,
                             read_only: bool = False) -> str | None:
    """One line naming ``storage`` and the cause, when ``exc`` is a storage fault.

    Args:
        exc: An exception raised while opening, reading or writing the storage.
        storage: The storage URL.
        read_only: The storage was opened read-only (``show``, ``importance``): a write it
            refused means the storage is incomplete, not that it should be made writable.

    Returns:
        ``"storage <url>: <cause>; <what to do>"``, or ``None`` when ``exc`` is no storage fault.
    """
    cause = _cause(exc)
    if cause is None:
        return None
    db = _sqlite_path(storage)
    if db is not None and not db.exists():
        return (f"storage {storage_text(storage)}: the database file no longer exists (deleted "
                f"or moved while in use; {cause}); put it back and run the same command again")
    if read_only and "readonly database" in cause:
        return (f"storage {storage_text(storage)}: not a complete Optuna storage (reading it "
                f"would need a write: tables or version records are missing); restore it, or "
                f"let `deploytune tune` or Optuna open it once with write access")
    low = cause.lower()
    hint = next((h for key, h in _HINTS if key in low and h not in low), None)
    return f"storage {storage_text(storage)}: {cause}" + (f"; {hint}" if hint else "")


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
        db = _sqlite_path(storage)
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


def _family(studies: Sequence[FrozenStudy], name: str) -> list[FrozenStudy]:
    """The study ``name`` and those ``--fresh`` started next to it, oldest first."""
    return sorted((s for s in studies if s.study_name == name
                   or s.user_attrs.get(ATTR_FRESH_OF) == name), key=lambda s: s._study_id)


def _choose(family: Sequence[FrozenStudy], setup: dict[str, Any]) -> FrozenStudy | None:
    """The newest study of ``family`` whose problem matches ``setup`` (or is not recorded)."""
    return next((s for s in reversed(family)
                 if difference(s.user_attrs.get(ATTR_SETUP), setup) is None), None)


def _spec_study_name(studies: Sequence[FrozenStudy], spec: Spec) -> str:
    """The study a spec reads: the newest of its family whose problem matches the spec, else
    the newest of its family, else the spec's own name."""
    family = _family(studies, spec.study_name)
    chosen = _choose(family, setup_of(spec.objective, spec.constraints, spec.space)) or (
        family[-1] if family else None)
    return chosen.study_name if chosen is not None else spec.study_name


def _fresh_name(names: Sequence[str], name: str) -> str:
    taken = set(names)
    k = 2
    while f"{name}-{k}" in taken:
        k += 1
    return f"{name}-{k}"


def _validated_study(spec: Spec, study_name: str | None) -> str:
    """The study ``deploytune validate`` re-runs the finalists of: ``study_name``, else the
    spec's (the newest of its family whose problem matches the spec).

    A study written by plain Optuna code (no ``dt.setup``) is accepted when its direction is
    the spec's objective's and the parameters of its finished trials are configurations of the
    spec's space: its trials rank the finalists (their constraint values say which were
    feasible), and the re-runs, which the spec's evaluator measures, give the metrics.

    Raises:
        StudyNotFound: No such study, or it holds no finished trial.
        StudyMismatch: It holds another problem (one line saying which part differs).
    """
    storage = optuna.storages.get_storage(spec.storage)
    studies = {s.study_name: s for s in storage.get_all_studies()}
    where = storage_text(spec.storage)
    if study_name is None:
        study_name = _spec_study_name(list(studies.values()), spec)
    frozen = studies.get(study_name)
    if frozen is None:
        raise StudyNotFound(f"{where}: no study named {study_name!r} to validate (it holds: "
                            f"{', '.join(studies) or 'none'}); run `{_resume_hint(spec)}` first "
                            f"or name one with --study")
    trials = [t for t in storage.get_all_trials(frozen._study_id, deepcopy=False)
              if t.state.is_finished()]
    if not trials:
        raise StudyNotFound(f"study {study_name!r} in {where} has no finished trial: there is "
                            f"nothing to validate; run `{_resume_hint(spec)}` first")
    recorded = frozen.user_attrs.get(ATTR_SETUP)
    setup = setup_of(spec.objective, spec.constraints, spec.space)
    if recorded is not None:
        key = difference(recorded, setup)
        if key is not None:
            raise StudyMismatch(
                f"study {study_name!r} in {where} holds a different {key} "
                f"({_short(recorded.get(key))} vs {_short(setup.get(key))} in the spec); "
                f"validate it with the spec it was "
                f"tuned with; nothing was changed")
        return study_name
    direction = frozen.directions[0].name.lower() if len(frozen.directions) == 1 else "multi"
    if direction != spec.objective.direction:
        raise StudyMismatch(
            f"study {study_name!r} in {where} was created by plain Optuna code to {direction} "
            f"and the spec's objective is to {spec.objective.direction} "
            f"{spec.objective.metric}; give a spec with the study's direction; nothing was "
            f"changed")
    for t in trials:
        if t.params and not spec.space.is_valid(dict(t.params)):
            raise StudyMismatch(
                f"study {study_name!r} in {where}: trial {t.number}'s parameters "
                f"{_short(dict(t.params))} are not a configuration of the spec's space "
                f"({', '.join(p.name for p in spec.space)}); validate needs the space the "
                f"study was tuned in; nothing was changed")
    return study_name


def _evaluations_text(result: Result) -> str:
    """``"12 evaluations"``, and ``" (+ 3 finalists' re-runs)"`` when there were some."""
    final = sum(t.validation for t in result.trials)
    text = f"{len(result.trials) - final} evaluations"
    return text + (f" (+ {final} finalists' re-run{'s' if final != 1 else ''})" if final else "")


def _resume_hint(spec: Spec) -> str:
    return f"deploytune tune {spec.source}"


def _select_study(spec: Spec, fresh: bool, console: Console) -> str:
    """The name of the study this run tunes, creating a ``--fresh`` one when asked."""
    storage = optuna.storages.get_storage(spec.storage)
    studies = storage.get_all_studies()
    family = _family(studies, spec.study_name)
    setup = setup_of(spec.objective, spec.constraints, spec.space)
    where = storage_text(spec.storage)
    if not family:
        return spec.study_name
    if fresh:
        new = _fresh_name([s.study_name for s in studies], spec.study_name)
        study = optuna.create_study(study_name=new, storage=storage,
                                    direction=spec.objective.direction)  # type: ignore[arg-type]
        study.set_user_attr(ATTR_FRESH_OF, spec.study_name)
        kept = ", ".join(s.study_name for s in family)
        console.print(Text(f"starting the fresh study {new} in {where}; kept as they were: "
                           f"{kept} (`{_resume_hint(spec)}` resumes {new} from now on)"),
                      soft_wrap=True)
        return new
    chosen = _choose(family, setup)
    if chosen is not None:
        return chosen.study_name
    newest = family[-1]
    recorded = newest.user_attrs.get(ATTR_SETUP)
    if claimable(recorded, setup, storage.get_all_trials(newest._study_id, deepcopy=False)):
        return newest.study_name  # the tuner lets a corrected objective claim it
    key = difference(recorded, setup) or "problem"
    existing = (recorded or {}).get(key)
    raise StudyMismatch(
        f"study {newest.study_name!r} in {where} already holds trials of a different {key} "
        f"({_short(existing)} vs {_short(setup.get(key))} in the spec); run "
        f"`{_resume_hint(spec)} --fresh` to start a new study next to it (the old one is "
        f"kept), or change `study` or `storage` in the spec; nothing was changed")


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _previous_result(spec: Spec, name: str) -> Result | None:
    """The study's result before this run, or ``None`` for a new study."""
    try:
        study = optuna.load_study(study_name=name, storage=spec.storage)
    except KeyError:
        return None
    return Result.from_study(study, spec.objective, spec.constraints)


def tune_spec(spec: Spec, *, console: Console, live: bool = True, report: bool = True,
              fresh: bool = False, validate: Validation | None = None,
              study_name: str | None = None) -> Result:
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
            by plain Optuna code works too, see :func:`_validated_study`).
        study_name: With ``validate``: the study to validate (default: the spec's).

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
    resume = (f"; the trials recorded so far are kept: once fixed, `{_resume_hint(spec)}` "
              f"resumes")
    with _storage_faults(spec.storage):
        if validate is None:
            name = _select_study(spec, fresh, console)
        else:
            name = _validated_study(spec, study_name)
        previous = _previous_result(spec, name)
    budget, validation = spec.budget_trials, spec.validation
    if validate is not None:
        assert previous is not None
        budget = sum(not t.validation for t in previous.trials)
        validation = validate
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
                    confidence=spec.confidence, validation=validation)
            except ValueError as exc:
                if progress.started:
                    raise
                # the tuner refused the study before any trial (a problem we did not foresee)
                raise StudyMismatch(
                    f"{exc} (storage {storage_text(spec.storage)}); run "
                    f"`{_resume_hint(spec)} --fresh` to start a new study next to it") from exc
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
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


# ------------------------------------------------------------------------- opening a study


def _storage_url(target: str) -> str:
    if "://" in target:
        return target
    path = Path(target)
    if not path.exists():
        raise StudyNotFound(f"{target}: no such file; give a spec file (.yaml), an SQLite "
                            f"file (.db) or a storage URL such as sqlite:///study.db")
    return f"sqlite:///{path.resolve()}"


def _sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (``None``: another kind, in memory, a URI)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:") or \
            parsed.query.get("uri"):
        return None
    return Path(parsed.database)


def _read_only_storage(url: str, target: str) -> optuna.storages.BaseStorage:
    """The storage at ``url``, opened without writing: an SQLite file read-only, no tables
    created anywhere (Optuna creates missing tables when it opens a storage)."""
    from urllib.parse import quote

    db = _sqlite_path(url)
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
            name = _spec_study_name(studies, spec)
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
