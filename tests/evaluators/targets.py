"""Evaluation functions for the IsolatedEvaluator tests (imported in the child process as
``tests.evaluators.targets:<name>``), and helpers that look at processes."""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploytune import InvalidConfig

REPO_ROOT = Path(__file__).resolve().parents[2]

Report = Callable[..., None]


# ------------------------------------------------------------------------ evaluation functions
def ok(config: dict[str, Any], report: Report) -> dict[str, Any]:
    """Prints on both streams, reports once, returns metrics with NaN and infinity."""
    print("hello on stdout")
    print("hello on stderr", file=sys.stderr)
    report({"p95_ms": 10.0}, step=1)
    return {"x": config.get("x", 1) * 2, "nan": math.nan, "inf": math.inf, "name": "ok"}


def trivial(config: dict[str, Any]) -> dict[str, Any]:
    """The cheapest evaluation: for overhead measurements."""
    return {"x": 1}


def segfault(config: dict[str, Any]) -> dict[str, Any]:
    """Dies of SIGSEGV."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    ctypes.string_at(0)
    return {}


def allocate(config: dict[str, Any]) -> dict[str, Any]:
    """Allocates 50 MB blocks until the memory cap raises MemoryError."""
    blocks = [bytearray(50 * 1024 * 1024) for _ in range(40)]
    return {"allocated_mb": 50.0 * len(blocks)}


def sleep(config: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``config["seconds"]``."""
    print("going to sleep", flush=True)
    time.sleep(config["seconds"])
    return {"slept": config["seconds"]}


def exit_code(config: dict[str, Any]) -> dict[str, Any]:
    """Complains on stderr and leaves with ``os._exit(3)`` (no result sent)."""
    print("fatal: the engine refused the configuration", file=sys.stderr, flush=True)
    os._exit(3)


def sys_exit(config: dict[str, Any]) -> dict[str, Any]:
    """Calls ``sys.exit(3)``."""
    sys.exit(3)


def not_a_dict(config: dict[str, Any]) -> Any:
    """Returns a list instead of metrics."""
    return [1, 2, 3]


def flood(config: dict[str, Any]) -> dict[str, Any]:
    """Prints ``config["mb"]`` MB on stdout, then returns metrics."""
    block = ("y" * 999 + "\n") * 1000
    for _ in range(config["mb"]):
        sys.stdout.write(block)
    return {"x": 1}


def fork_child(config: dict[str, Any]) -> dict[str, Any]:
    """Forks a child that keeps running; its pid goes to ``config["pid_file"]``."""
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    Path(config["pid_file"]).write_text(str(pid))
    return {"x": 1}


def transient(config: dict[str, Any]) -> dict[str, Any]:
    """Fails once with "Address already in use" (marker file), then succeeds."""
    marker = Path(config["marker"])
    if not marker.exists():
        marker.touch()
        raise OSError(98, "Address already in use")
    return {"x": 1}


def stream(config: dict[str, Any], report: Report) -> dict[str, Any]:
    """Writes its pid to ``config["pid_file"]``, reports a growing p95 every 0.1 s for 10 s; the
    report of step 1 ends the rung ``short``."""
    Path(config["pid_file"]).write_text(str(os.getpid()))
    for step in range(100):
        report(p95_ms=50.0 + 30.0 * step, step=step, rung="short" if step == 1 else None)
        time.sleep(0.1)
    return {"p95_ms": 1.0}


def pid_sleep(config: dict[str, Any]) -> dict[str, Any]:
    """Writes its pid to ``config["pid_file"]``, then sleeps 30 s without a word."""
    Path(config["pid_file"]).write_text(str(os.getpid()))
    time.sleep(30)
    return {}


def bad_alloc(config: dict[str, Any]) -> dict[str, Any]:
    """Says ``std::bad_alloc`` on stderr, then aborts (SIGABRT), like a C++ library."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.stderr.write("terminate called after throwing an instance of 'std::bad_alloc'\n"
                     "  what():  std::bad_alloc\n")
    sys.stderr.flush()
    os.abort()


def sigkill_self(config: dict[str, Any]) -> dict[str, Any]:
    """Dies of a SIGKILL deploytune did not send."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def invalid(config: dict[str, Any]) -> dict[str, Any]:
    """Rejects the configuration."""
    raise InvalidConfig("int8 is not supported with this backend")


def modules(config: dict[str, Any]) -> dict[str, Any]:
    """Which heavy modules the child loaded, and its sys.path / cwd / environment."""
    return {"optuna": "optuna" in sys.modules, "numpy": "numpy" in sys.modules,
            "sys_path": sys.path[:3], "cwd": os.getcwd(),
            "env": os.environ.get("DT_TEST", ""), "config": config}


def linger(config: dict[str, Any]) -> dict[str, Any]:
    """Returns metrics but leaves a non-daemon thread running: the child cannot exit."""
    threading.Thread(target=time.sleep, args=(60,)).start()
    return {"x": 1}


NOT_CALLABLE = 42


# ------------------------------------------------------------------------------------ helpers
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of ``pid`` from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[2])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as dead)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def group_alive(pgid: int) -> list[int]:
    """The pids of the live members of process group ``pgid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] == pgid and st[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


def wait_dead(pid: int, *, group: bool = False, timeout_s: float = 3.0) -> bool:
    """Wait until ``pid`` (or its whole process group) is dead; True when it is."""
    end = time.monotonic() + timeout_s
    while True:
        alive = group_alive(pid) if group else pid_alive(pid)
        if not alive:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.02)


def read_pid(path: Path, timeout_s: float = 3.0) -> int:
    """The pid written to ``path`` (waits for it to appear)."""
    end = time.monotonic() + timeout_s
    while True:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        if time.monotonic() > end:
            raise AssertionError(f"{path} was never written")
        time.sleep(0.01)
