"""The evaluator's checks with effects, and building it: imports, executables, placeholders.

Checking a Python target imports it (in a child process when isolated); checking a command
looks up its executable and checks its ``{placeholders}`` against the space, with the
template engine of the evaluators (:mod:`deploytune.evaluators.templates`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploytune.evaluators.server_settings import PORT_PLACEHOLDER
from deploytune.setting_error import SettingError, format_path
from deploytune.space import Space
from deploytune.spec.errors import Invalid, invalid_at
from deploytune.spec.messages import one_line, show

if TYPE_CHECKING:
    from deploytune.evaluators.base import Evaluator
    from deploytune.evaluators.command import CommandEvaluator
    from deploytune.evaluators.isolated import IsolatedEvaluator
    from deploytune.evaluators.server import ServerEvaluator
    from deploytune.spec.model import EvaluatorSpec


def probe_evaluator(spec: EvaluatorSpec, base_dir: Path, space: Space) -> None:
    """Import the Python target / find the command, and check placeholders, by building it;
    import the estimator."""
    if spec.estimate is not None:
        _import_target(spec.estimate, base_dir, "evaluator.estimate")
    if spec.kind == "python" and not spec.isolate:
        assert spec.target is not None
        _import_target(spec.target, base_dir)
        return
    if spec.kind == "python":
        isolated = _isolated(spec, base_dir)
        try:
            _run_check(isolated.check, spec.kind, "evaluator.python")
        finally:
            isolated.close()
        return
    if spec.kind == "server":
        server = _server_evaluator(spec)
        _run_check(server.check, spec.kind, "evaluator.server.argv[0]")
        _run_check(lambda: server.check_space(space), spec.kind, "evaluator.server")
        return
    command = _command_evaluator(spec)
    try:
        _run_check(command.check, spec.kind, "evaluator.command.argv[0]")
        _run_check(lambda: command.check_space(space), spec.kind, "evaluator.command")
    finally:
        command.close()


_SECTION = {"python": "evaluator.python", "command": "evaluator.command",
            "server": "evaluator.server"}
"""Where each kind of evaluator's own settings are, by default."""

_SHARED_AT = {"cwd": "evaluator.cwd", "timeout_s": "evaluator.timeout_s",
              "memory_mb": "evaluator.memory_mb"}
_FIELD_AT = {
    "python": {**_SHARED_AT, "target": "evaluator.python", "python": "evaluator.python",
               "sys_path": "evaluator.python", "env": "evaluator.env"},
    "command": {**_SHARED_AT, "env": "evaluator.command.env"},
    "server": {**_SHARED_AT, "env": "evaluator.env"},
}
"""The spec's field of an evaluator's keyword argument, where it is not the key of the same
name in the section (the python target is the section itself; the limits, and the python and
server evaluators' environment, are keys of ``evaluator``)."""


def _evaluator_error(exc: Exception, kind: str, at: str) -> Invalid:
    """The parser's error for the ``kind`` evaluator's ``exc``: a
    :class:`~deploytune.setting_error.SettingError`'s path, a keyword argument of the
    evaluator first, becomes the spec's field of it (``("argv", 0)`` of a command is
    ``evaluator.command.argv[0]``, ``("target",)`` of a python evaluator is
    ``evaluator.python``); another error's message is shown at ``at``."""
    if not isinstance(exc, SettingError):
        return Invalid(at, one_line(str(exc)))
    key = exc.path[0] if exc.path else None
    field = _FIELD_AT[kind].get(key) if isinstance(key, str) else None
    if field is None:
        return invalid_at(_SECTION[kind], exc)
    return Invalid(format_path(exc.path[1:], field), exc.message)


def _run_check(check: Callable[[], object], kind: str, at: str) -> None:
    """Run one of the ``kind`` evaluator's checks; its failure becomes an error at its field
    (another failure than a ``ValueError``: at ``at``)."""
    try:
        check()
    except ValueError as exc:
        raise _evaluator_error(exc, kind, at) from None
    except Exception as exc:
        raise Invalid(at, f"cannot be checked ({type(exc).__name__}: "
                      f"{one_line(str(exc))})") from None


def check_placeholders(spec: EvaluatorSpec, space: Space) -> None:
    """Check every template (argv items, env values, metrics_file, the server's URLs) and its
    placeholders, with the template engine
    (:func:`~deploytune.evaluators.templates.check_placeholders`): its error, at the field's
    path, becomes the spec's.

    The syntax is the command evaluator's: ``{name}`` or ``{name:format}`` naming a parameter
    of the space, ``{config_json}``, ``{python}`` (and a server's ``{port}``), and ``{{`` /
    ``}}`` for literal braces.
    """
    from deploytune.evaluators import templates

    extra = {PORT_PLACEHOLDER: "the trial's port"} if spec.kind == "server" else {}
    fields = (templates.Template(text, format_path(path), path, any_name=True)
              for path, text in _templated_fields(spec))
    try:
        templates.check_placeholders(fields, space, extra, kind=spec.kind)
    except SettingError as exc:
        raise invalid_at("", exc) from None


def _templated_fields(spec: EvaluatorSpec) -> Iterator[tuple[tuple[Any, ...], str]]:
    """``(field path, text)`` of each template of the evaluator, in the order they are
    checked: argv items (groups opened), env values, metrics_file, the server's URLs."""
    server = spec.kind == "server"
    section = ("evaluator", "server" if server else "command")
    for i, item in enumerate(spec.argv):
        if isinstance(item, str):
            yield (*section, "argv", i), item
        else:
            yield from (((*section, "argv", i, j), x) for j, x in enumerate(item))
    env_at = ("evaluator",) if server else section
    for key, value in (spec.env or {}).items():
        yield (*env_at, "env", key), value
    if spec.metrics_file is not None:
        yield (*section, "metrics_file"), spec.metrics_file
    for key in ("health_url", "base_url"):
        if server and (spec.server or {}).get(key) is not None:
            yield (*section, key), str((spec.server or {})[key])


def _import_target(target: str, base_dir: Path,
                   at: str = "evaluator.python") -> Callable[..., Any]:
    """Import ``module:function`` in this process, the spec's folder first on ``sys.path``;
    a failure is an error of the spec's field ``at``."""
    module_name, _, attr = target.partition(":")
    folder = str(base_dir)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    fix = ("check the module path (relative to the spec's folder) and that the module imports "
           "cleanly")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise Invalid(at, f"cannot import {show(module_name)} "
                      f"({one_line(str(exc))}); {fix}") \
            from None
    except (Exception, SystemExit) as exc:
        raise Invalid(at, f"importing {show(module_name)} failed "
                      f"({type(exc).__name__}: {one_line(str(exc))}); {fix}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:
            raise Invalid(at, f"module {show(module_name)} has no "
                          f"attribute {show(attr)}; check the function's name") from None
    if not callable(obj):
        raise Invalid(at, f"{show(target)} is not a function; name a function "
                      f"config -> metrics")
    return obj


def _isolated(spec: EvaluatorSpec, base_dir: Path) -> IsolatedEvaluator:
    """An isolated evaluator of the spec's Python target (not started yet)."""
    from deploytune.evaluators.isolated import IsolatedEvaluator

    assert spec.target is not None
    try:
        return IsolatedEvaluator(spec.target, timeout_s=spec.timeout_s,
                                 memory_mb=spec.memory_mb, env=spec.env, cwd=spec.cwd,
                                 sys_path=(str(base_dir),))
    except (TypeError, ValueError) as exc:
        raise _evaluator_error(exc, "python", "evaluator.python") from None


def _command_evaluator(spec: EvaluatorSpec) -> CommandEvaluator:
    """A command evaluator of the spec's argv (nothing run yet)."""
    from deploytune.evaluators.command import CommandEvaluator

    argv = [a if isinstance(a, str) else list(a) for a in spec.argv]
    try:
        return CommandEvaluator(argv, env=spec.env, cwd=spec.cwd, timeout_s=spec.timeout_s,
                                memory_mb=spec.memory_mb, metrics_file=spec.metrics_file)
    except (TypeError, ValueError) as exc:
        raise _evaluator_error(exc, "command", "evaluator.command") from None


def _server_evaluator(spec: EvaluatorSpec) -> ServerEvaluator:
    """A server evaluator of the spec's server and load sections (nothing started yet)."""
    from deploytune.evaluators.server import ServerEvaluator, ServerSettings
    from deploytune.loadgen import LoadSpec

    server = dict(spec.server or {})
    server["argv"] = spec.argv
    try:
        settings = ServerSettings(**server)
        load = LoadSpec.from_dict(dict(spec.load or {}))
        return ServerEvaluator(settings, load, env=spec.env, cwd=spec.cwd,
                               timeout_s=spec.timeout_s, memory_mb=spec.memory_mb)
    except (TypeError, ValueError) as exc:
        raise _evaluator_error(exc, "server", "evaluator.server") from None


def build_evaluator(spec: EvaluatorSpec, base_dir: Path) -> Evaluator:
    """A fresh evaluator as described by ``spec``; see :meth:`Spec.build_evaluator`. With an
    ``estimate``, the estimator (imported in this process) comes first
    (:class:`~deploytune.evaluators.estimated.EstimatedEvaluator`)."""
    evaluator = _build(spec, base_dir)
    if spec.estimate is None:
        return evaluator
    from deploytune.evaluators.estimated import EstimatedEvaluator

    return EstimatedEvaluator(evaluator, _import_target(spec.estimate, base_dir,
                                                        "evaluator.estimate"))


def _build(spec: EvaluatorSpec, base_dir: Path) -> Evaluator:
    if spec.kind == "command":
        return _command_evaluator(spec)
    if spec.kind == "server":
        return _server_evaluator(spec)
    if spec.isolate:
        return _isolated(spec, base_dir)
    from deploytune.evaluators.base import FunctionEvaluator

    assert spec.target is not None
    return FunctionEvaluator(_import_target(spec.target, base_dir))
