"""What the child-process runner saw of one child: :class:`ChildRun`, and its crash message.

:func:`~deploytune.evaluators.process.run_child` returns a :class:`ChildRun`; the evaluators
turn it into their :class:`~deploytune.evaluators.base.Evaluation`: :meth:`ChildRun.failure`
says how an abnormal end reads and which crash kind it is, :meth:`ChildRun.log` and
:meth:`ChildRun.info` are what is kept on the trial.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from deploytune.outcome import CrashKind

__all__ = ["ChildRun", "signal_description"]


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
