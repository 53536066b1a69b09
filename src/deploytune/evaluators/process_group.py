"""One child process in a process group of its own, and the one policy that stops it.

Every evaluator that starts a child process does it through :class:`ProcessGroup`: the child is
started with :class:`subprocess.Popen` from an argv list (never a shell) as the leader of a new
process group (``process_group=0``), and it is stopped by one policy, the same for every
evaluator: ``SIGTERM`` to every process of the child, a grace period, then ``SIGKILL`` to all of
them, and the child is reaped. A zero grace is the immediate kill (an abort, a breached limit,
an interrupt): the same stop, without the ``SIGTERM``.

The stop can be waited for (:meth:`ProcessGroup.stop`) or driven by a loop that keeps doing
other work meanwhile, such as reading the child's pipes (:meth:`ProcessGroup.request_stop`, then
:meth:`ProcessGroup.advance_stop` until the child exits).

Who receives the signals depends on the child:

* a **supervised** child (:func:`~deploytune.evaluators.launcher.launcher_argv`, or the
  isolated evaluator's child) is a supervisor that owns every process of the trial, whatever
  group or session they moved to: it gets the requests (``SIGTERM``, which it sends on to every
  process; :data:`~deploytune.evaluators._supervisor.REQUEST_KILL` for ``SIGKILL``), never a
  ``SIGKILL`` to its group while it lives (that would take the supervisor first);
* any other child gets the signals on its process group (:func:`os.killpg`).

Processes are never looked up or killed by name, and nothing is signalled by pid once the child
has been reaped (the pid may name another process by then).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from typing import IO, Any

from deploytune.evaluators._supervisor import KILL_WAIT_S, REQUEST_KILL

__all__ = [
    "REAP_WAIT_S",
    "TERM_GRACE_S",
    "PipeSpec",
    "ProcessGroup",
    "kill_group",
    "process_group_members",
]

TERM_GRACE_S = 1.0
"""The default seconds between ``SIGTERM`` and ``SIGKILL`` when a child is stopped."""

REAP_WAIT_S = 5.0 + KILL_WAIT_S
"""How long a stop waits for the child to exit after ``SIGKILL`` (a supervisor keeps killing
and reaping its trial for up to :data:`~deploytune.evaluators._supervisor.KILL_WAIT_S`) before
it kills the child's whole group, the supervisor included."""

_LAST_WAIT_S = 5.0  # how long a stop waits for the child after killing its whole group

PipeSpec = int | IO[Any] | None
"""What :meth:`ProcessGroup.start` takes for stdin, stdout and stderr (as :class:`Popen`)."""


def kill_group(pgid: int, sig: int) -> None:
    """Signal a process group; a group that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def process_group_members(pgid: int) -> list[int]:
    """The pids of the live (not zombie) processes of process group ``pgid`` (Linux ``/proc``)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        names = os.listdir("/proc")
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
                out.append(int(name))
    return out


class ProcessGroup:
    """A child process started as the leader of its own process group, and its stop.

    Args:
        proc: The child, started as the leader of a new process group (use :meth:`start`).
        supervised: Whether the child is a supervisor, which gets the stop requests instead of
            its process group (see the module docstring).

    Attributes:
        proc: The child process.
        supervised: Whether the child is a supervisor.
        stopping: A stop was requested while the child ran (:meth:`request_stop`).
    """

    def __init__(self, proc: subprocess.Popen[bytes], *, supervised: bool):
        self.proc = proc
        self.supervised = supervised
        self.stopping = False
        self._kill_at: float | None = None

    @classmethod
    def start(cls, argv: Sequence[str], *, supervised: bool,
              env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike[str] | None = None, stdin: PipeSpec = None,
              stdout: PipeSpec = None, stderr: PipeSpec = None, pass_fds: Collection[int] = (),
              bufsize: int = -1) -> ProcessGroup:
        """Start ``argv`` (a list, never a shell) as the leader of a new process group.

        ``env`` is the child's whole environment (``None``: this process's); ``stdin``,
        ``stdout``, ``stderr``, ``pass_fds`` and ``bufsize`` are as for :class:`Popen`.

        Raises:
            OSError: The program or the working directory cannot be found or executed.
        """
        proc = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr,
                                env=env, cwd=cwd, process_group=0, pass_fds=tuple(pass_fds),
                                bufsize=bufsize)
        return cls(proc, supervised=supervised)

    @property
    def pid(self) -> int:
        """The child's pid, which is also its process group id."""
        return self.proc.pid

    # ------------------------------------------------------------------------------ signals
    def signal(self, sig: int) -> None:
        """``SIGTERM`` or ``SIGKILL`` to every process of the child: through its supervisor,
        or to its process group. Nothing is sent once the child has been reaped."""
        if self.proc.returncode is not None:
            return
        if not self.supervised:
            kill_group(self.pid, sig)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, REQUEST_KILL if sig == signal.SIGKILL else sig)

    def kill_group(self) -> None:
        """``SIGKILL`` to the child's whole process group, a supervisor included: the last
        resort, and what clears a group whose leader is gone. The group id cannot have been
        reused while the leader is unreaped or a member of the group lives."""
        kill_group(self.pid, signal.SIGKILL)

    def members(self) -> list[int]:
        """The pids of the live processes still in the child's process group."""
        return process_group_members(self.pid)

    # ------------------------------------------------------------------------------ exiting
    def has_exited(self) -> bool:
        """Whether the child has exited, without reaping it (its pid keeps the group id)."""
        if self.proc.returncode is not None:
            return True
        if hasattr(os, "waitid"):
            try:
                return os.waitid(os.P_PID, self.pid,
                                 os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:
                return True
        return self.proc.poll() is not None

    def reap_exited(self) -> int:
        """The child has exited: ``SIGKILL`` what it left in its group, then reap it.

        The unreaped child still holds its pid, so the group id cannot have been reused. A
        supervisor has ended every process of its trial before it exited; the group is killed
        all the same, in case the supervisor itself was killed. Returns the return code."""
        if self.proc.returncode is None:
            self.kill_group()
        return self.proc.wait()

    # ---------------------------------------------------------------------------- the stop
    def request_stop(self, grace_s: float, now: float | None = None) -> float | None:
        """Begin the stop without waiting: ``SIGTERM`` now and ``SIGKILL`` due ``grace_s``
        seconds later, or ``SIGKILL`` now when ``grace_s`` is 0.

        Returns when :meth:`advance_stop` must be called to send the due ``SIGKILL``
        (:func:`time.monotonic` time), or ``None`` when nothing is due."""
        self.stopping = True
        if grace_s > 0:
            self.signal(signal.SIGTERM)
            self._kill_at = (time.monotonic() if now is None else now) + grace_s
            return self._kill_at
        self._kill_at = None
        self.signal(signal.SIGKILL)
        return None

    def advance_stop(self, now: float | None = None) -> float | None:
        """Send the ``SIGKILL`` of a requested stop once its grace is over; returns when to
        call again (``None``: nothing is due)."""
        if self._kill_at is None:
            return None
        if (time.monotonic() if now is None else now) < self._kill_at:
            return self._kill_at
        self._kill_at = None
        self.signal(signal.SIGKILL)
        return None

    def stop(self, grace_s: float) -> bool:
        """Stop the child and wait until it is reaped: ``SIGTERM``, up to ``grace_s`` seconds
        for it to exit, ``SIGKILL``; a child that is still there :data:`REAP_WAIT_S` later
        gets its whole group killed. A child already reaped is left alone.

        Returns whether the child had exited before a ``SIGKILL`` was due (always ``False``
        for a running child with ``grace_s`` 0).
        """
        if self.proc.returncode is not None:
            return True
        exited = False
        if grace_s > 0:
            self.request_stop(grace_s)
            try:
                self.proc.wait(grace_s)
                exited = True
            except subprocess.TimeoutExpired:
                pass
        self.request_stop(0.0)  # nothing is sent to a child reaped by now
        try:
            self.proc.wait(REAP_WAIT_S)
        except subprocess.TimeoutExpired:  # a supervisor that does not answer: its group
            self.kill_group()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(_LAST_WAIT_S)
        return exited
