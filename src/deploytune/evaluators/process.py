"""The child-process runner shared by the isolated evaluators.

:func:`run_child` starts one child process per trial and watches it until it is gone:

* the child is started as a :class:`~deploytune.evaluators.process_group.ProcessGroup`: from an
  argv list (never a shell), as the leader of its own process group; processes are never
  looked up or killed by name;
* stdout, stderr and an optional message pipe are read continuously (one :mod:`selectors` loop,
  :func:`os.read` in chunks), so the child never blocks on a full pipe, and only a bounded tail
  of each stream is kept (:class:`~deploytune.evaluators.pipe_stream.PipeStream`): a child
  printing gigabytes costs neither memory nor disk;
* a wall-clock limit stops the trial with the process group's one stop policy (``SIGTERM``, a
  short grace, then ``SIGKILL``), driven by the loop so that the pipes are read meanwhile;
* a callback raising :class:`~deploytune.evaluators.base.AbortTrial` kills the trial and ends
  the run as aborted; any other exception (``KeyboardInterrupt`` included) kills it and
  propagates.

Commands run under the **supervisor** (:mod:`deploytune.evaluators._supervisor`, started by the
argv of :func:`~deploytune.evaluators.launcher.launcher_argv`), which owns every process of the
trial and exits like the command, so the runner classifies the command's end exactly as if it
had run it directly. A runner never signals the process group of a supervised child while the
supervisor lives (a ``SIGKILL`` would take the supervisor first): the process group object
sends its requests to the supervisor. A child started without the supervisor (any other argv)
is stopped through its process group.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from collections.abc import Mapping, Sequence

from deploytune.evaluators._supervisor import OWNER_ENV, REQUEST_KILL, owner_token
from deploytune.evaluators.base import AbortTrial
from deploytune.evaluators.child_run import ChildRun, signal_description
from deploytune.evaluators.launcher import (
    LAUNCHER_SRC,
    is_supervised,
    launcher_argv,
    memory_limit_bytes,
)
from deploytune.evaluators.pipe_stream import DEFAULT_LOG_TAIL_BYTES, LineCallback, PipeStream
from deploytune.evaluators.process_group import TERM_GRACE_S, ProcessGroup, kill_group

__all__ = [
    "DEFAULT_LOG_TAIL_BYTES",
    "LAUNCHER_SRC",
    "OWNER_ENV",
    "REQUEST_KILL",
    "TERM_GRACE_S",
    "ChildRun",
    "ChildStartError",
    "LineCallback",
    "is_supervised",
    "kill_group",
    "launcher_argv",
    "memory_limit_bytes",
    "run_child",
    "signal_description",
]

DRAIN_S = 1.0
"""Seconds the runner keeps reading the pipes after the child exited and its group was killed
(a process that left the group, e.g. with ``setsid``, may still hold them open)."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The longest protocol message (one JSON line on the message pipe) the runner accepts."""

_READ_CHUNK = 64 * 1024
_POLL_S = 0.02  # how often the exit of the child is polled where pidfd_open is missing


class ChildStartError(Exception):
    """The child process could not be started (its program or working directory is missing,
    ...); the :class:`OSError` is the ``__cause__``."""


class _Runner:
    """The state of one :func:`run_child` call."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None,
                 cwd: str | os.PathLike[str] | None, timeout_s: float | None,
                 stdin_data: bytes | None, message_pipe: tuple[int, int] | None,
                 on_stdout_line: LineCallback | None, on_message: LineCallback | None,
                 log_tail_bytes: int, term_grace_s: float, linger_s: float | None,
                 supervised: bool | None):
        self.argv = [str(a) for a in argv]
        self.supervised = is_supervised(self.argv) if supervised is None else supervised
        self.env = env
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.stdin_data = stdin_data
        self.message_pipe = message_pipe
        self.term_grace_s = term_grace_s
        self.linger_s = linger_s
        self.stdout = PipeStream("stdout", log_tail_bytes, on_stdout_line, log_tail_bytes)
        self.stderr = PipeStream("stderr", log_tail_bytes)
        self.messages = (PipeStream("messages", 0, on_message, MAX_MESSAGE_BYTES)
                         if message_pipe is not None else None)
        self.timed_out = False
        self.aborted: str | None = None
        self.killed_after_final = False
        self.exited = False
        self.final_at: float | None = None
        self.reaped_at: float | None = None
        self._sel: selectors.BaseSelector | None = None
        self._pidfd = -1

    # ---------------------------------------------------------------------------- main loop
    def run(self) -> ChildRun:
        start = time.monotonic()
        group = self._start()
        self.group = group
        sel = selectors.DefaultSelector()
        try:
            self._register(sel)
            self._loop(sel, self._pidfd >= 0, start)
        finally:
            if group.proc.returncode is None:  # an exception (KeyboardInterrupt, a bug) got here
                group.stop(0.0)
            self._close(sel)
        return ChildRun(
            argv=self.argv, pid=group.pid, returncode=group.proc.returncode,
            timed_out=self.timed_out, timeout_s=self.timeout_s, aborted=self.aborted,
            killed=group.stopping, killed_after_final=self.killed_after_final,
            final_message=self.final_at is not None,
            stdout=bytes(self.stdout.tail), stderr=bytes(self.stderr.tail),
            stdout_bytes=self.stdout.total, stderr_bytes=self.stderr.total,
            cost_s=(self.reaped_at or time.monotonic()) - start)

    def _start(self) -> ProcessGroup:
        """Start the child; the runner keeps only the read end of the message pipe."""
        env = None if self.env is None else {**os.environ, **self.env}
        if self.supervised:  # in the initial environment, so even a fork-only child has it
            token = owner_token(os.getpid())
            if token is not None:
                env = {**(os.environ if env is None else env), OWNER_ENV: token}
        pass_fds = (self.message_pipe[1],) if self.message_pipe is not None else ()
        try:
            return ProcessGroup.start(
                self.argv, supervised=self.supervised, env=env, cwd=self.cwd,
                stdin=subprocess.PIPE if self.stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds, bufsize=0)
        except BaseException as exc:
            if self.message_pipe is not None:
                os.close(self.message_pipe[0])
            if isinstance(exc, OSError):
                raise ChildStartError(f"cannot start {self.argv[0]!r}"
                                      f"{f' in {os.fspath(self.cwd)!r}' if self.cwd else ''}: "
                                      f"{exc}") from exc
            raise
        finally:
            if self.message_pipe is not None:
                os.close(self.message_pipe[1])  # the child holds the write end now

    def _register(self, sel: selectors.BaseSelector) -> None:
        """Watch the child's pipes and, through a pidfd where there is one, its exit."""
        proc = self.group.proc
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, self.stdout)
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ, self.stderr)
        if self.messages is not None and self.message_pipe is not None:
            sel.register(self.message_pipe[0], selectors.EVENT_READ, self.messages)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
        self._sel = sel
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self._pidfd = os.pidfd_open(proc.pid)
                sel.register(self._pidfd, selectors.EVENT_READ, "exit")

    def _close(self, sel: selectors.BaseSelector) -> None:
        """Close the selector, the pidfd and every pipe of the child."""
        sel.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)
        proc = self.group.proc
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self.message_pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self.message_pipe[0])

    def _loop(self, sel: selectors.BaseSelector, has_pidfd: bool, start: float) -> None:
        deadline = start + self.timeout_s if self.timeout_s is not None else None
        drain_until = 0.0
        stdin_view = memoryview(self.stdin_data or b"")
        stdin_pos = 0
        while True:
            now = time.monotonic()
            if self.exited:
                if now >= drain_until or not sel.get_map():
                    return
                wake: float | None = drain_until
            elif not has_pidfd and self.group.has_exited():
                drain_until = self._on_exit()
                continue
            else:
                wake = self._enforce(now, deadline)
            timeout = None if wake is None else max(0.0, wake - now)
            if not has_pidfd and not self.exited:
                timeout = _POLL_S if timeout is None else min(timeout, _POLL_S)
            for key, _ in sel.select(timeout):
                if key.data == "exit":
                    drain_until = self._on_exit()
                elif key.data == "stdin":
                    stdin_pos = self._write_stdin(sel, key.fd, stdin_view, stdin_pos)
                else:
                    self._read(sel, key.fd, key.data)

    def _enforce(self, now: float, deadline: float | None) -> float | None:
        """Apply the time limits to the running child; return when to look again."""
        group = self.group
        if group.stopping:
            return group.advance_stop(now)  # SIGKILL once the grace after SIGTERM is over
        if self.final_at is not None:
            # The result is in: give the child linger_s to exit (a non-daemon thread or an
            # atexit handler may hang it), then kill it without counting a timeout.
            end = self.final_at + self.linger_s if self.linger_s is not None else None
            if deadline is not None:
                end = deadline if end is None else min(end, deadline)
            if end is not None and now >= end:
                self.killed_after_final = True
                return group.request_stop(0.0)
            return end
        if deadline is None or now < deadline:
            return deadline
        if group.has_exited():
            return now  # it exited just in time: let the loop pick that up
        self.timed_out = True
        return group.request_stop(self.term_grace_s, now)

    # ------------------------------------------------------------------------------ helpers
    def _on_exit(self) -> float:
        """The child exited: kill what it left in its group, reap it, start draining."""
        self.exited = True
        if self._sel is not None and self._pidfd >= 0 and self._pidfd in self._sel.get_map():
            self._sel.unregister(self._pidfd)
        self.group.reap_exited()
        self.reaped_at = time.monotonic()
        return self.reaped_at + DRAIN_S

    def _write_stdin(self, sel: selectors.BaseSelector, fd: int, view: memoryview,
                     pos: int) -> int:
        try:
            pos += os.write(fd, view[pos:pos + _READ_CHUNK])
        except BlockingIOError:
            return pos
        except OSError:  # the child closed stdin or died: it will not read the rest
            pos = len(view)
        if pos >= len(view):
            sel.unregister(fd)
            stdin = self.group.proc.stdin
            assert stdin is not None
            with contextlib.suppress(OSError):
                stdin.close()
        return pos

    def _read(self, sel: selectors.BaseSelector, fd: int, stream: PipeStream) -> None:
        try:
            data = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        try:
            if data:
                stream.feed(data)
            else:
                sel.unregister(fd)
                stream.finish()
        except AbortTrial as exc:
            self.aborted = exc.reason
            for s in (self.stdout, self.stderr, self.messages):
                if s is not None:
                    s.on_line = None
            if not self.exited:
                self.group.request_stop(0.0)
        if stream.final_seen and self.final_at is None:
            self.final_at = time.monotonic()


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout_s: float | None = None,
    stdin_data: bytes | None = None,
    message_pipe: tuple[int, int] | None = None,
    on_stdout_line: LineCallback | None = None,
    on_message: LineCallback | None = None,
    log_tail_bytes: int = DEFAULT_LOG_TAIL_BYTES,
    term_grace_s: float = TERM_GRACE_S,
    linger_s: float | None = None,
    supervised: bool | None = None,
) -> ChildRun:
    """Run one child process to its end, enforcing the time limit; see the module docstring.

    Args:
        argv: The command, as a list (never run through a shell).
        env: Variables added to (or overriding) this process's environment.
        cwd: The child's working directory.
        timeout_s: Wall-clock limit; on expiry the whole process group is killed.
        stdin_data: Bytes written to the child's stdin, which is then closed; ``None``
            connects stdin to ``/dev/null``.
        message_pipe: ``(read_fd, write_fd)`` of an :func:`os.pipe`; the write end is passed
            to the child (same fd number) and both ends are closed by the runner.
        on_stdout_line: Called with each stdout line (truncated at ``log_tail_bytes``).
        on_message: Called with each line of the message pipe; a true return marks the final
            message, after which the child gets ``linger_s`` to exit before it is killed.
        log_tail_bytes: How many bytes of the end of stdout and of stderr to keep, each.
        term_grace_s: Seconds between ``SIGTERM`` and ``SIGKILL`` on a timeout (0: kill at
            once). Aborts and interrupts always use ``SIGKILL``.
        linger_s: See ``on_message``; ``None`` waits for the exit (up to the time limit).
        supervised: Whether the child is a supervisor
            (:class:`~deploytune.evaluators._supervisor.Supervisor`), which gets the stop
            requests instead of its process group; ``None``: whether ``argv`` was made by
            :func:`launcher_argv`.

    Returns:
        What happened, as a :class:`ChildRun`.

    Raises:
        ChildStartError: The child could not be started (``argv[0]`` or ``cwd`` missing).
        BaseException: Whatever a callback raised, except :class:`AbortTrial`, after the
            process group was killed and reaped.
    """
    return _Runner(argv, env=env, cwd=cwd, timeout_s=timeout_s, stdin_data=stdin_data,
                   message_pipe=message_pipe, on_stdout_line=on_stdout_line,
                   on_message=on_message, log_tail_bytes=log_tail_bytes,
                   term_grace_s=term_grace_s, linger_s=linger_s,
                   supervised=supervised).run()
