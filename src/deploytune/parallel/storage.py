"""Opening a study's storage from its URL, safely when several workers start at once.

- ``sqlite:///file.db``, ``postgresql://...`` (and other SQLAlchemy URLs): Optuna's
  ``RDBStorage``. A fresh database's tables are created under the study lock
  (:mod:`deploytune.parallel.lock`), so workers that start together do not race on them.
  PostgreSQL's driver ships in an extra: ``pip install 'deploytune[postgres]'`` (psycopg 3).
- ``journal:///file.log``: Optuna's ``JournalStorage`` on a file (workers on one machine, or
  on a file system with working ``flock``).
"""

from __future__ import annotations

import re
from typing import Any, overload

import optuna

from deploytune.parallel.lock import StudyLock, file_of

__all__ = ["StorageDriverMissing", "open_storage", "warm_storage"]

_SCHEMA_LOCK = "__deploytune_schema__"


class StorageDriverMissing(ValueError):
    """The database driver of a storage URL is not installed."""


def _driver_missing(url: str, exc: BaseException) -> StorageDriverMissing | None:
    missing: BaseException | None = exc
    while missing is not None and not isinstance(missing, ModuleNotFoundError):
        missing = missing.__cause__ or missing.__context__
    if missing is None:
        return None
    name = missing.name
    scheme = url.split("://", 1)[0]
    if scheme.lower() in ("postgresql", "postgres", "postgresql+psycopg"):
        fix = "pip install 'deploytune[postgres]' (psycopg 3)"
    else:
        fix = f"install the Python module {name!r}"
    return StorageDriverMissing(f"storage: the database driver for {scheme}:// is not "
                                f"installed (no module {name!r}); {fix}")


@overload
def open_storage(storage: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage: ...


@overload
def open_storage(storage: None) -> None: ...


@overload
def open_storage(storage: str | optuna.storages.BaseStorage | None
                 ) -> optuna.storages.BaseStorage | None: ...


def open_storage(storage: str | optuna.storages.BaseStorage | None
                 ) -> optuna.storages.BaseStorage | None:
    """The Optuna storage of ``storage`` (``None``: in memory; a storage object as it is).

    Raises:
        StorageDriverMissing: The URL's database driver is not installed.
    """
    if storage is None or not isinstance(storage, str):
        return storage
    if re.match(r"^journal:", storage, re.IGNORECASE):
        path = file_of(storage)
        if path is None:
            raise ValueError(f"storage: a journal storage is journal:///path/to/file.log "
                             f"(got {storage!r})")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    lock = StudyLock(storage, _SCHEMA_LOCK)
    try:
        with lock.held():
            return optuna.storages.RDBStorage(storage, engine_kwargs=_engine_kwargs(storage))
    except ImportError as exc:
        missing = _driver_missing(storage, exc)
        if missing is None:
            raise
        raise missing from exc
    finally:
        lock.close()


def warm_storage(storage: str) -> None:
    """Open ``storage`` once in this process and close its connections again: its schema is
    created and its driver and Optuna's schema-version modules are imported, so worker
    processes forked afterwards (:func:`deploytune.parallel.launch.fork_workers`) only connect.

    Raises:
        StorageDriverMissing: The URL's database driver is not installed.
    """
    opened = open_storage(storage)
    if isinstance(opened, optuna.storages.RDBStorage):
        opened.engine.dispose()


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.lower().startswith("sqlite"):
        return {}
    return {"pool_pre_ping": True}  # a server restarted between trials: reconnect
