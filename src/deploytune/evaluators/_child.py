"""The child side of :class:`~deploytune.evaluators.isolated.IsolatedEvaluator`.

The parent starts a fresh interpreter per trial as::

    python -c BOOTSTRAP ROOT --fd N --memory BYTES --parent PID [--supervise GRACE_S]
        --target module:function [--check]

where ``BOOTSTRAP`` (:data:`BOOTSTRAP`) makes this package importable from ``ROOT`` (so that a
different interpreter can be used), imports this module and calls :func:`main`. Only the
standard library and :mod:`deploytune.evaluators.base` / :mod:`deploytune.outcome` are loaded
before the user's module: never Optuna.

With ``--supervise``, the interpreter first becomes the trial's supervisor
(:class:`deploytune.evaluators._supervisor.Supervisor`, for the tuner ``PID``) and forks, in
:data:`BOOTSTRAP`, before anything else is imported: the supervisor owns every process the
function starts (forked, daemonized) and ends them all when the function's process ends or the
tuner dies; the forked child goes on below with ``--parent`` naming the supervisor. This costs
a fork instead of a second interpreter.

:func:`main`, in order: asks Linux to ``SIGKILL`` the child when its parent (the tuner, or the
supervisor) dies (``PR_SET_PDEATHSIG``) and exits at once if that parent is already gone, caps
the address space (``RLIMIT_AS``), reads the request
``{"config": {...}, "sys_path": [...]}`` from stdin (configurations can be large, so not
argv), puts ``sys_path`` and the working directory in front of :data:`sys.path`, imports the
target and calls it. Messages go to the parent over file descriptor ``N``, one JSON object per
line, so whatever the function prints on stdout / stderr never interferes:

* ``{"type": "report", "metrics": {...}, "step": n, "rung": name}`` for each ``report(...)``
  call;
* ``{"type": "result", "metrics": {...}}`` at the end;
* ``{"type": "error", "phase": "import" | "call" | "result", "kind": "oom",
  "exception": "MemoryError", "message": "...", "traceback": "..."}`` when the import or the
  call raised, or the result is not a dict of metrics.

``report`` only sends: the parent decides to abort the trial, by killing the child. NaN and
infinities travel as JSON's ``NaN`` / ``Infinity`` extensions.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from deploytune.evaluators.base import call_evaluation_function
from deploytune.outcome import crash_kind_of

__all__ = ["BOOTSTRAP", "main", "resolve_target", "to_jsonable"]

BOOTSTRAP = ("import sys; n = len(sys.path); root = sys.argv.pop(1); "
             "sys.path.insert(0, root + '/deploytune/evaluators'); import _supervisor; "
             "del sys.path[0], sys.modules['_supervisor']; _supervisor.supervise_self(sys.argv); "
             "sys.path.append(root); from deploytune.evaluators._child import main; "
             "del sys.path[n]; sys.exit(main())")
"""The ``-c`` program that starts the child. With ``--supervise``, it first loads the
supervisor by its file (nothing else of deploytune) and forks under it
(:func:`deploytune.evaluators._supervisor.supervise_self`). ``ROOT`` (the directory holding the
``deploytune`` package) is on :data:`sys.path` only while this module is imported, so that the
user's code never picks up the tuner's own packages by accident."""

TRACEBACK_LINES = 40
"""How many lines of the end of a traceback the error message carries."""


def to_jsonable(obj: Any) -> Any:
    """JSON fallback for values :mod:`json` does not know: numpy / torch scalars become
    numbers (``.item()`` or ``float()``), anything else its ``repr``."""
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            value = item()
        except Exception:
            value = None
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
    try:
        return float(obj)
    except Exception:
        return repr(obj)


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` (a dotted qualname is followed attribute by
    attribute) and return the callable.

    Raises:
        ImportError: The module cannot be imported.
        AttributeError: The module has no such attribute.
        TypeError: The attribute is not callable.
    """
    import importlib

    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target!r} is a {type(obj).__name__}, not a function")
    return obj


class _Channel:
    """The message pipe to the parent (thread-safe: ``report`` may be called from threads)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()

    @staticmethod
    def encode(message: Mapping[str, Any]) -> bytes:
        return (json.dumps(message, default=to_jsonable, allow_nan=True) + "\n").encode()

    def send(self, message: Mapping[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else self.encode(message)
        view = memoryview(data)
        with self._lock:
            try:
                while view:
                    view = view[os.write(self.fd, view):]
            except BrokenPipeError:  # the parent is gone (and kills this group anyway)
                os._exit(1)


def _limit_self(memory_bytes: int, parent_pid: int) -> None:
    """Die with the tuner, then cap the address space (before any user code is imported)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except Exception:
            pass
        if parent_pid and os.getppid() != parent_pid:
            os._exit(1)  # the tuner died before prctl took effect
    if memory_bytes > 0:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _parse_args(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        key = argv[i].lstrip("-")
        if key == "check":
            out[key] = "1"
            i += 1
        else:
            out[key] = argv[i + 1]
            i += 2
    return out


def _error_message(exc: BaseException, phase: str) -> dict[str, Any]:
    """The ``error`` message for ``exc``; also prints the traceback on stderr."""
    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)  # free the locals (the memory a MemoryError was about)
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        text = f"{type(exc).__name__}: {exc}\n"
    sys.stderr.write(text)
    sys.stderr.flush()
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__name__} with an unprintable message>"
    return {"type": "error", "phase": phase, "kind": crash_kind_of(exc).value,
            "exception": type(exc).__name__, "message": message,
            "traceback": "\n".join(text.splitlines()[-TRACEBACK_LINES:])}


def _step(step: Any) -> int | None:
    if step is None or isinstance(step, bool):
        return None
    try:
        return int(step)
    except (TypeError, ValueError, OverflowError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Run one request from the parent; the exit code is 0 when a result was sent."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    _limit_self(int(args.get("memory", "0")), int(args.get("parent", "0")))
    import faulthandler

    faulthandler.enable()  # a segfault prints the Python stack before the child dies of it
    channel = _Channel(int(args["fd"]))
    os.set_inheritable(channel.fd, False)  # programs the function runs do not get the pipe
    request = json.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    front = [os.path.abspath(p) for p in request.get("sys_path", ())] + [os.getcwd()]
    sys.path[:] = list(dict.fromkeys(front + sys.path))
    with contextlib.suppress(Exception):  # stdout may have been replaced by a plain stream
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    target = args["target"]
    try:
        fn = resolve_target(target)
    except BaseException as exc:
        channel.send(_error_message(exc, "import"))
        return 1
    if "check" in args:
        channel.send({"type": "result", "metrics": {}})
        return 0

    def report(metrics: Mapping[str, Any] | None = None, step: int | None = None,
               rung: str | None = None, **kw: Any) -> None:
        merged = {str(k): v for k, v in dict(metrics or {}).items()}
        merged.update(kw)
        channel.send({"type": "report", "metrics": merged, "step": _step(step),
                      "rung": rung if isinstance(rung, str) else None})

    try:
        metrics = call_evaluation_function(fn, dict(request.get("config") or {}), report)
    except BaseException as exc:
        channel.send(_error_message(exc, "call"))
        return 1
    if not isinstance(metrics, Mapping):
        text = (f"the evaluation function returned {type(metrics).__name__}, expected a dict "
                f"of metrics")
        sys.stderr.write(f"deploytune: {text}\n")
        channel.send({"type": "error", "phase": "result", "kind": "runtime_error",
                      "exception": "TypeError", "message": text, "traceback": ""})
        return 1
    try:
        result = channel.encode({"type": "result",
                                 "metrics": {str(k): v for k, v in metrics.items()}})
    except Exception as exc:  # a circular structure, a broken __str__ / __repr__
        channel.send(_error_message(exc, "result"))
        return 1
    sys.stdout.flush()
    channel.send(result)
    return 0
