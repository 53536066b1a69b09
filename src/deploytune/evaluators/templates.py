"""Argument templates: ``"--batch={batch_size}"`` rendered for one configuration.

The template engine of the command and server evaluators (the rules are in
:mod:`deploytune.evaluators.command`'s docstring): :class:`Template` parses one templated
string once and renders it for a configuration; :func:`check_placeholders` checks that every
placeholder of some templates names a parameter of a space; :func:`format_value` is the text
of one value. Nothing here runs anything: a rendered template is one argument, never shell
text.

Example:
    >>> Template("--batch={batch_size}", "argv[1]").render({"batch_size": 16}, lambda: "{}")
    '--batch=16'
"""

from __future__ import annotations

import contextlib
import os
import re
import string
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploytune.space import Space

__all__ = [
    "CONFIG_JSON",
    "PYTHON",
    "SPECIAL_PLACEHOLDERS",
    "Template",
    "check_metrics_file",
    "check_placeholders",
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
        where: Where it comes from, for messages (``argv[1]``, ``env['X']``).

    Raises:
        ValueError: A malformed template (naming ``where`` and the fix).
    """

    def __init__(self, text: Any, where: str):
        if not isinstance(text, str):
            raise ValueError(f"evaluator.command: {where} must be a string, got "
                             f"{type(text).__name__} {text!r}")
        if "\x00" in text:
            raise ValueError(f"evaluator.command: {where} {text!r} contains a NUL character, "
                             f"which no argument can hold; remove it")
        self.text = text
        self.where = where
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(f"evaluator.command: {where} {text!r}: {exc}; write {{{{ and }}}} "
                             f"for literal braces") from None
        pieces: list[tuple[str, str | None, str]] = []
        for literal, name, spec, conversion in parsed:
            if name is None:
                pieces.append((literal, None, ""))
                continue
            if not name:
                raise ValueError(f"evaluator.command: {where} {text!r} has an empty "
                                 f"placeholder {{}}; put a parameter name inside the braces, "
                                 f"or write {{{{}}}} for literal braces")
            if not _NAME_RE.match(name):
                fixed = text.replace("{", "{{").replace("}", "}}")
                raise ValueError(f"evaluator.command: {where} {text!r}: {{{name}...}} is not a "
                                 f"placeholder (placeholders name a parameter, e.g. "
                                 f"{{batch_size}}); for literal braces write {{{{ and }}}}: "
                                 f"{fixed!r}")
            if conversion:
                raise ValueError(f"evaluator.command: {where} {text!r}: the conversion "
                                 f"!{conversion} is not supported; write {{{name}}}")
            if spec and "{" in spec:
                raise ValueError(f"evaluator.command: {where} {text!r}: nested placeholders "
                                 f"in a format spec are not supported")
            pieces.append((literal, name, spec or ""))
        self.pieces = tuple(pieces)
        self.names = tuple(dict.fromkeys(n for _, n, _ in pieces if n is not None))

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


def check_metrics_file(text: str) -> None:
    """Refuse a ``metrics_file`` template that names a place outside ``cwd`` by itself.

    Raises:
        ValueError: ``text`` is absolute, starts with ``~`` or has a ``..`` component.
    """
    parts = text.replace("\\", "/").split("/")
    if os.path.isabs(text) or text.startswith("~") or ".." in parts:
        raise ValueError(f"{text!r} must be a path inside the working directory (no absolute "
                         f"path, no '..'); write e.g. metrics.json or "
                         f"out/metrics-{{batch_size}}.json")


def check_placeholders(templates: Iterable[Template], space: Space,
                       extra: Sequence[str] = ()) -> None:
    """Verify that every placeholder of ``templates`` names a parameter of ``space`` (or is
    ``{config_json}``, ``{python}`` or one of ``extra``), and that no parameter is named like
    one of those.

    Raises:
        ValueError: Naming the placeholder, where it is, and the space's parameters.
    """
    names = list(space.names)
    for name in (*SPECIAL_PLACEHOLDERS, *extra):
        if name in names:
            raise ValueError(f"evaluator.command: the parameter name {name!r} is reserved "
                             f"for the placeholder {{{name}}}; rename the parameter")
    for tpl in templates:
        for name in tpl.names:
            if name not in SPECIAL_PLACEHOLDERS and name not in names and name not in extra:
                raise ValueError(
                    f"evaluator.command: unknown placeholder {{{name}}} in {tpl.where} "
                    f"{tpl.text!r}; placeholders must name a parameter of the space "
                    f"({', '.join(names) or 'none'}) or be {{{CONFIG_JSON}}} or "
                    f"{{{PYTHON}}}; write {{{{ and }}}} for literal braces")
