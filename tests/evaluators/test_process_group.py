"""Tests of the process-group object and its one stop policy, with real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploytune.evaluators.launcher import launcher_argv
from deploytune.evaluators.process_group import ProcessGroup
from tests.evaluators.targets import group_alive, pid_alive, wait_dead

SCRIPTS = Path(__file__).parent / "scripts"
PY = sys.executable

# Forks a child and a grandchild (each appends its pid to argv[1]); with argv[2] == "setsid"
# the grandchild leaves the process group for a session of its own. Everything sleeps.
TREE = """
import os, sys, time
def note():
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{os.getpid()}\\n".encode())
    os.close(fd)
if os.fork() == 0:
    if os.fork() == 0:
        if sys.argv[2] == "setsid":
            os.setsid()
        note()
    else:
        note()
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""

# Exits with code 0 on SIGTERM; says when the handler is in place.
POLITE = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
          "print('ready', flush=True); time.sleep(30)")


def _started(argv: list[str], *, supervised: bool) -> ProcessGroup:
    """Start ``argv`` and wait for its first line on stdout (it is ready for signals)."""
    group = ProcessGroup.start(argv, supervised=supervised, stdout=subprocess.PIPE)
    assert group.proc.stdout is not None
    assert group.proc.stdout.readline()
    return group


def _pids(path: Path, n: int, timeout_s: float = 5.0) -> list[int]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= n:
            return [int(x) for x in lines]
        time.sleep(0.02)
    raise AssertionError(f"{path} holds fewer than {n} pids")


@pytest.mark.parametrize("supervised", [False, True])
def test_child_ignoring_sigterm_is_killed_after_the_grace(supervised: bool) -> None:
    argv = [PY, str(SCRIPTS / "ignore_term.py")]
    group = _started(launcher_argv(argv) if supervised else argv, supervised=supervised)
    t0 = time.monotonic()
    exited = group.stop(0.5)
    took = time.monotonic() - t0
    assert not exited
    assert group.proc.returncode == -signal.SIGKILL
    assert 0.5 <= took < 5.0
    assert group_alive(group.pid) == []
    assert group.stopping


def test_child_that_ends_on_sigterm_ends_within_the_grace() -> None:
    group = _started([PY, "-c", POLITE], supervised=False)
    t0 = time.monotonic()
    assert group.stop(5.0)
    assert time.monotonic() - t0 < 3.0
    assert group.proc.returncode == 0


def test_zero_grace_kills_at_once_without_sigterm() -> None:
    group = _started([PY, "-c", POLITE], supervised=False)
    t0 = time.monotonic()
    assert not group.stop(0.0)
    assert time.monotonic() - t0 < 2.0
    assert group.proc.returncode == -signal.SIGKILL  # the SIGTERM handler never ran


@pytest.mark.parametrize(("supervised", "mode"), [(False, "stay"), (True, "stay"),
                                                  (True, "setsid")])
def test_stop_leaves_no_grandchild_behind(tmp_path: Path, supervised: bool, mode: str) -> None:
    pid_file = tmp_path / "pids"
    argv = [PY, "-c", TREE, str(pid_file), mode]
    group = ProcessGroup.start(launcher_argv(argv) if supervised else argv,
                               supervised=supervised)
    descendants = _pids(pid_file, 2)
    assert all(pid_alive(pid) for pid in descendants)
    group.stop(0.5)
    for pid in descendants:
        assert wait_dead(pid), f"process {pid} outlived the stop"
    assert group_alive(group.pid) == []


def test_stop_driven_by_a_loop_sends_sigkill_when_the_grace_is_over() -> None:
    group = _started([PY, str(SCRIPTS / "ignore_term.py")], supervised=False)
    now = time.monotonic()
    kill_at = group.request_stop(0.3, now)
    assert kill_at == pytest.approx(now + 0.3)
    assert group.advance_stop(now) == kill_at  # not due yet: nothing sent
    time.sleep(0.2)
    assert not group.has_exited()  # SIGTERM is ignored
    assert group.advance_stop(kill_at) is None  # due: SIGKILL
    assert group.proc.wait(5.0) == -signal.SIGKILL
    assert group.advance_stop() is None


def test_reap_exited_clears_what_the_leader_left_in_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    group = ProcessGroup.start([PY, str(SCRIPTS / "fork_child.py"), str(pid_file)],
                               supervised=False, stdout=subprocess.DEVNULL)
    end = time.monotonic() + 10.0
    while not group.has_exited():
        assert time.monotonic() < end
        time.sleep(0.02)
    assert group.proc.returncode is None  # has_exited does not reap
    orphan = int(pid_file.read_text())
    assert pid_alive(orphan)
    assert group.reap_exited() == 0
    assert wait_dead(orphan)
    assert group.stop(1.0)  # already reaped: nothing to do, nothing sent
