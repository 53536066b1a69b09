"""``deploytune tune SPEC --workers N``: N worker processes on this machine, one study.

The workers are forked from this process once it has imported what tuning needs (Optuna,
NumPy, the sampler's models), so they start in milliseconds instead of each starting an
interpreter and importing it all again (about 1.5 s each, one after the other on a machine with
fewer cores than workers). Each runs what ``deploytune worker SPEC --study NAME`` runs, the
command a user starts on another machine to join the study. Their output lines reach the caller
prefixed with the worker's number. Ctrl-C reaches the workers through the terminal (one process
group); a SIGTERM to this process is passed on to them. Each records its running trial as
interrupted, so the study resumes as a single tuner's would.

Nothing the workers need may be open in this process when they are forked: this process holds no
study lock, no running trial and no thread while they start, and it collects its unreferenced
storage objects first so that no child inherits a database connection still in use.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

__all__ = ["STOP_GRACE_S", "fork_workers"]

STOP_GRACE_S = 30.0
"""Seconds workers get to record their running trials after a stop, before they are killed."""
_SELF_STOP_S = 5.0


class _Terminated(Exception):
    """This process got SIGTERM."""


def _child(entry: Callable[[int], int], index: int, out_fd: int) -> None:
    """Worker ``index``'s body: its stdout and stderr go to ``out_fd``, its exit status is
    ``entry(index)``."""
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    # new streams on the pipe, line-buffered, whatever sys.stdout was (a test's capture, ...)
    sys.stdout = open(1, "w", buffering=1, errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, errors="replace", closefd=False)  # noqa: SIM115
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(entry(index))


def _relay(index: int, stream: IO[str], say: Callable[[str], None]) -> None:
    with stream:
        for line in stream:
            say(f"[worker {index}] {line.rstrip()}")


def _wait_all(procs: Sequence[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))


def _stop(procs: Sequence[Any], signalled: bool) -> None:
    """Stop the workers: those the terminal's Ctrl-C reached (``signalled``) stop by
    themselves; the rest get SIGTERM; any still running after the grace is killed."""
    if signalled:
        _wait_all(procs, _SELF_STOP_S)
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    _wait_all(procs, STOP_GRACE_S)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()


def fork_workers(entry: Callable[[int], int], workers: int,
                 say: Callable[[str], None]) -> list[int]:
    """Fork ``workers`` processes; worker ``i`` (from 0) runs ``entry(i)``, whose return value
    is its exit status. Relay their output lines to ``say``, prefixed ``[worker i+1]``, and
    wait for them; their exit statuses
    (minus the signal number for one killed by a signal).

    Call it with no study lock held and no other thread running (see the module docstring).

    Raises:
        KeyboardInterrupt: After every worker stopped (Ctrl-C, or SIGTERM to this process).
    """
    context = multiprocessing.get_context("fork")
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()  # close unreferenced database connections here, not in a child
    procs, outputs = [], []
    for i in range(workers):
        read_fd, write_fd = os.pipe()
        proc = context.Process(target=_child, args=(entry, i, write_fd),
                               name=f"deploytune-worker-{i + 1}", daemon=False)
        proc.start()
        os.close(write_fd)
        procs.append(proc)
        outputs.append(os.fdopen(read_fd, "r", errors="replace"))
    relays = [threading.Thread(target=_relay, args=(i + 1, out, say), daemon=True)
              for i, out in enumerate(outputs)]
    for r in relays:
        r.start()

    def on_term(signum: int, frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for p in procs:
            p.join()
    except (KeyboardInterrupt, _Terminated) as exc:
        _stop(procs, signalled=isinstance(exc, KeyboardInterrupt))
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        for r in relays:
            r.join(5)
    return [p.exitcode if p.exitcode is not None else 1 for p in procs]
