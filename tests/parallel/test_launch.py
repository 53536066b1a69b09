"""``fork_workers``: forked worker processes, their output and their exit statuses."""

from __future__ import annotations

import os
import signal

from deploytune.parallel.launch import fork_workers


def test_each_worker_runs_its_entry_and_its_lines_come_back_prefixed() -> None:
    lines: list[str] = []

    def entry(index: int) -> int:
        print(f"hello from {index}")
        return 3 if index == 1 else 0

    codes = fork_workers(entry, 2, lines.append)
    assert codes == [0, 3]
    assert sorted(lines) == ["[worker 1] hello from 0", "[worker 2] hello from 1"]


def test_a_worker_killed_by_a_signal_reports_it() -> None:
    def entry(index: int) -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return 0

    assert fork_workers(entry, 1, lambda line: None) == [-signal.SIGKILL]


def test_an_exception_in_a_worker_is_its_failure_not_the_callers() -> None:
    lines: list[str] = []

    def entry(index: int) -> int:
        raise RuntimeError("boom")

    codes = fork_workers(entry, 1, lines.append)
    assert codes == [1] and any("RuntimeError: boom" in line for line in lines)
