"""Storage faults as one line: what failed, in which storage, and what to do.

Disk full, a read-only or damaged database, an unknown URL scheme, an unreachable server, a
missing driver: :func:`describe_storage_failure` finds the cause in an exception's chain and
names the storage (its password hidden, :func:`storage_text`) and the fix. ``deploytune
tune``, ``show`` and ``validate`` raise it as a :class:`StorageError`
(:mod:`deploytune.tuning`).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import optuna

__all__ = [
    "StorageError",
    "describe_storage_failure",
    "first_line",
    "sqlite_path",
    "storage_text",
]


class StorageError(Exception):
    """The study's storage cannot be opened, read or written.

    The message is one line: the storage (passwords hidden), the cause and what to do.
    """


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


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped, at most 300 characters."""
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
            return (f"not a storage URL ({first_line(str(e))}); use sqlite:///file.db or "
                    f"postgresql://user@host/db")
        if isinstance(e, sa_exc.DBAPIError) and e.orig is not None:
            return first_line(str(e.orig)) or type(e.orig).__name__
        if isinstance(e, sqlite3.Error):
            return first_line(str(e)) or type(e).__name__
    for e in chain:
        if isinstance(e, sa_exc.SQLAlchemyError | optuna.exceptions.StorageInternalError):
            return first_line(str(e).split("(Background on this error")[0])
        if isinstance(e, RuntimeError) and "table schema" in str(e):
            return first_line(str(e))
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
    db = sqlite_path(storage)
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


def sqlite_path(url: str) -> Path | None:
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
