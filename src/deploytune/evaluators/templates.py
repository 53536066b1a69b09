"""Argument templates: ``"--batch={batch_size}"`` rendered for one configuration.

The template engine of the command and server evaluators (the rules are in
:mod:`deploytune.evaluators.command`'s docstring): :class:`Template` parses one templated
string once and renders it for a configuration; :class:`ArgvTemplate` is a whole command (its
argv, with groups, and its environment) rendered the same way for both evaluators;
:func:`check_placeholders` checks that every placeholder of some templates names a parameter
of a space; :func:`format_value` is the text of one value. Nothing here runs anything: a
rendered template is one argument, never shell text. A malformed template is a
:class:`~deploytune.setting_error.SettingError` at its place in the evaluator's settings
(``("argv", 1)``, ``("env", "X")``).

Example:
    >>> Template("--batch={batch_size}", "argv[1]").render({"batch_size": 16}, lambda: "{}")
    '--batch=16'
    >>> ArgvTemplate(["python", "bench.py", ["--lr", "{lr}"]]).render({})
    (['python', 'bench.py'], {})
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import string
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deploytune.evaluators._child import to_jsonable
from deploytune.setting_error import SettingError, show, suggest

if TYPE_CHECKING:
    from deploytune.space import Space

__all__ = [
    "CONFIG_JSON",
    "PYTHON",
    "SPECIAL_PLACEHOLDERS",
    "ArgvTemplate",
    "Template",
    "check_metrics_file",
    "check_placeholders",
    "config_json_of",
    "format_value",
]

CONFIG_JSON = "config_json"
"""The placeholder replaced by the whole configuration as JSON."""

PYTHON = "python"
"""The placeholder replaced by the tuner's Python interpreter (``sys.executable``)."""

SPECIAL_PLACEHOLDERS = (CONFIG_JSON, PYTHON)
"""Placeholders that are not parameters (:func:`check_placeholders` refuses a parameter of the
same name; unchecked, the parameter's value would be used)."""

_NAME_RE = re.compile(r"^[A-Za-z_][\w.\-]*$")

_MEANINGS = {CONFIG_JSON: "the whole configuration as JSON",
             PYTHON: "the tuner's Python interpreter"}
"""What each special placeholder stands for, in the message refusing a parameter of its name."""

_BRACES = "write {{ and }} for literal braces"
"""The fix of a stray brace, in the messages of malformed templates."""


def format_value(value: Any, spec: str) -> str:
    """The text of one parameter value in an argument (see
    :mod:`deploytune.evaluators.command`): ``spec`` applied by :func:`format` when given."""
    if spec:
        return format(value, spec)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, str):
        return value
    item = getattr(value, "item", None)  # a numpy scalar
    if callable(item):
        with contextlib.suppress(Exception):
            plain = item()
            if isinstance(plain, (bool, int, float, str)):
                return format_value(plain, "")
    return str(value)


class Template:
    """One templated string: literal text and ``{name[:spec]}`` fields.

    Args:
        text: The template.
        where: How messages name it (``argv[1]``, ``env['X']``).
        path: Where it is in its evaluator's settings (``("argv", 1)``), for the error of a
            malformed template; default: nowhere (``where`` names it).
        any_name: Take any field name (``{0}``, ``{a b}``) for a placeholder's name, leaving
            it to :func:`check_placeholders`, which finds no parameter of that name (the
            spec's checks, which call it an unknown placeholder); by default such a field is
            refused here.

    Raises:
        SettingError: A malformed template (at ``path``, naming the fix; ``str()`` starts
            with ``where``).
    """

    def __init__(self, text: Any, where: str, path: Sequence[Any] = (), *,
                 any_name: bool = False):
        self.where = where
        self.path = tuple(path)
        self._any_name = any_name
        if not isinstance(text, str):
            raise self._error(f"must be a string, got {type(text).__name__} {text!r}")
        if "\x00" in text:
            raise self._error(f"{text!r} contains a NUL character, which no argument can "
                              f"hold; remove it")
        self.text = text
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise self._error(f"{show(text)}: {exc}; {_BRACES}") from None
        pieces: list[tuple[str, str | None, str]] = []
        for literal, name, spec, conversion in parsed:
            if name is None:
                pieces.append((literal, None, ""))
                continue
            self._check_field(name, spec, conversion)
            pieces.append((literal, name, spec or ""))
        self.pieces = tuple(pieces)
        self.names = tuple(dict.fromkeys(n for _, n, _ in pieces if n is not None))

    def _error(self, message: str) -> SettingError:
        """The error of this template, at its path."""
        return SettingError(self.path, message, self.where)

    def _check_field(self, name: str, spec: str | None, conversion: str | None) -> None:
        """Refuse a ``{...}`` field of the text that is not a placeholder this engine
        renders."""
        text = self.text
        if not name:
            raise self._error(f"{show(text)} has an empty placeholder {{}}; put a parameter "
                              f"name inside the braces, or {_BRACES}")
        if not self._any_name and not _NAME_RE.match(name):
            fixed = text.replace("{", "{{").replace("}", "}}")
            raise self._error(f"{text!r}: {{{name}...}} is not a placeholder (placeholders "
                              f"name a parameter, e.g. {{batch_size}}); for literal braces "
                              f"write {{{{ and }}}}: {fixed!r}")
        if conversion:
            raise self._error(f"{show(text)}: the conversion !{conversion} is not supported; "
                              f"write {{{name}}}")
        if spec and "{" in spec:
            raise self._error(f"{show(text)}: nested placeholders in a format spec are not "
                              f"supported; write {{{name}}} or {{{name}:.3g}}")

    def render(self, config: Mapping[str, Any], config_json: Callable[[], str]) -> str | None:
        """The text for ``config``; ``None`` when a referenced parameter is inactive."""
        out: list[str] = []
        for literal, name, spec in self.pieces:
            out.append(literal)
            if name is None:
                continue
            if name == CONFIG_JSON and name not in config:
                out.append(format(config_json(), spec) if spec else config_json())
                continue
            if name == PYTHON and name not in config:
                out.append(format(sys.executable, spec) if spec else sys.executable)
                continue
            value = config.get(name)
            if value is None:
                return None
            try:
                out.append(format_value(value, spec))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.where} {self.text!r}: cannot format {name} = "
                                 f"{value!r} with {{{name}:{spec}}}: {exc}") from None
        return "".join(out)


def config_json_of(config: Mapping[str, Any]) -> Callable[[], str]:
    """The ``config_json`` argument of :meth:`Template.render`: ``config`` as one JSON
    object, made once, when first asked for."""
    cache: list[str] = []

    def config_json() -> str:
        if not cache:
            cache.append(json.dumps(dict(config), default=to_jsonable))
        return cache[0]

    return config_json


class ArgvTemplate:
    """A command to render per configuration: its argv (strings and groups) and environment.

    Args:
        argv: A list of templates and groups (lists of templates, kept or dropped as a
            whole); ``argv[0]`` is the program.
        env: Environment variables (templates); one referring to an inactive parameter is
            not set.

    Raises:
        SettingError: At ``("argv",)``, ``("argv", i)``, ``("argv", i, j)`` or
            ``("env", name)``.
    """

    def __init__(self, argv: Sequence[str | Sequence[str]],
                 env: Mapping[str, str] | None = None):
        if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence) or not argv:
            shown = f"; write e.g. {argv.split()!r}" if isinstance(argv, str) else ""
            raise SettingError(("argv",), f"must be a non-empty list of arguments (never a "
                               f"shell line), got {type(argv).__name__}{shown}")
        if not isinstance(argv[0], str) or not argv[0]:
            raise SettingError(("argv", 0), "must be the program to run, a non-empty string "
                               "such as 'python' or './bench.sh'")
        items: list[Template | tuple[Template, ...]] = []
        for i, item in enumerate(argv):
            if isinstance(item, str):
                items.append(Template(item, f"argv[{i}]", ("argv", i)))
            elif isinstance(item, Sequence) and not isinstance(item, bytes) and item:
                items.append(tuple(Template(x, f"argv[{i}][{j}]", ("argv", i, j))
                                   for j, x in enumerate(item)))
            else:
                raise SettingError(("argv", i), f"must be a string or a non-empty list of "
                                   f"strings (a group), got {item!r}")
        self.argv = tuple(items)
        if env is not None and not isinstance(env, Mapping):
            raise SettingError(("env",), f"must be a mapping of names to strings, got "
                               f"{type(env).__name__}")
        self.env: dict[str, Template] = {}
        for key, value in (env or {}).items():
            if not isinstance(key, str) or not key or "=" in key:
                raise SettingError(("env", key), f"the name {key!r} is not a valid "
                                   f"environment variable name")
            self.env[key] = Template(value, f"env[{key!r}]", ("env", key))

    @property
    def program(self) -> Template:
        """``argv[0]``, the program."""
        first = self.argv[0]
        assert isinstance(first, Template)
        return first

    def templates(self) -> list[Template]:
        """Every template: the argv's, groups opened, then the environment's."""
        out: list[Template] = []
        for item in self.argv:
            out.extend(item if isinstance(item, tuple) else (item,))
        out.extend(self.env.values())
        return out

    def render(self, config: Mapping[str, Any], config_json: Callable[[], str] | None = None
               ) -> tuple[list[str], dict[str, str]]:
        """The argv and the environment variables for ``config``; ``config_json`` gives
        ``{config_json}`` (default: :func:`config_json_of` ``config``).

        Raises:
            ValueError: A value cannot be formatted, or ``argv[0]`` refers to an inactive
                parameter.
        """
        if config_json is None:
            config_json = config_json_of(config)
        argv: list[str] = []
        for item in self.argv:
            if isinstance(item, tuple):
                texts = [t.render(config, config_json) for t in item]
                if all(t is not None for t in texts):
                    argv.extend(t for t in texts if t is not None)
                continue
            text = item.render(config, config_json)
            if text is not None:
                argv.append(text)
            elif item is self.program:
                raise ValueError(f"argv[0] {item.text!r} refers to a parameter that is "
                                 f"inactive in this configuration")
        env: dict[str, str] = {}
        for key, tpl in self.env.items():
            value = tpl.render(config, config_json)
            if value is not None:
                env[key] = value
        return argv, env

    def line(self, limit: int = 60) -> str:
        """The argv's templates as one line, cut to ``limit`` characters (for descriptions)."""
        words: list[str] = []
        for item in self.argv:
            words.extend(t.text for t in (item if isinstance(item, tuple) else (item,)))
        line = " ".join(words)
        return line[:limit - 3] + "..." if len(line) > limit else line

    def check_program(self, cwd: str | None) -> None:
        """Verify that the program can be found and executed (a templated one is not
        checked), and that ``cwd`` (default: the current folder) exists.

        Raises:
            SettingError: At ``("argv", 0)`` or ``("cwd",)``, naming the program and the fix.
        """
        base = cwd or os.getcwd()
        if not os.path.isdir(base):
            raise SettingError(("cwd",), f"{base!r} is not an existing directory")
        if self.program.names:
            return  # {python}, the tuner's own interpreter, or a parameter's value
        prog = self.program.render({}, str)
        assert prog is not None
        at = ("argv", 0)
        if os.sep in prog or (os.altsep is not None and os.altsep in prog):
            path = os.path.join(base, prog)
            if not os.path.exists(path):
                raise SettingError(at, f"the program {prog!r} does not exist (looked for "
                                   f"{path}; relative paths start at cwd)")
            if os.path.isdir(path) or not os.access(path, os.X_OK):
                raise SettingError(at, f"the program {prog!r} is not executable; run 'chmod "
                                   f"+x {prog}' or name its interpreter first, e.g. "
                                   f"['python', {prog!r}, ...]")
            return
        rendered_path = self.env["PATH"].render({}, str) if "PATH" in self.env else None
        search = rendered_path or os.environ.get("PATH", os.defpath)
        if shutil.which(prog, path=search) is None:
            local = os.path.join(base, prog)
            hint = (f"; it is in {base}: write './{prog}'" if os.path.isfile(local)
                    else "; install it or give its full path")
            raise SettingError(at, f"the program {prog!r} was not found on PATH{hint}")


def check_metrics_file(text: str) -> None:
    """Refuse a ``metrics_file`` template that names a place outside ``cwd`` by itself.

    Raises:
        SettingError: At ``("metrics_file",)``: ``text`` is absolute, starts with ``~`` or
            has a ``..`` component.
    """
    parts = text.replace("\\", "/").split("/")
    if os.path.isabs(text) or text.startswith("~") or ".." in parts:
        raise SettingError(("metrics_file",), f"{text!r} must be a path inside the working "
                           f"directory (no absolute path, no '..'); write e.g. metrics.json "
                           f"or out/metrics-{{batch_size}}.json")


def check_placeholders(templates: Iterable[Template], space: Space,
                       extra: Sequence[str] | Mapping[str, str] = (), *,
                       kind: str = "") -> None:
    """Verify that no parameter of ``space`` is named like a placeholder (``{config_json}``,
    ``{python}`` or one of ``extra``), then that every placeholder of ``templates`` names a
    parameter of ``space`` or is one of those.

    The templates are taken one at a time, in order: a lazy iterable that builds them
    (the spec's checks) gets a malformed template's error in its turn among the unknown
    placeholders.

    Args:
        templates: The templates to check.
        space: The search space.
        extra: The evaluator's own placeholders (the server's ``port``); a mapping gives what
            each stands for, for the message refusing a parameter of its name.
        kind: The evaluator's kind (``"command"``, ``"server"``), as the messages name it.

    Raises:
        SettingError: At the template's path, naming the placeholder, a close name and the
            space's parameters; or at ``("space", name)``, naming the parameter with a
            reserved name.
    """
    names = list(space.names)
    meanings = {**_MEANINGS, **(extra if isinstance(extra, Mapping)
                                else dict.fromkeys(extra, "a value the evaluator fills in"))}
    owner = f"the {kind} evaluator's" if kind else "the evaluator's"
    for name, meaning in meanings.items():
        if name in space:
            raise SettingError(("space", name), f"the name {name!r} is reserved: {{{name}}} "
                               f"in {owner} templates is {meaning}; rename the parameter "
                               f"(e.g. {name}_value)")
    for tpl in templates:
        for name in tpl.names:
            if name not in meanings and name not in space:
                raise tpl._error(
                    f"unknown placeholder {{{name}}}"
                    f"{suggest(name, [*names, *SPECIAL_PLACEHOLDERS])}; placeholders must "
                    f"name a parameter of space ({', '.join(names) or 'none'}) or be "
                    f"{{{CONFIG_JSON}}} or {{{PYTHON}}} (the tuner's interpreter); {_BRACES}")
