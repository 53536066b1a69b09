"""The per-trial supervisor: runs one command and leaves no process of it behind.

The tuner starts it as (see :func:`deploytune.evaluators.launcher.launcher_argv`)::

    python -I -S -c LAUNCHER_SRC LIMIT_BYTES PARENT_PID GRACE_S -- ARGV...

where ``LAUNCHER_SRC`` imports this file by its path (from its cached bytecode) and calls
:func:`main`. It uses the standard library only and never imports deploytune (``-I -S``: no
site-packages, no user paths), so it starts in a few milliseconds. In order, it

1. blocks the signals it acts on; they are taken one at a time with
   :func:`signal.sigtimedwait`, so none is lost and none interrupts the bookkeeping;
2. asks Linux for :data:`PARENT_DIED` when the tuner dies (``PR_SET_PDEATHSIG``) and exits at
   once if the tuner is already gone (it may die before that call); it also polls its parent
   pid every :data:`PARENT_POLL_S` seconds as a fallback;
3. becomes a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): every process of the trial that
   is orphaned (the middle process of a double fork exited, a daemon that called ``setsid``)
   is re-parented to the supervisor instead of to init, so the trial's processes are always
   its descendants, whatever process group or session they moved to;
4. forks the command. The child asks for ``SIGKILL`` when the supervisor dies, restores the
   default handling of every signal (Python ignores ``SIGPIPE`` and ``SIGXFSZ``), caps its
   address space at ``LIMIT_BYTES`` (``RLIMIT_AS``, 0: no cap), marks its environment with
   :data:`OWNER_ENV` (``"TUNER_PID:TUNER_START"``, a fallback to find leftovers after the
   supervisor itself was killed) and ``exec``\\ s ``ARGV``. A program that cannot be executed
   exits with code 127 and says why on stderr;
5. waits, acting on requests:

   * ``SIGTERM``: sent on to every descendant (the graceful stop of a timeout or a server);
   * :data:`REQUEST_KILL` (``SIGUSR1``): ``SIGKILL`` to every descendant, at once;
   * :data:`PARENT_DIED` (or a new parent pid): the tuner is gone: every descendant gets
     ``SIGTERM``, ``GRACE_S`` seconds, then ``SIGKILL``, and the supervisor exits;
6. when the command has exited: clears what is left (``SIGTERM`` to every descendant,
   ``GRACE_S`` seconds, then ``SIGKILL`` until it has no child left; with no child left,
   nothing is scanned at all), then exits *like the command*: the same exit code, or killed by
   the same signal, so the tuner sees what it would have seen of the command itself.

The isolated evaluator's child runs the same :class:`Supervisor` in its own interpreter
(:func:`supervise_self`): it forks right after start-up instead of exec'ing a command, which
saves starting a second interpreter per trial.

Descendants are found by walking the parent links in ``/proc/*/stat``; each is signalled by pid
only after checking, through a pidfd, that the pid still names the process that was found (its
start time), so a reused pid is never signalled.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would double the start-up
if TYPE_CHECKING:
    import signal
    from collections.abc import Iterable, Sequence
    from typing import NoReturn
else:  # the C module: the same functions and numbers, without the enum import of `signal`
    import _signal as signal

OWNER_ENV = "DEPLOYTUNE_OWNER"
"""Environment variable set for the command: ``"PID:START"`` of the tuner that started the
trial (its pid and its start time in clock ticks since boot, from ``/proc/PID/stat``). It is
inherited by whatever the command starts, unless a program clears its environment."""

REQUEST_KILL = signal.SIGUSR1
"""Sent to the supervisor: kill every process of the trial now (``SIGKILL``)."""

PARENT_DIED = signal.SIGUSR2
"""Delivered to the supervisor by Linux when the tuner dies (``PR_SET_PDEATHSIG``)."""

EXEC_FAILED = "deploytune: cannot run "
"""How the line on stderr starts when the command could not be executed (exit code 127):
``deploytune: cannot run 'PROGRAM': REASON``."""

PARENT_POLL_S = 1.0
"""How often the supervisor also checks that its parent is still the tuner."""

KILL_WAIT_S = 5.0
"""How long the supervisor keeps sending ``SIGKILL`` and reaping before it gives up (a process
in uninterruptible sleep dies only when it wakes up; the kill is pending by then)."""

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_HANDLED = (signal.SIGCHLD, signal.SIGTERM, REQUEST_KILL, PARENT_DIED, signal.SIGINT,
            signal.SIGHUP, signal.SIGQUIT)
_CLEAR_POLL_S = 0.02


# ----------------------------------------------------------------------------- /proc helpers
def read_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, start time)`` of ``pid`` from ``/proc/PID/stat``; ``None`` when gone.

    The start time is in clock ticks since boot: with the pid it names one process for good.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return fields[0].decode("ascii", "replace"), int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def process_table() -> dict[int, tuple[str, int, int]]:
    """Every process of ``/proc``: pid -> ``(state, ppid, start time)``; empty without /proc."""
    table: dict[int, tuple[str, int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                table[int(name)] = stat
    return table


def descendants(root: int, table: dict[int, tuple[str, int, int]] | None = None
                ) -> list[tuple[int, int]]:
    """``(pid, start time)`` of every live (not zombie) descendant of ``root``, parents first.

    Args:
        root: The pid whose descendants are wanted (not itself included).
        table: A :func:`process_table` to use (default: read now).
    """
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: list[tuple[int, int]] = []
    todo = list(children.get(root, ()))
    seen = {root}
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        state, _, start = table[pid]
        if state not in ("Z", "X"):
            out.append((pid, start))
        todo.extend(children.get(pid, ()))
    return out


def send_signal(pid: int, start: int, sig: int) -> bool:
    """Send ``sig`` to ``pid`` only if it is still the process that started at ``start``.

    A pidfd is opened first and the start time checked after, so the signal cannot reach a
    process that took over the pid in between. Returns whether the signal was sent.
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    fd = -1
    if pidfd_open is not None:
        try:
            fd = pidfd_open(pid)
        except ProcessLookupError:
            return False
        except OSError:
            fd = -1  # no pidfds on this kernel: check, then signal by pid
    try:
        stat = read_stat(pid)
        if stat is None or stat[2] != start:
            return False
        if fd >= 0:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except OSError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def signal_all(processes: Iterable[tuple[int, int]], sig: int) -> int:
    """:func:`send_signal` to each ``(pid, start time)``; returns how many were signalled."""
    return sum(send_signal(pid, start, sig) for pid, start in processes)


def owner_token(pid: int) -> str | None:
    """The :data:`OWNER_ENV` value for the tuner ``pid``: ``"PID:START"``; ``None`` if gone."""
    stat = read_stat(pid)
    return None if stat is None else f"{pid}:{stat[2]}"


# ------------------------------------------------------------------------------- supervisor
def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL(None).prctl(option, value, 0, 0, 0) == 0)
    except Exception:
        return False


def _exec_command(argv: Sequence[str], limit: int, supervisor: int) -> NoReturn:
    """The forked child: tie its life to the supervisor's, reset signals, cap, exec."""
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != supervisor:
            os._exit(1)  # the supervisor died before prctl took effect
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        if limit > 0:
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        try:
            os.write(2, f"{EXEC_FAILED}{argv[0]!r}: {exc}\n".encode())
        finally:
            os._exit(127)
    except BaseException:
        pass
    os._exit(127)


def _exit_like(status: int) -> NoReturn:
    """Exit with the command's exit code, or die of the signal that killed it."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # the command's core, not ours
            _prctl(_PR_SET_DUMPABLE, 0)  # nor through a core_pattern pipe
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, (sig,))
            os.kill(os.getpid(), sig)
        except (OSError, ValueError):
            pass
        os._exit(128 + sig)  # a signal whose default is not to terminate: the shell's code
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


class Supervisor:
    """The state of one supervised command (see the module docstring)."""

    def __init__(self, parent: int, grace_s: float):
        self.pid = os.getpid()
        self.parent = parent
        self.grace_s = grace_s
        self.child = -1
        self.status: int | None = None
        self.killing = False
        self.parent_gone = False

    def take(self, timeout_s: float) -> int | None:
        """The next handled signal within ``timeout_s``, or ``None``."""
        info = signal.sigtimedwait(_HANDLED, max(0.0, timeout_s))
        return None if info is None else info.si_signo

    def reap(self) -> bool:
        """Reap every exited child (keeping the command's status); whether any child is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.child:
                self.status = status

    def signal_tree(self, sig: int) -> int:
        """Send ``sig`` to every live descendant; returns how many were signalled."""
        return signal_all(descendants(self.pid), sig)

    def handle(self, sig: int | None) -> None:
        """Act on one signal (``None``: the poll timed out)."""
        if sig is None:
            if self.parent and os.getppid() != self.parent:
                self.parent_gone = True
        elif sig == signal.SIGCHLD:
            self.reap()
        elif sig == signal.SIGTERM:
            self.signal_tree(signal.SIGTERM)
        elif sig == REQUEST_KILL:
            self.killing = True
            self.signal_tree(signal.SIGKILL)
        elif sig == PARENT_DIED:
            self.parent_gone = True
        # SIGINT, SIGHUP, SIGQUIT: taken and ignored; the tuner stops a trial with the above

    def clear(self) -> None:
        """End every descendant: ``SIGTERM``, the grace, ``SIGKILL``; return when none is
        left (or after :data:`KILL_WAIT_S` of ``SIGKILL``)."""
        if not self.reap():
            return
        if self.grace_s > 0 and not self.killing:
            deadline = time.monotonic() + self.grace_s
            self.signal_tree(signal.SIGTERM)
            while not self.killing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.handle(self.take(min(left, _CLEAR_POLL_S)))
                if not self.reap():
                    return
        give_up = time.monotonic() + KILL_WAIT_S
        while True:
            self.signal_tree(signal.SIGKILL)
            self.take(_CLEAR_POLL_S)
            if not self.reap() or time.monotonic() > give_up:
                return

    def start(self) -> int:
        """Steps 1-3 of the module docstring, then fork: 0 in the child (whose signal mask is
        cleared again), the child's pid in the supervisor, which then keeps nothing the child
        might wait on: no stdin, no other inherited pipe (stdout and stderr stay, for its own
        last words). Exits at once if the tuner is already gone."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        _prctl(_PR_SET_PDEATHSIG, PARENT_DIED)
        if self.parent and os.getppid() != self.parent:
            os._exit(1)  # the tuner died before prctl took effect: start nothing
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        if self.parent and OWNER_ENV not in os.environ:
            token = owner_token(self.parent)
            if token is not None:
                os.environ[OWNER_ENV] = token
        sys.stdout.flush()
        sys.stderr.flush()
        self.child = os.fork()
        if self.child == 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            return 0
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.closerange(3, 1 << 16)
        return self.child

    def watch(self) -> NoReturn:
        """Steps 5-6 of the module docstring: wait for the child's end or a request, clear,
        exit like the child."""
        while self.status is None and not self.parent_gone:
            self.handle(self.take(PARENT_POLL_S))
        self.clear()
        if self.status is None:  # the tuner is gone and the command killed: nobody reads it
            os._exit(1)
        _exit_like(self.status)

    def run(self, argv: Sequence[str], limit: int) -> NoReturn:
        """Start the command under supervision, watch it, exit like it."""
        if self.start() == 0:
            _exec_command(argv, limit, self.pid)
        self.watch()


def supervise_self(argv: list[str]) -> None:
    """Make this Python process the trial's supervisor and fork, for a child that runs Python
    code itself (the isolated evaluator's, see :data:`deploytune.evaluators._child.BOOTSTRAP`).

    Only with ``--supervise GRACE_S`` in ``argv`` (``--parent TUNER_PID`` names the tuner): the
    supervisor never returns (it watches the child and exits like it); the child returns with
    ``--supervise`` removed from ``argv`` and ``--parent`` naming the supervisor. Forking this
    early, before the child imports anything, keeps the pages the two share (and the child
    copies on write) few.
    """
    if "--supervise" not in argv:
        return
    i = argv.index("--supervise")
    grace_s = float(argv[i + 1])
    del argv[i:i + 2]
    j = argv.index("--parent") + 1 if "--parent" in argv else 0
    supervisor = Supervisor(int(argv[j]) if j else 0, grace_s)
    if supervisor.start() != 0:
        supervisor.watch()
    if j:
        argv[j] = str(supervisor.pid)
    else:
        argv += ["--parent", str(supervisor.pid)]


def main(args: Sequence[str]) -> NoReturn:
    """``LIMIT_BYTES PARENT_PID GRACE_S -- ARGV...``: supervise ARGV (the module docstring)."""
    try:
        sep = list(args).index("--")
        limit, parent, grace = int(args[0]), int(args[1]), float(args[2])
        argv = list(args[sep + 1:])
        if sep != 3 or not argv:
            raise ValueError
    except (ValueError, IndexError):
        os.write(2, b"deploytune: usage: _supervisor.py LIMIT PARENT GRACE -- ARGV...\n")
        os._exit(2)
    Supervisor(parent, grace).run(argv, limit)


if __name__ == "__main__":
    main(sys.argv[1:])
