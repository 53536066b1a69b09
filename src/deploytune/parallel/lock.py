"""A lock per study, shared by every worker process of the study, on any host.

Held while a worker reads the study, decides whether another trial may start, asks the sampler
and writes the new trial's configuration (and while a study is created), so that no two
workers do this at once. It is not held while a trial is evaluated.

- PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) on a key derived from the
  study name, held by a connection of its own; the server releases it when the connection
  ends, a killed worker's included.
- SQLite and journal files: an exclusive ``flock`` on ``<file>.study-lock`` beside the file
  (``<file>.lock`` is the journal's own lock); the kernel releases it when the process ends.
  These storages are for workers on one machine.
- In memory (or a storage object): a lock within this process only.

Other storages (MySQL, ...) get the in-process lock only (:attr:`StudyLock.across_processes`
says so): several processes on one such study are not coordinated.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["StudyLock", "file_of", "shared_across_processes"]

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def file_of(storage: str) -> Path | None:
    """The file of an SQLite (``sqlite:///path``) or journal (``journal:///path``) storage URL;
    ``None`` for other URLs and in-memory databases."""
    m = re.match(r"^(sqlite|journal):///(?P<path>[^?]+)", storage, re.IGNORECASE)
    if m is None or m["path"] in ("", ":memory:"):
        return None
    return Path(m["path"])


def shared_across_processes(storage: str) -> bool:
    """Whether several processes can share a study in ``storage`` (PostgreSQL, or an SQLite or
    journal file), so that its lock coordinates them and not only the threads of one."""
    return file_of(storage) is not None or _is_postgres(storage)


def _is_postgres(storage: str) -> bool:
    return re.match(r"^postgres(ql)?(\+\w+)?://", storage, re.IGNORECASE) is not None


def _advisory_key(study_name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``: deploytune's tag and the name's CRC."""
    return (0x6474 << 32) | zlib.crc32(study_name.encode())


class StudyLock:
    """The lock of study ``study_name`` in ``storage`` (see the module docstring).

    ``with lock.held(): ...``; not re-entrant, and on a file storage one lock is held at a
    time per process (every study of the file shares its lock file). One object may be held
    many times, one after the other; its PostgreSQL connection is kept between uses.

    Args:
        storage: The storage URL, or ``None`` / a storage object (a lock within this process).
        study_name: The study's name.
    """

    def __init__(self, storage: str | Any | None, study_name: str) -> None:
        self.study_name = study_name
        self.url = storage if isinstance(storage, str) else None
        if storage is None:  # a study in memory of its own: nobody else can reach it
            self._thread_lock = threading.Lock()
        else:
            key = f"{self.url or id(storage)}::{study_name}"
            with _PROCESS_LOCKS_GUARD:
                self._thread_lock = _PROCESS_LOCKS.setdefault(key, threading.Lock())
        self._file: Path | None = None
        self._engine: Any = None
        self._conn: Any = None
        if self.url is None:
            return
        path = file_of(self.url)
        if path is not None:
            self._file = path.with_name(path.name + ".study-lock")

    @property
    def across_processes(self) -> bool:
        """Whether the lock coordinates processes (:func:`shared_across_processes`)."""
        return self.url is not None and shared_across_processes(self.url)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block."""
        with self._thread_lock:
            if self._file is not None:
                with self._flock():
                    yield
            elif self.url is not None and _is_postgres(self.url):
                with self._advisory():
                    yield
            else:
                yield

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        assert self._file is not None
        try:
            fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            # a read-only folder: no worker can write the study there either, and the
            # storage's own error says so in one line
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def _advisory(self) -> Iterator[None]:
        from sqlalchemy import text

        conn = self._connection()
        key = _advisory_key(self.study_name)
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except Exception:  # the connection broke: the server released the lock with it
                self.close()

    def _connection(self) -> Any:
        if self._conn is None:
            assert self.url is not None
            import sqlalchemy
            from sqlalchemy.pool import NullPool

            self._engine = sqlalchemy.create_engine(self.url, poolclass=NullPool)
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def close(self) -> None:
        """Close the PostgreSQL connection, if any (the lock must not be held)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
