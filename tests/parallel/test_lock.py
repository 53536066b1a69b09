"""The study lock across real processes: PostgreSQL advisory locks and file locks."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from deploytune.parallel.lock import StudyLock, file_of


def _bump(storage: str, counter: str, times: int) -> None:
    lock = StudyLock(storage, "s")
    path = Path(counter)
    for _ in range(times):
        with lock.held():  # read, pause, write: updates are lost without the lock
            n = int(path.read_text())
            path.write_text(str(n + 1))
    lock.close()


def _run_bumpers(storage: str, tmp_path: Path, workers: int = 4, times: int = 40) -> int:
    counter = tmp_path / "counter"
    counter.write_text("0")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(storage, str(counter), times))
             for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return int(counter.read_text())


@pytest.mark.slow
def test_file_lock_serialises_processes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert _run_bumpers(storage, tmp_path) == 160
    assert (tmp_path / "study.db.study-lock").exists()


@pytest.mark.slow
def test_postgres_advisory_lock_serialises_processes(postgres_url: str,
                                                     tmp_path: Path) -> None:
    assert _run_bumpers(postgres_url, tmp_path) == 160


def test_file_of() -> None:
    assert file_of("sqlite:////a/b.db") == Path("/a/b.db")
    assert file_of("journal:////a/j.log") == Path("/a/j.log")
    assert file_of("sqlite:///:memory:") is None
    assert file_of("postgresql://u@h/db") is None


def test_which_locks_coordinate_processes(postgres_url: str) -> None:
    assert StudyLock(postgres_url, "s").across_processes
    assert StudyLock("sqlite:////tmp/x.db", "s").across_processes
    assert StudyLock("journal:////tmp/x.log", "s").across_processes
    assert not StudyLock("mysql+pymysql://u@h/db", "s").across_processes
    assert not StudyLock(None, "s").across_processes
