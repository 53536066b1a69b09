"""Run an evaluation as an external command built from an argv template (never a shell).

The command is an argv list whose items are templates: ``"--batch={batch_size}"`` becomes
``"--batch=16"``. Each item is substituted on its own and passed to the program as exactly one
argument, so values with spaces, quotes, ``;``, ``$(...)``, backticks or newlines reach it
verbatim: no shell ever sees them.

Template rules:

* ``{name}`` is the value of parameter ``name``: strings as they are, integers in decimal,
  floats in their shortest round-tripping form (``0.1``, ``1e-05``), booleans as ``true`` /
  ``false``; a format spec applies Python's :func:`format` (``{lr:.2e}``).
* ``{config_json}`` is the whole configuration as one JSON object.
* ``{python}`` is the Python interpreter running deploytune (``sys.executable``), so a
  script can run with the tuner's environment without ``python`` being on ``PATH``.
* ``{{`` and ``}}`` are literal braces: ``'{{"x": 1}}'`` is the argument ``{"x": 1}``.
  Braces around anything that cannot be a parameter name (``{"x": 1}``, ``{'a': 1}``) are an
  error rather than a placeholder silently dropped.
* An item referring to a parameter that is inactive in the configuration (or whose value is
  ``None``) is dropped. A *group*, an item that is itself a list of strings, is kept or dropped
  as a whole: ``["--threads", "{threads}"]`` disappears together when ``threads`` is inactive.
* ``env`` values and ``metrics_file`` are templates too; an environment variable referring to
  an inactive parameter is not set.

The command reports its metrics as one JSON object on the last non-empty line of stdout, or in
``metrics_file``: a path relative to ``cwd`` that must stay inside ``cwd`` once rendered (no
absolute path, no ``..`` out of it, no symbolic link pointing out of it). Nothing is ever
deleted: the file counts only when the run wrote it, that is when it did not exist before the
run or its identity (inode, size, modification time) changed during the run. Lines
``DEPLOYTUNE_REPORT {"p95_ms": 12.5, "step": 1}`` stream intermediate measurements to the
tuner, which may abort the run (its process group is killed); they are never taken for the
final metrics. A report with ``"rung": "short"`` ends that fidelity rung (see
:class:`~deploytune.evaluators.base.Monitor`): the tuner then decides whether the run goes on.
``PYTHONUNBUFFERED=1`` is set unless the environment already sets it, so that the reports of a
Python script arrive while it runs, and its last words survive a kill.

Example:
    >>> evaluator = CommandEvaluator(
    ...     ["python", "bench.py", "--batch", "{batch_size}", ["--threads", "{threads}"]],
    ...     timeout_s=120, memory_mb=8192)
    >>> evaluator.check()            # the program exists
    >>> evaluator.check_space(space)  # every placeholder names a parameter
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deploytune.evaluators.base import Evaluation, Evaluator, Monitor
from deploytune.evaluators.child_run import ChildRun
from deploytune.evaluators.launcher import launcher_argv, memory_limit_bytes
from deploytune.evaluators.limits import check_log_tail_bytes, describe_limits, positive_limit
from deploytune.evaluators.pipe_stream import DEFAULT_LOG_TAIL_BYTES
from deploytune.evaluators.process import ChildStartError, run_child
from deploytune.evaluators.templates import (
    CONFIG_JSON,
    PYTHON,
    SPECIAL_PLACEHOLDERS,
    ArgvTemplate,
    Template,
    check_metrics_file,
    check_placeholders,
    config_json_of,
)
from deploytune.outcome import CrashKind

if TYPE_CHECKING:
    from deploytune.space import Space

__all__ = [
    "CONFIG_JSON",
    "MAX_METRICS_FILE_BYTES",
    "PYTHON",
    "REPORT_PREFIX",
    "SPECIAL_PLACEHOLDERS",
    "CommandEvaluator",
    "check_metrics_file",
]

REPORT_PREFIX = "DEPLOYTUNE_REPORT"
"""Stdout lines starting with this word, then a JSON object, are streamed reports."""

MAX_METRICS_FILE_BYTES = 16 * 1024 * 1024
"""A metrics file larger than this is an error rather than read into memory."""

_FIX_LAST_LINE = "print the metrics as one JSON object on the last line"


def _inside(base: str, relative: str) -> str:
    """``relative`` joined to ``base``; raises ``ValueError`` when it resolves outside
    ``base`` (absolute, ``..`` or a symbolic link out of it)."""
    root = os.path.realpath(base)
    path = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, path]) != root or path == root:
        raise ValueError(f"metrics_file {relative!r} resolves to {path!r}, outside the "
                         f"working directory {root!r}; metrics files must stay inside it")
    return path


def _identity(path: str) -> tuple[int, ...] | None:
    """What tells one version of a file from another: inode, size, modification time."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _shown(data: bytes | str, n: int = 200) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[:n] + ("..." if len(text) > n else "")


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(data)
    except ValueError:  # UnicodeDecodeError included
        return None
    return obj if isinstance(obj, dict) else None


class _Stdout:
    """Watches the command's stdout: streams reports, remembers the last other line."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor
        self.last: bytes | None = None
        self.last_truncated = False
        self.reports = 0
        self.bad_reports: list[str] = []

    def on_line(self, line: bytes, truncated: bool) -> None:
        text = line.strip()
        if not text:
            return
        if text.startswith(REPORT_PREFIX.encode()):
            body = text[len(REPORT_PREFIX):]
            if body[:1] in (b" ", b"\t", b"{"):
                self._report(body, truncated)
                return
        self.last = text
        self.last_truncated = truncated

    def _report(self, body: bytes, truncated: bool) -> None:
        obj = None if truncated else _json_object(body)
        if obj is None:
            if len(self.bad_reports) < 5:
                self.bad_reports.append(_shown(body.strip(), 100))
            return
        self.reports += 1
        step = obj.pop("step", None)
        rung = obj.pop("rung", None)
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        self.monitor.report(obj, step=step if isinstance(step, int)
                            and not isinstance(step, bool) else None,
                            rung=rung if isinstance(rung, str) else None)


class CommandEvaluator(Evaluator):
    """Runs an external command per trial; metrics are JSON on its last stdout line.

    The command runs as the leader of a new process group under a small launcher that sets the
    memory cap and ties the command's life to the tuner's (see
    :mod:`deploytune.evaluators.process`), with a wall-clock limit that kills the whole group.
    Crashes are facts of the :class:`Evaluation`: ``"exited with code 3"`` followed by the last
    lines of stderr, ``"killed by signal SIGSEGV (segmentation fault)"``, a ``SIGKILL`` not
    sent by deploytune (``oom``: the kernel's OOM killer), ``"timed out after 60 s"``. The
    tuner's rules classify the rest from the error and the log tail (``std::bad_alloc`` is
    ``oom``, ``"Address already in use"`` may be made ``transient``, ...).

    Args:
        argv: The argv template, see the module docstring: a list of strings and groups (lists
            of strings); ``argv[0]`` is the program, looked up on ``PATH`` (or relative to
            ``cwd`` when it contains a ``/``).
        env: Environment variables (templates) added to the tuner's for the command.
        cwd: The command's working directory (default: the tuner's).
        timeout_s: Wall-clock limit per trial.
        memory_mb: Address-space cap of the command (``RLIMIT_AS``, MiB). Virtual memory:
            CUDA, the JVM and Go reserve far more than they use, so leave it unset for them.
        metrics_file: Read the metrics from this JSON file (a template, relative to ``cwd``
            and inside it) instead of stdout; only a file the run wrote counts.
        log_tail_bytes: How many bytes of the end of stdout and of stderr to keep, each; also
            the longest stdout line read whole.

    Attributes:
        command: The argv and environment templates
            (:class:`~deploytune.evaluators.templates.ArgvTemplate`).

    Raises:
        SettingError: An invalid argument, at its path (``("argv", 2)``, ``("timeout_s",)``,
            ...), naming the fix.
    """

    def __init__(
        self,
        argv: Sequence[str | Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout_s: float | None = None,
        memory_mb: float | None = None,
        metrics_file: str | os.PathLike[str] | None = None,
        log_tail_bytes: int = DEFAULT_LOG_TAIL_BYTES,
    ):
        self.command = ArgvTemplate(argv, env)
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.timeout_s = positive_limit("timeout_s", timeout_s)
        self.memory_mb = positive_limit("memory_mb", memory_mb)
        self._metrics_file = (None if metrics_file is None
                              else Template(os.fspath(metrics_file), "metrics_file",
                                            ("metrics_file",)))
        if self._metrics_file is not None:
            check_metrics_file(self._metrics_file.text)
        self.log_tail_bytes = check_log_tail_bytes(log_tail_bytes)

    # ----------------------------------------------------------------------------- templates
    def _templates(self) -> list[Template]:
        out = self.command.templates()
        if self._metrics_file is not None:
            out.append(self._metrics_file)
        return out

    def render(self, config: Mapping[str, Any]) -> tuple[list[str], dict[str, str],
                                                          str | None]:
        """The argv, the environment variables and the metrics file path for ``config``.

        Raises:
            ValueError: A value cannot be formatted, ``argv[0]`` or the metrics file refers to
                an inactive parameter.
        """
        config_json = config_json_of(config)
        argv, env = self.command.render(config, config_json)
        metrics_file = None
        if self._metrics_file is not None:
            metrics_file = self._metrics_file.render(config, config_json)
            if metrics_file is None:
                raise ValueError(f"metrics_file {self._metrics_file.text!r} refers to a "
                                 f"parameter that is inactive in this configuration")
            metrics_file = _inside(self.cwd or os.getcwd(), metrics_file)
        return argv, env, metrics_file

    # ------------------------------------------------------------------------------- running
    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Run the command for ``config``; see the class docstring."""
        try:
            argv, env, metrics_file = self.render(config)
        except ValueError as exc:
            return Evaluation(dict(monitor.partial), error=f"cannot build the command: {exc}",
                              crash_kind=CrashKind.RUNTIME_ERROR)
        before = None if metrics_file is None else _identity(metrics_file)
        if "PYTHONUNBUFFERED" not in os.environ:
            env = {"PYTHONUNBUFFERED": "1", **env}
        stdout = _Stdout(monitor)
        try:
            run = run_child(launcher_argv(argv, memory_limit_bytes(self.memory_mb)), env=env,
                            cwd=self.cwd, timeout_s=self.timeout_s,
                            on_stdout_line=stdout.on_line, log_tail_bytes=self.log_tail_bytes)
        except ChildStartError as exc:
            return Evaluation(dict(monitor.partial), error=str(exc),
                              crash_kind=CrashKind.RUNTIME_ERROR)
        return self._evaluation(run, stdout, monitor, argv, metrics_file, before)

    def _evaluation(self, run: ChildRun, stdout: _Stdout, monitor: Monitor, argv: list[str],
                    metrics_file: str | None,
                    before: tuple[int, ...] | None = None) -> Evaluation:
        info = run.info()
        info["argv"] = argv
        info["reports"] = stdout.reports
        if stdout.bad_reports:
            info["bad_reports"] = stdout.bad_reports
        common: dict[str, Any] = {"log": run.log(), "cost_s": run.cost_s, "info": info}
        partial = dict(monitor.partial)
        if run.aborted is not None:
            return Evaluation(partial, aborted=run.aborted, **common)
        failure = run.failure()
        if failure is not None:
            return Evaluation(partial, error=failure[0], crash_kind=failure[1], **common)
        if metrics_file is not None:
            metrics, error = self._read_metrics_file(metrics_file, before)
        else:
            metrics, error = self._last_line_metrics(stdout, run)
        if metrics is None:
            return Evaluation(partial, error=error, **common)
        return Evaluation(metrics, **common)

    @staticmethod
    def _last_line_metrics(stdout: _Stdout, run: ChildRun) -> tuple[dict[str, Any] | None,
                                                                    str]:
        if stdout.last is None:
            if stdout.reports:
                return None, (f"stdout holds only {REPORT_PREFIX} lines, no final metrics; "
                              f"{_FIX_LAST_LINE}")
            what = "only blank lines" if run.stdout_bytes else "nothing"
            return None, (f"the command printed {what} on stdout; {_FIX_LAST_LINE} (or write "
                          f"them to metrics_file)")
        metrics = None if stdout.last_truncated else _json_object(stdout.last)
        if metrics is None:
            cut = (f" (the line is longer than log_tail_bytes = {len(stdout.last)} and was "
                   f"cut)" if stdout.last_truncated else "")
            return None, (f"the last line of stdout is not a JSON object: "
                          f"{_shown(stdout.last)!r}{cut}; {_FIX_LAST_LINE}")
        return metrics, ""

    def _read_metrics_file(self, path: str, before: tuple[int, ...] | None
                           ) -> tuple[dict[str, Any] | None, str]:
        not_written = (f"the command exited with code 0 but did not write the metrics file "
                       f"{path!r}; write the metrics there as one JSON object")
        try:
            _inside(self.cwd or os.getcwd(), path)  # a link made during the run may point out
            after = _identity(path)
            if after is None or after == before:
                return None, not_written
            with open(path, "rb") as f:
                data = f.read(MAX_METRICS_FILE_BYTES + 1)
        except FileNotFoundError:
            return None, not_written
        except ValueError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"cannot read the metrics file {path!r}: {exc}"
        if len(data) > MAX_METRICS_FILE_BYTES:
            return None, (f"the metrics file {path!r} is larger than "
                          f"{MAX_METRICS_FILE_BYTES // (1024 * 1024)} MiB; write only the "
                          f"metrics, as one JSON object")
        metrics = _json_object(data)
        if metrics is None:
            return None, (f"the metrics file {path!r} does not hold a JSON object: "
                          f"{_shown(data.strip())!r}; write the metrics as one JSON object")
        return metrics, ""

    # -------------------------------------------------------------------------------- checks
    def check(self) -> None:
        """Verify that the program (``argv[0]``) can be found and executed, and that ``cwd``
        exists (:meth:`ArgvTemplate.check_program
        <deploytune.evaluators.templates.ArgvTemplate.check_program>`). A templated
        ``argv[0]`` is not checked.

        Raises:
            SettingError: At ``("argv", 0)`` or ``("cwd",)``, naming the program and the fix.
        """
        self.command.check_program(self.cwd)

    def check_space(self, space: Space, extra: Sequence[str] = ()) -> None:
        """Verify that every placeholder names a parameter of ``space`` (or is
        ``{config_json}``, ``{python}`` or one of ``extra``), and that no parameter is named
        like one of those (:func:`~deploytune.evaluators.templates.check_placeholders`).

        Raises:
            SettingError: Naming the placeholder, where it is, and the space's parameters.
        """
        check_placeholders(self._templates(), space, extra)

    def describe(self) -> str:
        """``command python bench.py --batch {batch_size} ... (60 s, 4096 MB)``."""
        return f"command {self.command.line()} ({describe_limits(self.timeout_s, self.memory_mb)})"
