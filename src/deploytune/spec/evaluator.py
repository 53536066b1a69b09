"""The evaluator's checks with effects, and building it: imports, executables, placeholders.

Checking a Python target imports it (in a child process when isolated); checking a command
looks up its executable and checks its ``{placeholders}`` against the space.
"""

from __future__ import annotations

import importlib
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploytune.setting_error import SettingError
from deploytune.space import Space
from deploytune.spec.errors import Invalid, invalid_at
from deploytune.spec.messages import join, one_line, show, suggest
from deploytune.spec.schema import CONFIG_JSON, PYTHON

if TYPE_CHECKING:
    from deploytune.evaluators.base import Evaluator
    from deploytune.evaluators.command import CommandEvaluator
    from deploytune.evaluators.isolated import IsolatedEvaluator
    from deploytune.evaluators.server import ServerEvaluator
    from deploytune.spec.model import EvaluatorSpec


def probe_evaluator(spec: EvaluatorSpec, base_dir: Path, space: Space) -> None:
    """Import the Python target / find the command, and check placeholders, by building it."""
    if spec.kind == "python" and not spec.isolate:
        assert spec.target is not None
        _import_target(spec.target, base_dir)
        return
    if spec.kind == "python":
        isolated = _isolated(spec, base_dir)
        try:
            _run_check(isolated.check, "evaluator.python")
        finally:
            isolated.close()
        return
    if spec.kind == "server":
        server = _server_evaluator(spec)
        _run_check(server.check, "evaluator.server.argv[0]")
        _run_check(lambda: server.check_space(space), "evaluator.server")
        return
    command = _command_evaluator(spec)
    try:
        at = "evaluator.command.argv[0]" if isinstance(spec.argv[0], str) else "evaluator.command"
        _run_check(command.check, at)
        _run_check(lambda: command.check_space(space), "evaluator.command")
    finally:
        command.close()


_LEGACY_PREFIXES = ("evaluator.python: ", "evaluator.command: ")
"""What the python and command evaluators still put in front of their ``ValueError``
messages; a :class:`~deploytune.setting_error.SettingError` carries its path instead."""


def _evaluator_error(exc: ValueError | TypeError, at: str) -> Invalid:
    """The parser's error for an evaluator's ``exc`` about the settings at ``at``: a
    :class:`~deploytune.setting_error.SettingError`'s path goes after ``at``; another error's
    message is shown at ``at``, without a prefix of :data:`_LEGACY_PREFIXES`."""
    if isinstance(exc, SettingError):
        return invalid_at(at, exc)
    text = one_line(str(exc))
    for prefix in _LEGACY_PREFIXES:
        if text.startswith(prefix):
            return Invalid(at, text[len(prefix):])
    return Invalid(at, text)


def _run_check(check: Callable[[], object], at: str) -> None:
    """Run one of the evaluator's checks; its failure becomes an error at ``at``."""
    try:
        check()
    except ValueError as exc:
        raise _evaluator_error(exc, at) from None
    except Exception as exc:
        raise Invalid(at, f"cannot be checked ({type(exc).__name__}: "
                      f"{one_line(str(exc))})") from None


def check_placeholders(spec: EvaluatorSpec, space: Space) -> None:
    """Check every template (argv items, env values, metrics_file) and its placeholders.

    The syntax is the command evaluator's: ``{name}`` or ``{name:format}`` naming a parameter
    of the space, ``{config_json}``, and ``{{`` / ``}}`` for literal braces.
    """
    items: list[tuple[str, str]] = []
    server = spec.kind == "server"
    prefix = "evaluator.server.argv" if server else "evaluator.command.argv"
    for i, a in enumerate(spec.argv):
        if isinstance(a, str):
            items.append((f"{prefix}[{i}]", a))
        else:
            items.extend((f"{prefix}[{i}][{j}]", x) for j, x in enumerate(a))
    env_at = "evaluator.env" if server else "evaluator.command.env"
    for key, value in (spec.env or {}).items():
        items.append((join(env_at, key), value))
    if spec.metrics_file is not None:
        items.append(("evaluator.command.metrics_file", spec.metrics_file))
    for key in ("health_url", "base_url"):
        if server and (spec.server or {}).get(key) is not None:
            items.append((f"evaluator.server.{key}", str((spec.server or {})[key])))
    names = list(space.names)
    extra = ("port",) if server else ()
    for name in (CONFIG_JSON, PYTHON, *extra):
        if name in space:
            what = {CONFIG_JSON: "the whole configuration as JSON",
                    PYTHON: "the tuner's Python interpreter"}.get(name, "the trial's port")
            raise Invalid(join("space", name), f"the name {name!r} is reserved: {{{name}}} in "
                          f"the {spec.kind} evaluator's templates is {what}; rename the "
                          f"parameter (e.g. {name}_value)")
    for at, text in items:
        for name in _placeholders(text, at):
            if name not in (CONFIG_JSON, PYTHON, *extra) and name not in space:
                raise Invalid(at, f"unknown placeholder {{{name}}}"
                              f"{suggest(name, [*names, CONFIG_JSON, PYTHON])}; "
                              f"placeholders must name a parameter of space "
                              f"({', '.join(names)}) or be {{{CONFIG_JSON}}} or "
                              f"{{{PYTHON}}} (the tuner's interpreter); write {{{{ and }}}} "
                              f"for literal braces")


def _placeholders(text: str, at: str) -> list[str]:
    """The placeholder names of the template ``text``; raises on a malformed template."""
    braces = "write {{ and }} for literal braces"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise Invalid(at, f"{show(text)}: {exc}; {braces}") from None
    out: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name:
            raise Invalid(at, f"{show(text)} has an empty placeholder {{}}; put a parameter "
                          f"name inside the braces, or {braces}")
        if conversion:
            raise Invalid(at, f"{show(text)}: the conversion !{conversion} is not "
                          f"supported; write {{{name}}}")
        if spec and "{" in spec:
            raise Invalid(at, f"{show(text)}: nested placeholders in a format spec are not "
                          f"supported; write {{{name}}} or {{{name}:.3g}}")
        out.append(name)
    return out


def _import_target(target: str, base_dir: Path) -> Callable[..., Any]:
    """Import ``module:function`` in this process, the spec's folder first on ``sys.path``."""
    module_name, _, attr = target.partition(":")
    folder = str(base_dir)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    fix = ("check the module path (relative to the spec's folder) and that the module imports "
           "cleanly")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise Invalid("evaluator.python", f"cannot import {show(module_name)} "
                      f"({one_line(str(exc))}); {fix}") \
            from None
    except (Exception, SystemExit) as exc:
        raise Invalid("evaluator.python", f"importing {show(module_name)} failed "
                      f"({type(exc).__name__}: {one_line(str(exc))}); {fix}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:
            raise Invalid("evaluator.python", f"module {show(module_name)} has no "
                          f"attribute {show(attr)}; check the function's name") from None
    if not callable(obj):
        raise Invalid("evaluator.python", f"{show(target)} is not a function; name a function "
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
        raise _evaluator_error(exc, "evaluator.python") from None


def _command_evaluator(spec: EvaluatorSpec) -> CommandEvaluator:
    """A command evaluator of the spec's argv (nothing run yet)."""
    from deploytune.evaluators.command import CommandEvaluator

    argv = [a if isinstance(a, str) else list(a) for a in spec.argv]
    try:
        return CommandEvaluator(argv, env=spec.env, cwd=spec.cwd, timeout_s=spec.timeout_s,
                                memory_mb=spec.memory_mb, metrics_file=spec.metrics_file)
    except (TypeError, ValueError) as exc:
        raise _evaluator_error(exc, "evaluator.command") from None


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
        raise _evaluator_error(exc, "evaluator.server") from None


def build_evaluator(spec: EvaluatorSpec, base_dir: Path) -> Evaluator:
    """A fresh evaluator as described by ``spec``; see :meth:`Spec.build_evaluator`."""
    if spec.kind == "command":
        return _command_evaluator(spec)
    if spec.kind == "server":
        return _server_evaluator(spec)
    if spec.isolate:
        return _isolated(spec, base_dir)
    from deploytune.evaluators.base import FunctionEvaluator

    assert spec.target is not None
    return FunctionEvaluator(_import_target(spec.target, base_dir))
