"""Run a Python evaluation function in a fresh child process, isolated from the tuner.

A segfault, an out-of-memory kill, a hang or a leaked thread of the evaluated configuration
takes down one child process, never the tuner. Each trial runs in a new interpreter (nothing
leaks from one configuration to the next) under the per-trial supervisor, which ends every
process the function started (forked, daemonized) when the trial ends or the tuner dies, see
:func:`~deploytune.evaluators.process.run_child`; the child side is
:mod:`deploytune.evaluators._child`.

Example:
    >>> evaluator = IsolatedEvaluator("examples.toy:evaluate", timeout_s=60, memory_mb=4096)
    >>> evaluator.check()  # raises SettingError when the target cannot be imported
    >>> evaluation = evaluator.evaluate({"batch_size": 8}, Monitor())
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import deploytune
from deploytune.evaluators._child import BOOTSTRAP, to_jsonable
from deploytune.evaluators.base import Evaluation, Evaluator, Monitor
from deploytune.evaluators.child_run import ChildRun
from deploytune.evaluators.launcher import memory_limit_bytes
from deploytune.evaluators.limits import check_log_tail_bytes, describe_limits, positive_limit
from deploytune.evaluators.pipe_stream import DEFAULT_LOG_TAIL_BYTES
from deploytune.evaluators.process import ChildStartError, run_child
from deploytune.evaluators.process_group import TERM_GRACE_S
from deploytune.outcome import CrashKind
from deploytune.setting_error import SettingError

__all__ = ["CHECK_TIMEOUT_S", "RESULT_LINGER_S", "IsolatedEvaluator"]

RESULT_LINGER_S = 3.0
"""Seconds a child may take to exit after sending its result (interpreter shutdown, atexit
handlers) before it is killed; the result counts either way."""

CHECK_TIMEOUT_S = 120.0
"""Time limit of :meth:`IsolatedEvaluator.check` when the evaluator has none (imports of large
frameworks take a while)."""

_TARGET_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_PACKAGE_ROOT = str(Path(deploytune.__file__).resolve().parent.parent)


def _target_of(fn: Callable[..., Any]) -> tuple[str, str | None]:
    """``("module:qualname", import root or None)`` for a module-level function object.

    Raises:
        SettingError: At ``("target",)``: ``fn`` cannot be imported by another process.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    shown = qualname or type(fn).__name__
    fix = ("move it to module level in an importable module (e.g. my_eval.py) and pass "
           "'my_eval:evaluate'")
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise SettingError(("target",), f"{shown!r} has no module and name to import it by "
                           f"in the child process; {fix}")
    if "<lambda>" in qualname:
        raise SettingError(("target",), f"a lambda cannot be imported in the child "
                           f"process; {fix}")
    if "<locals>" in qualname:
        raise SettingError(("target",), f"{qualname!r} is defined inside a function and "
                           f"cannot be imported in the child process; {fix}")
    if module == "__main__":
        raise SettingError(("target",), f"{qualname!r} is defined in __main__ (the script "
                           f"being run), which the child process cannot import; {fix}")
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not fn:
        raise SettingError(("target",), f"{module}:{qualname} does not lead back to this "
                           f"function (is it decorated or replaced?); pass the target as a "
                           f"'module:function' string")
    return f"{module}:{qualname}", _import_root(module)


def _import_root(module: str) -> str | None:
    """The directory that makes ``module`` importable (the parent of its top package)."""
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        return None
    path = Path(file).absolute()
    if path.stem == "__init__":
        path = path.parent
    parts = module.split(".")
    if path.stem != parts[-1] or len(path.parents) < len(parts):
        return None
    return str(path.parents[len(parts) - 1])


def _import_hint(exception: str, target: str, cwd: str) -> str:
    module, _, name = target.partition(":")
    if exception in ("ModuleNotFoundError", "ImportError"):
        return (f"make sure {module!r} is importable from {cwd}: run from the project "
                f"directory, add its directory with sys_path=[...], or install the package")
    if exception == "AttributeError":
        return f"make sure {module!r} defines {name!r} at module level"
    if exception == "TypeError":
        return "point the target at a function"
    return f"importing {module!r} raised; fix the module (traceback on the child's stderr)"


def _payload(config: Mapping[str, Any], sys_path: list[str]) -> bytes:
    """The request sent on the child's stdin; ValueError for a config that is not JSON."""
    try:
        return json.dumps({"config": dict(config), "sys_path": sys_path},
                          default=to_jsonable, allow_nan=True).encode()
    except (TypeError, ValueError) as exc:  # a circular structure
        raise ValueError(f"cannot send the configuration to the child process as JSON: "
                         f"{exc}") from None


class _Session:
    """The parent's side of the protocol for one child."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.problems: list[str] = []

    def on_message(self, line: bytes, truncated: bool) -> bool:
        if truncated:
            self.problems.append("a message over the size limit was dropped")
            return False
        try:
            msg = json.loads(line)
        except ValueError:
            self.problems.append(f"unreadable message {line[:100]!r}")
            return False
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "report" and self.result is None and self.error is None:
            metrics = msg.get("metrics")
            step, rung = msg.get("step"), msg.get("rung")
            self.monitor.report(metrics if isinstance(metrics, dict) else {},
                                step=step if isinstance(step, int) else None,
                                rung=rung if isinstance(rung, str) else None)
            return False
        if kind == "result":
            self.result = msg
            return True
        if kind == "error":
            self.error = msg
            return True
        self.problems.append(f"unexpected message {line[:100]!r}")
        return False


class IsolatedEvaluator(Evaluator):
    """Calls ``fn(config)`` or ``fn(config, report)`` in a fresh Python process per trial.

    The child is started with an argv list (never a shell) as the leader of a new process
    group; the configuration goes in as JSON on its stdin, messages come back on a dedicated
    pipe (see :mod:`deploytune.evaluators._child`), so the function's own prints never
    interfere. ``report(...)`` calls are forwarded to the :class:`Monitor`; when it aborts the
    trial the child's process group is killed and the partial metrics are kept.

    Crashes are facts of the :class:`Evaluation`: an exception in the function (its class
    mapped by :func:`~deploytune.outcome.crash_kind_of`, e.g. ``MemoryError`` -> ``oom``), a
    signal (``"killed by signal SIGSEGV (segmentation fault)"``; a ``SIGKILL`` deploytune did
    not send is ``oom``: the kernel's OOM killer), the time limit (``timeout``). The log keeps a
    bounded tail of stdout and stderr.

    Args:
        target: ``"package.module:function"``, imported in the child, or a module-level
            function object (lambdas, nested functions and functions of ``__main__`` cannot be
            imported by another process and are rejected with a ValueError).
        timeout_s: Wall-clock limit per trial; on expiry the process group is killed.
        memory_mb: Address-space cap of the child (``RLIMIT_AS``, in MiB). It bounds virtual
            memory, which CUDA and some runtimes reserve in huge amounts: leave it unset for
            GPU work and rely on the runtime's own out-of-memory errors.
        env: Environment variables added to the tuner's for the child.
        cwd: The child's working directory (default: the tuner's).
        python: The interpreter to run (default: this one). deploytune need not be installed
            in it, but it must be Python 3.11 or newer.
        sys_path: Directories put in front of the child's :data:`sys.path` (with its working
            directory), so that ``examples.foo:evaluate`` imports. For a function object,
            the directory it was imported from is added as well.
        log_tail_bytes: How many bytes of the end of stdout and of stderr to keep, each.

    Raises:
        SettingError: An invalid argument, at its path (``("target",)``, ``("timeout_s",)``,
            ...), naming the fix.
    """

    def __init__(
        self,
        target: str | Callable[..., Any],
        *,
        timeout_s: float | None = None,
        memory_mb: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
        sys_path: Sequence[str | os.PathLike[str]] = (),
        log_tail_bytes: int = DEFAULT_LOG_TAIL_BYTES,
    ):
        paths = [os.fspath(p) for p in ([sys_path] if isinstance(sys_path, str) else sys_path)]
        if isinstance(target, str):
            if not _TARGET_RE.match(target):
                raise SettingError(("target",), f"{target!r} is not of the form "
                                   f"'package.module:function' (a file path is not accepted: "
                                   f"give the module name, and its directory in sys_path)")
            self.target = target
        elif callable(target):
            self.target, root = _target_of(target)
            if root is not None and root not in paths:
                paths.append(root)
        else:
            raise SettingError(("target",), f"must be 'module:function' or a function, got "
                               f"{type(target).__name__}")
        self.timeout_s = positive_limit("timeout_s", timeout_s)
        self.memory_mb = positive_limit("memory_mb", memory_mb)
        for key, value in (env or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise SettingError(("env", key), f"must be a string (got "
                                   f"{type(value).__name__})", f"env[{key!r}]")
        self.env = dict(env or {})
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.python = os.fspath(python)
        self.sys_path = paths
        self.log_tail_bytes = check_log_tail_bytes(log_tail_bytes)

    # ------------------------------------------------------------------------------- running
    def _run(self, payload: bytes, monitor: Monitor, *, check: bool,
             timeout_s: float | None) -> tuple[ChildRun, _Session]:
        """Run one child on the request ``payload``; raises ChildStartError."""
        session = _Session(monitor)
        read_fd, write_fd = os.pipe()
        # The child's interpreter becomes the trial's supervisor and forks (see _child): it
        # ends whatever the function left running, at the end or when the tuner dies.
        argv = [self.python, "-c", BOOTSTRAP, _PACKAGE_ROOT, "--fd", str(write_fd),
                "--memory", str(memory_limit_bytes(self.memory_mb)),
                "--parent", str(os.getpid()), "--supervise", f"{TERM_GRACE_S:g}",
                "--target", self.target]
        if check:
            argv.append("--check")
        run = run_child(argv, supervised=True, env=self.env, cwd=self.cwd, timeout_s=timeout_s,
                        stdin_data=payload, message_pipe=(read_fd, write_fd),
                        on_message=session.on_message, log_tail_bytes=self.log_tail_bytes,
                        linger_s=RESULT_LINGER_S)
        return run, session

    def _import_error(self, error: Mapping[str, Any]) -> str:
        exception = str(error.get("exception", "Exception"))
        message = str(error.get("message", ""))
        hint = _import_hint(exception, self.target, self.cwd or os.getcwd())
        text = f"{exception}: {message}" if message else exception
        return f"cannot import {self.target!r}: {text}; {hint}"

    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Run the function on ``config`` in a new child process; see the class docstring."""
        try:
            payload = _payload(config, self.sys_path)
            run, session = self._run(payload, monitor, check=False, timeout_s=self.timeout_s)
        except (ChildStartError, ValueError) as exc:
            return Evaluation(dict(monitor.partial), error=str(exc),
                              crash_kind=CrashKind.RUNTIME_ERROR)
        info = run.info()
        if session.problems:
            info["protocol_problems"] = session.problems[:5]
        common: dict[str, Any] = {"log": run.log(), "cost_s": run.cost_s, "info": info}
        partial = dict(monitor.partial)
        if run.aborted is not None:
            return Evaluation(partial, aborted=run.aborted, **common)
        if session.result is not None:
            metrics = session.result.get("metrics")
            if not isinstance(metrics, dict):
                return Evaluation(partial, error=f"the child sent {type(metrics).__name__} "
                                  f"as metrics, expected a dict", **common)
            return Evaluation(metrics, **common)
        if session.error is not None:
            err = session.error
            info["exception"] = str(err.get("exception", "Exception"))
            info["traceback"] = str(err.get("traceback", ""))
            message = str(err.get("message", ""))
            if err.get("phase") == "import":
                text = self._import_error(err)
            elif err.get("phase") == "result" and message:
                text = message
            else:
                text = f"{info['exception']}: {message}" if message else info["exception"]
            try:
                kind: CrashKind | None = CrashKind(str(err.get("kind")))
            except ValueError:
                kind = None
            return Evaluation(partial, error=text, crash_kind=kind, **common)
        failure = run.failure()
        if failure is None:
            failure = ("the child process exited with code 0 without sending a result (did "
                       "the function call os._exit?)", CrashKind.RUNTIME_ERROR)
        return Evaluation(partial, error=failure[0], crash_kind=failure[1], **common)

    def check(self) -> None:
        """Import the target in a child process and verify it is callable.

        Raises:
            SettingError: At ``("target",)``, naming the target and what to fix, when the
                module cannot be imported, lacks the function, or the child crashes; at
                ``("python",)`` when the child fails to start.
        """
        timeout = self.timeout_s if self.timeout_s is not None else CHECK_TIMEOUT_S
        try:
            run, session = self._run(_payload({}, self.sys_path), Monitor(), check=True,
                                     timeout_s=timeout)
        except ChildStartError as exc:
            raise SettingError(("python",), f"{exc}; python= must be the path of a Python "
                               f"interpreter and cwd= an existing directory") from None
        if session.result is not None:
            return
        if session.error is not None:
            raise SettingError(("target",), self._import_error(session.error))
        failure = run.failure()
        detail = failure[0] if failure else "the child exited without an answer"
        raise SettingError(("target",), f"checking {self.target!r} failed: {detail}")

    def describe(self) -> str:
        """``python examples.toy:evaluate (isolated, 60 s, 4096 MB)``."""
        return (f"python {self.target} (isolated, "
                f"{describe_limits(self.timeout_s, self.memory_mb)})")
