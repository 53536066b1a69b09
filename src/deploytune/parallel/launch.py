"""``deploytune tune SPEC --workers N``: N worker processes on this machine, one study.

Each worker is ``deploytune worker SPEC --study NAME`` (an argv list, never shell text), the
same command a user starts on another machine to join the study. Their output lines reach
the caller prefixed with the worker's number. Ctrl-C reaches the workers through the terminal
(one process group); a SIGTERM to this process is passed on to them. Each records its running
trial as interrupted, so the study resumes as a single tuner's would.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

__all__ = ["STOP_GRACE_S", "run_local_workers", "worker_argv"]

STOP_GRACE_S = 30.0
"""Seconds workers get to record their running trials after a stop, before they are killed."""
_SELF_STOP_S = 5.0


def worker_argv(spec_file: Path, study_name: str) -> list[str]:
    """The command of one worker of ``study_name``."""
    return [sys.executable, "-m", "deploytune.cli", "worker", str(spec_file),
            "--study", study_name, "--plain"]


def _relay(index: int, proc: subprocess.Popen[str], say: Callable[[str], None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        say(f"[worker {index}] {line.rstrip()}")


class _Terminated(Exception):
    """This process got SIGTERM."""


def _wait_all(procs: Sequence[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.0, deadline - time.monotonic()))


def _stop(procs: Sequence[subprocess.Popen[str]], signalled: bool) -> None:
    """Stop the workers: those the terminal's Ctrl-C reached (``signalled``) stop by
    themselves; the rest get SIGTERM; any still running after the grace is killed."""
    if signalled:
        _wait_all(procs, _SELF_STOP_S)
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    _wait_all(procs, STOP_GRACE_S)
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def run_local_workers(spec_file: Path, study_name: str, workers: int,
                      say: Callable[[str], None]) -> list[int]:
    """Run ``workers`` worker processes on ``study_name`` until they finish; their exit
    statuses.

    Raises:
        KeyboardInterrupt: After every worker stopped (Ctrl-C, or SIGTERM to this process).
    """
    argv = worker_argv(spec_file, study_name)
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") for _ in range(workers)]
    relays = [threading.Thread(target=_relay, args=(i + 1, p, say), daemon=True)
              for i, p in enumerate(procs)]
    for r in relays:
        r.start()

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for p in procs:
            p.wait()
    except (KeyboardInterrupt, _Terminated) as exc:
        _stop(procs, signalled=isinstance(exc, KeyboardInterrupt))
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        for r in relays:
            r.join(5)
    return [p.returncode for p in procs]
