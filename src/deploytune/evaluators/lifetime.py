"""Which processes belong to a trial, and ending those a killed tuner left behind.

Every command of a trial runs under its supervisor (:mod:`deploytune.evaluators._supervisor`,
started by :func:`~deploytune.evaluators.launcher.launcher_argv`), a child subreaper: the
trial's processes are the supervisor's descendants (:func:`trial_processes`), and it ends them
all when the trial ends or the tuner dies. As a fallback for a supervisor that was itself
killed (a ``SIGKILL`` to it, the OOM killer), every command carries the environment variable
:data:`OWNER_ENV` = ``"PID:START"`` of the tuner that started it, which its own children
inherit: :func:`kill_leftovers` finds the processes of a tuner that is gone by that mark and
ends them. The tuner's identity is the one recorded on each running trial (``dt.worker``:
host, pid, start), so resuming a study can clean up after the tuner that was killed::

    from deploytune.evaluators.lifetime import kill_leftovers
    from deploytune.history import ATTR_WORKER

    for trial in stale_trials:  # RUNNING trials of a dead tuner on this host
        kill_leftovers(trial.user_attrs.get(ATTR_WORKER))

Linux only (``/proc``); elsewhere the functions find nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from deploytune.evaluators._supervisor import (
    OWNER_ENV,
    descendants,
    owner_token,
    process_table,
    read_stat,
    signal_all,
)

__all__ = [
    "LEFTOVER_GRACE_S",
    "OWNER_ENV",
    "kill_leftovers",
    "marked_processes",
    "trial_processes",
]

LEFTOVER_GRACE_S = 2.0
"""Seconds between ``SIGTERM`` and ``SIGKILL`` in :func:`kill_leftovers`."""

_POLL_S = 0.05


def trial_processes(supervisor_pid: int) -> list[int]:
    """The pids of the live processes of the trial supervised by ``supervisor_pid`` (its
    descendants, wherever they moved: other process groups, new sessions), parents first;
    the supervisor itself is not included."""
    return [pid for pid, _ in descendants(supervisor_pid)]


def _environ_value(pid: int, name: bytes) -> bytes | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return None
    for item in data.split(b"\0"):
        if item.startswith(name):
            return item[len(name):]
    return None


def marked_processes(token: str | None = None) -> list[tuple[int, int, str]]:
    """Live processes whose environment carries :data:`OWNER_ENV`, as ``(pid, start time,
    owner token)``; only those of ``token`` (``"PID:START"``) when given. This process is
    never included."""
    name = f"{OWNER_ENV}=".encode()
    me = os.getpid()
    out: list[tuple[int, int, str]] = []
    for pid, (state, _, start) in process_table().items():
        if pid == me or state in ("Z", "X"):
            continue
        value = _environ_value(pid, name)
        if value is None:
            continue
        owner = value.decode("ascii", "replace")
        if token is None or owner == token:
            out.append((pid, start, owner))
    return out


def _owner_alive(token: str) -> bool:
    pid, _, _ = token.partition(":")
    return pid.isdigit() and owner_token(int(pid)) == token


def _alive(process: tuple[int, int]) -> bool:
    stat = read_stat(process[0])
    return stat is not None and stat[2] == process[1] and stat[0] not in ("Z", "X")


def kill_leftovers(worker: Mapping[str, Any] | None = None, *,
                   grace_s: float = LEFTOVER_GRACE_S) -> list[int]:
    """End the processes left behind by a tuner that is gone; returns their pids.

    Args:
        worker: The tuner's identity as recorded on its trials (``{"host", "pid", "start"}``,
            see :func:`deploytune.recovery.worker_identity`): only its processes are ended,
            and only if it is on this host and no longer running. ``None``: the processes of
            every tuner of this host that is gone.
        grace_s: Seconds between ``SIGTERM`` and ``SIGKILL``.

    A process is found by the :data:`OWNER_ENV` mark of its environment and signalled only
    while its pid still names the process that was found. Processes of a running tuner are
    never touched (its supervisors own them).
    """
    token: str | None = None
    if worker is not None:
        from deploytune.recovery import host_name  # $DEPLOYTUNE_HOST or the host name

        host, pid, start = worker.get("host"), worker.get("pid"), worker.get("start")
        if host not in (None, host_name()) or not isinstance(pid, int) \
                or isinstance(pid, bool) or start is None:
            return []
        token = f"{pid}:{start}"
        if _owner_alive(token):
            return []
    found = [(pid, start) for pid, start, owner in marked_processes(token)
             if token is not None or not _owner_alive(owner)]
    if not found:
        return []
    signal_all(found, signal.SIGTERM)
    deadline = time.monotonic() + max(0.0, grace_s)
    left = [p for p in found if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        left = [p for p in left if _alive(p)]
    if left:
        signal_all(left, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while left and time.monotonic() < deadline:
            time.sleep(_POLL_S)
            left = [p for p in left if _alive(p)]
    return [pid for pid, _ in found]
