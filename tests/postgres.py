"""A throwaway PostgreSQL server for the multi-worker tests: a real ``postgres`` process on a
private Unix socket, in a temporary folder, stopped and removed at the end of the session.

The server binaries come from the machine (Debian's ``postgresql`` package, which
``scripts/ensure-postgres`` installs in CI). PostgreSQL refuses to run as root, so as root the
cluster is owned by and run as the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["postgres_server"]

PORT = 55432
"""The port number in the socket's name; the server listens on no TCP port."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) were not found: install "
                       "Debian's 'postgresql' package (scripts/ensure-postgres does)")


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server; yields its SQLAlchemy URL (database ``postgres``)."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="dt-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    env = {**os.environ, "LC_ALL": "C"}
    try:
        subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                  "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, env=env)
        options = (f"-k {sock} -p {PORT} -c listen_addresses='' -c fsync=off "
                   f"-c max_connections=500")
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                                  "-l", str(root / "log"), "-w", "start"]),
                       check=True, capture_output=True, env=env)
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}&port={PORT}"
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "-w", "stop"]), capture_output=True, env=env)
        shutil.rmtree(root, ignore_errors=True)
