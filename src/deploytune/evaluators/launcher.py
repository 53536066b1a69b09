"""The argv that runs a command under the per-trial supervisor, and the memory cap it sets.

:func:`launcher_argv` wraps a command in the supervisor
(:mod:`deploytune.evaluators._supervisor`), which owns every process of the trial: it is a
child subreaper, so processes that leave the process group or daemonize (double fork,
``setsid``) stay its descendants; it forks the command with the memory cap (``RLIMIT_AS``, set
in the child, never with ``preexec_fn``, which is not safe when the parent runs threads) and
``exec``\\ s it; when the command ends, when the tuner asks (``SIGTERM``, or
:data:`~deploytune.evaluators._supervisor.REQUEST_KILL` for ``SIGKILL``) or when the tuner dies
(``PR_SET_PDEATHSIG``), it ends every descendant, and it exits *like the command* (its exit
code, or killed by the same signal), so the tuner classifies the command's end exactly as if it
had run it directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from deploytune.evaluators import _supervisor
from deploytune.evaluators.process_group import TERM_GRACE_S

__all__ = ["LAUNCHER_SRC", "is_supervised", "launcher_argv", "memory_limit_bytes"]

_SUPERVISOR_DIR = os.path.dirname(os.path.abspath(_supervisor.__file__))

LAUNCHER_SRC = (f"import sys; sys.path.append({_SUPERVISOR_DIR!r}); import _supervisor; "
                f"_supervisor.main(sys.argv[1:])")
"""Source of the launcher run as ``python -I -S -c LAUNCHER_SRC LIMIT PARENT GRACE -- ARGV...``.

It runs :func:`deploytune.evaluators._supervisor.main` (imported by file, from its cached
bytecode, without importing deploytune), which supervises ``ARGV`` under the memory cap
``LIMIT`` (bytes, 0: none) for the tuner ``PARENT`` (pid), with ``GRACE`` seconds between
``SIGTERM`` and ``SIGKILL`` when it clears what the command left or the tuner died. A command
that cannot be executed exits with code 127 and says why on stderr."""


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
