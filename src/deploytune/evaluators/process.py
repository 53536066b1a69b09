"""The child-process runner shared by the isolated evaluators.

:func:`run_child` starts one child process per trial and watches it until it is gone:

* the child is started with :class:`subprocess.Popen` from an argv list (never a shell), as the
  leader of its own process group (``process_group=0``); processes are never looked up or
  killed by name;
* stdout, stderr and an optional message pipe are read continuously (one :mod:`selectors` loop,
  :func:`os.read` in chunks), so the child never blocks on a full pipe, and only a bounded tail
  of each stream is kept: a child printing gigabytes costs neither memory nor disk;
* a wall-clock limit stops the trial (``SIGTERM``, a short grace, then ``SIGKILL``);
* a callback raising :class:`~deploytune.evaluators.base.AbortTrial` kills the trial and ends
  the run as aborted; any other exception (``KeyboardInterrupt`` included) kills it and
  propagates.

Commands run under the **supervisor** (:mod:`deploytune.evaluators._supervisor`, started by the
argv of :func:`launcher_argv`), which owns every process of the trial: it is a child subreaper,
so processes that leave the process group or daemonize (double fork, ``setsid``) stay its
descendants; it forks the command with the memory cap (``RLIMIT_AS``, set in the child, never
with ``preexec_fn``, which is not safe when the parent runs threads) and ``exec``\\ s it; when the
command ends, when the tuner asks (``SIGTERM``, or :data:`REQUEST_KILL` for ``SIGKILL``) or when
the tuner dies (``PR_SET_PDEATHSIG``), it ends every descendant, and it exits *like the
command* (its exit code, or killed by the same signal), so the runner classifies the command's
end exactly as if it had run it directly. A runner never signals the process group of a
supervised child while the supervisor lives (a ``SIGKILL`` would take the supervisor first):
it sends its requests to the supervisor (:func:`stop_supervised`). A child started without the
supervisor (any other argv) is stopped with :func:`os.killpg` on its group, as before.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploytune.evaluators import _supervisor
from deploytune.evaluators._supervisor import OWNER_ENV, REQUEST_KILL, owner_token
from deploytune.evaluators.base import AbortTrial
from deploytune.outcome import CrashKind

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
    "stop_supervised",
]

DEFAULT_LOG_TAIL_BYTES = 64 * 1024
"""How many bytes of the end of stdout and of stderr are kept, each."""

TERM_GRACE_S = 1.0
"""Seconds between ``SIGTERM`` and ``SIGKILL`` to the process group when the time limit hits."""

DRAIN_S = 1.0
"""Seconds the runner keeps reading the pipes after the child exited and its group was killed
(a process that left the group, e.g. with ``setsid``, may still hold them open)."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The longest protocol message (one JSON line on the message pipe) the runner accepts."""

_READ_CHUNK = 64 * 1024
_POLL_S = 0.02  # how often the exit of the child is polled where pidfd_open is missing

_SUPERVISOR_DIR = os.path.dirname(os.path.abspath(_supervisor.__file__))

LAUNCHER_SRC = (f"import sys; sys.path.append({_SUPERVISOR_DIR!r}); import _supervisor; "
                f"_supervisor.main(sys.argv[1:])")
"""Source of the launcher run as ``python -I -S -c LAUNCHER_SRC LIMIT PARENT GRACE -- ARGV...``.

It runs :func:`deploytune.evaluators._supervisor.main` (imported by file, from its cached
bytecode, without importing deploytune), which supervises ``ARGV`` under the memory cap
``LIMIT`` (bytes, 0: none) for the tuner ``PARENT`` (pid), with ``GRACE`` seconds between
``SIGTERM`` and ``SIGKILL`` when it clears what the command left or the tuner died. A command
that cannot be executed exits with code 127 and says why on stderr."""

LineCallback = Callable[[bytes, bool], "bool | None"]
"""Called with each complete line (without its newline) and whether it was truncated. For the
message pipe, a true return marks the final message (see ``linger_s`` of :func:`run_child`)."""


def memory_limit_bytes(memory_mb: float | None) -> int:
    """The address-space cap in bytes for ``memory_mb`` mebibytes; 0 means no cap."""
    if memory_mb is None:
        return 0
    return max(1, int(memory_mb * 1024 * 1024))


def launcher_argv(argv: Sequence[str], memory_bytes: int = 0, *,
                  grace_s: float = TERM_GRACE_S) -> list[str]:
    """Wrap ``argv`` in the supervisor:
    ``[python, -I, -S, -c, LAUNCHER_SRC, limit, tuner pid, grace, --, *argv]``.

    The result must be started by this process (the supervisor's parent is the tuner it
    watches), as the leader of a new process group.

    Args:
        argv: The command to run; ``argv[0]`` is looked up on ``PATH`` like ``execvp`` does.
        memory_bytes: The ``RLIMIT_AS`` cap in bytes, 0 for none.
        grace_s: Seconds between ``SIGTERM`` and ``SIGKILL`` when the supervisor ends what the
            command left running, or everything after the tuner died.
    """
    return [sys.executable, "-I", "-S", "-c", LAUNCHER_SRC, str(int(memory_bytes)),
            str(os.getpid()), f"{max(0.0, float(grace_s)):g}", "--", *argv]


def is_supervised(argv: Sequence[str]) -> bool:
    """Whether ``argv`` was made by :func:`launcher_argv` (the child is a supervisor)."""
    return len(argv) > 9 and argv[3] == "-c" and argv[4] == LAUNCHER_SRC and argv[8] == "--"


def stop_supervised(proc: subprocess.Popen[bytes], *, kill: bool) -> None:
    """Ask the supervisor ``proc`` (started from :func:`launcher_argv`) to stop its trial.

    ``kill=False``: ``SIGTERM`` to every process of the trial (the supervisor waits for the
    command to exit); ``kill=True``: ``SIGKILL`` to all of them at once. Nothing is sent once
    ``proc`` has been reaped (its pid may belong to another process by then).
    """
    with contextlib.suppress(OSError):
        proc.send_signal(REQUEST_KILL if kill else signal.SIGTERM)


def signal_description(signum: int) -> str:
    """``"SIGSEGV (segmentation fault)"`` for 11; ``"signal 77"`` for an unknown number."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
    text = signal.strsignal(signum) if hasattr(signal, "strsignal") else None
    if text:
        return f"{name} ({text.lower()})"
    return name


class ChildStartError(Exception):
    """The child process could not be started (its program or working directory is missing,
    ...); the :class:`OSError` is the ``__cause__``."""


class _Stream:
    """One pipe being read: a byte count, a bounded tail and an optional line splitter."""

    def __init__(self, name: str, tail_limit: int, on_line: LineCallback | None = None,
                 max_line: int = DEFAULT_LOG_TAIL_BYTES):
        self.name = name
        self.total = 0
        self.tail = bytearray()
        self._tail_limit = tail_limit
        self.on_line = on_line
        self._max_line = max(1, max_line)
        self._partial = bytearray()
        self._overflow = False
        self.final_seen = False

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self._tail_limit > 0:
            self.tail += data
            excess = len(self.tail) - self._tail_limit
            if excess > 0:
                del self.tail[:excess]
        if self.on_line is None:
            return
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._add(data[start:])
                return
            self._add(data[start:nl])
            self._emit()
            start = nl + 1

    def finish(self) -> None:
        """Hand the unterminated last line, if any, to the callback (at EOF)."""
        if self.on_line is not None and (self._partial or self._overflow):
            self._emit()

    def _add(self, piece: bytes) -> None:
        if self._overflow or not piece:
            return
        room = self._max_line - len(self._partial)
        if len(piece) > room:
            self._partial += piece[:room]
            self._overflow = True
        else:
            self._partial += piece

    def _emit(self) -> None:
        line, truncated = bytes(self._partial), self._overflow
        self._partial.clear()
        self._overflow = False
        if self.on_line is not None and self.on_line(line, truncated):
            self.final_seen = True


@dataclass
class ChildRun:
    """What the runner saw of one child process.

    Attributes:
        argv: The argv the child was started with.
        pid: The child's pid, which is also its process group id (for a supervised command:
            the supervisor's).
        returncode: As :attr:`subprocess.Popen.returncode`: the exit code, or minus the
            signal number that killed it (a supervisor passes on its command's);
            ``None`` if it could not be reaped.
        timed_out: The wall-clock limit hit and the runner killed the group.
        timeout_s: The limit that applied.
        aborted: The reason, when a callback raised :class:`AbortTrial`.
        killed: The runner signalled the child while it was still running (timeout, abort,
            or after the final message, see ``killed_after_final``).
        killed_after_final: The child did not exit within ``linger_s`` of its final message.
        final_message: A message callback marked a message as final.
        stdout: The last bytes of stdout (at most ``log_tail_bytes``).
        stderr: The last bytes of stderr.
        stdout_bytes: How many bytes the child wrote to stdout in all.
        stderr_bytes: How many bytes it wrote to stderr.
        cost_s: Wall-clock seconds from spawn to reap.
    """

    argv: list[str] = field(repr=False)
    pid: int
    returncode: int | None
    timed_out: bool
    timeout_s: float | None
    aborted: str | None
    killed: bool
    killed_after_final: bool
    final_message: bool
    stdout: bytes = field(repr=False)
    stderr: bytes = field(repr=False)
    stdout_bytes: int
    stderr_bytes: int
    cost_s: float

    @property
    def exit_code(self) -> int | None:
        """The exit code, or ``None`` when the child was killed by a signal."""
        rc = self.returncode
        return rc if rc is not None and rc >= 0 else None

    @property
    def signal_number(self) -> int | None:
        """The number of the signal that killed the child, or ``None``."""
        rc = self.returncode
        return -rc if rc is not None and rc < 0 else None

    def stderr_lines(self, n: int = 5, width: int = 300) -> list[str]:
        """The last ``n`` non-blank lines of stderr, each cut to ``width`` characters."""
        text = self.stderr.decode("utf-8", "replace")
        lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-n:]
        return [ln if len(ln) <= width else ln[:width] + " [...]" for ln in lines]

    def log(self) -> str:
        """The bounded log kept on the trial: a tail of stdout, then a tail of stderr."""
        parts = []
        for name, tail, total in (("stdout", self.stdout, self.stdout_bytes),
                                  ("stderr", self.stderr, self.stderr_bytes)):
            text = tail.decode("utf-8", "replace")
            if total > len(tail):
                parts.append(f"--- {name} (last {len(tail)} of {total} bytes) ---\n[...]{text}")
            else:
                parts.append(f"--- {name} (tail) ---\n{text}")
        return "".join(p if p.endswith("\n") else p + "\n" for p in parts)

    def info(self) -> dict[str, Any]:
        """Facts worth keeping on the trial: pid, exit code or signal, output sizes."""
        sig = self.signal_number
        out: dict[str, Any] = {
            "pid": self.pid,
            "exit_code": self.exit_code,
            "signal": _signal_name(sig) if sig is not None else None,
            "timed_out": self.timed_out,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
        }
        if self.killed_after_final:
            out["killed_after_result"] = True
        return out

    def failure(self) -> tuple[str, CrashKind | None] | None:
        """The error and known crash kind of an abnormal end; ``None`` for exit code 0.

        A timeout is ``timeout``; a signal is ``runtime_error``, except a ``SIGKILL`` the
        runner did not send, which is ``oom`` (the kernel's OOM killer sends it); a non-zero
        exit code leaves the kind to the classification rules. The last lines of stderr are
        appended to the message.
        """
        if self.timed_out:
            limit = f"{self.timeout_s:g} s" if self.timeout_s is not None else "the time limit"
            return f"timed out after {limit} (process group killed)", CrashKind.TIMEOUT
        rc = self.returncode
        kind: CrashKind | None
        if rc is None:
            head, kind = "the process could not be reaped", CrashKind.RUNTIME_ERROR
        elif rc == 0:
            return None
        elif rc > 0:
            head, kind = f"exited with code {rc}", None
        elif -rc == signal.SIGKILL and not self.killed:
            head = ("killed by SIGKILL, not sent by deploytune (most likely the kernel OOM "
                    "killer)")
            kind = CrashKind.OOM
        else:
            head, kind = f"killed by signal {signal_description(-rc)}", CrashKind.RUNTIME_ERROR
        lines = self.stderr_lines()
        return ("\n".join([head, *lines]) if lines else head), kind


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def kill_group(pgid: int, sig: int) -> None:
    """Signal a process group; a group that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


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
        self.stdout = _Stream("stdout", log_tail_bytes, on_stdout_line, log_tail_bytes)
        self.stderr = _Stream("stderr", log_tail_bytes)
        self.messages = (_Stream("messages", 0, on_message, MAX_MESSAGE_BYTES)
                         if message_pipe is not None else None)
        self.timed_out = False
        self.aborted: str | None = None
        self.killed = False
        self.killed_after_final = False
        self.exited = False
        self.final_at: float | None = None
        self.kill_at: float | None = None
        self.reaped_at: float | None = None
        self._sel: selectors.BaseSelector | None = None
        self._pidfd = -1

    # ---------------------------------------------------------------------------- main loop
    def run(self) -> ChildRun:
        env = None if self.env is None else {**os.environ, **self.env}
        if self.supervised:  # in the initial environment, so even a fork-only child has it
            token = owner_token(os.getpid())
            if token is not None:
                env = {**(os.environ if env is None else env), OWNER_ENV: token}
        pass_fds = (self.message_pipe[1],) if self.message_pipe is not None else ()
        start = time.monotonic()
        try:
            proc = subprocess.Popen(  # an argv list, never a shell
                self.argv, stdin=subprocess.PIPE if self.stdin_data is not None
                else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, cwd=self.cwd, process_group=0, pass_fds=pass_fds, bufsize=0)
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
        self.proc = proc
        sel = selectors.DefaultSelector()
        pidfd = -1
        try:
            assert proc.stdout is not None and proc.stderr is not None
            sel.register(proc.stdout.fileno(), selectors.EVENT_READ, self.stdout)
            sel.register(proc.stderr.fileno(), selectors.EVENT_READ, self.stderr)
            if self.messages is not None and self.message_pipe is not None:
                sel.register(self.message_pipe[0], selectors.EVENT_READ, self.messages)
            if proc.stdin is not None:
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
            if hasattr(os, "pidfd_open"):
                with contextlib.suppress(OSError):
                    pidfd = os.pidfd_open(proc.pid)
                    sel.register(pidfd, selectors.EVENT_READ, "exit")
            self._sel, self._pidfd = sel, pidfd
            self._loop(sel, pidfd >= 0, start)
        finally:
            if proc.returncode is None:  # an exception (KeyboardInterrupt, a bug) got here
                self._send(signal.SIGKILL)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # a supervisor that does not answer
                    kill_group(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
            sel.close()
            if pidfd >= 0:
                os.close(pidfd)
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
            if self.message_pipe is not None:
                with contextlib.suppress(OSError):
                    os.close(self.message_pipe[0])
        return ChildRun(
            argv=self.argv, pid=proc.pid, returncode=proc.returncode,
            timed_out=self.timed_out, timeout_s=self.timeout_s, aborted=self.aborted,
            killed=self.killed, killed_after_final=self.killed_after_final,
            final_message=self.final_at is not None,
            stdout=bytes(self.stdout.tail), stderr=bytes(self.stderr.tail),
            stdout_bytes=self.stdout.total, stderr_bytes=self.stderr.total,
            cost_s=(self.reaped_at or time.monotonic()) - start)

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
            elif not has_pidfd and self._leader_exited():
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
        if self.killed:
            if self.kill_at is None:
                return None
            if now < self.kill_at:
                return self.kill_at
            self.kill_at = None
            self._send(signal.SIGKILL)  # the grace after SIGTERM is over
            return None
        if self.final_at is not None:
            # The result is in: give the child linger_s to exit (a non-daemon thread or an
            # atexit handler may hang it), then kill it without counting a timeout.
            end = self.final_at + self.linger_s if self.linger_s is not None else None
            if deadline is not None:
                end = deadline if end is None else min(end, deadline)
            if end is not None and now >= end:
                self.killed_after_final = True
                self._signal_leader(signal.SIGKILL)
                return None
            return end
        if deadline is None or now < deadline:
            return deadline
        if self._leader_exited():
            return now  # it exited just in time: let the loop pick that up
        self.timed_out = True
        if self.term_grace_s > 0:
            self._signal_leader(signal.SIGTERM)
            self.kill_at = now + self.term_grace_s
            return self.kill_at
        self._signal_leader(signal.SIGKILL)
        return None

    # ------------------------------------------------------------------------------ helpers
    def _leader_exited(self) -> bool:
        """Whether the child has exited, without reaping it (its pid keeps the group id)."""
        if hasattr(os, "waitid"):
            try:
                return os.waitid(os.P_PID, self.proc.pid,
                                 os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:
                return True
        return self.proc.poll() is not None

    def _on_exit(self) -> float:
        """The child exited: kill what it left in its group, reap it, start draining.

        A supervisor has ended every process of the trial before it exited; the group is
        killed all the same, in case the supervisor itself was killed."""
        self.exited = True
        if self._sel is not None and self._pidfd >= 0 and self._pidfd in self._sel.get_map():
            self._sel.unregister(self._pidfd)
        # The unreaped child still holds its pid, so the group id cannot have been reused.
        kill_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reaped_at = time.monotonic()
        return self.reaped_at + DRAIN_S

    def _signal_leader(self, sig: int) -> None:
        self.killed = True
        self._send(sig)

    def _send(self, sig: int) -> None:
        """``SIGTERM`` or ``SIGKILL`` to every process of the running child: through its
        supervisor, or to its process group. Only called while the child is unreaped."""
        if not self.supervised:
            kill_group(self.proc.pid, sig)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, REQUEST_KILL if sig == signal.SIGKILL else sig)

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
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        return pos

    def _read(self, sel: selectors.BaseSelector, fd: int, stream: _Stream) -> None:
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
                self._signal_leader(signal.SIGKILL)
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
