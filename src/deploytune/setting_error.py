"""The error of an invalid setting, the words its messages are made of, and the one number
check every class that takes settings shares (:func:`finite_number`).

Every class that takes settings (a search space's definition, a server's settings, the
early-abort rule, ...) raises :class:`SettingError`: *where* the mistake is, as a path of keys
and indexes (``("space", "batch_size", "low")``), and *what* is wrong and how to fix it, in the
class's own words. Whoever read the settings from a file puts its own path in front (the spec,
:mod:`deploytune.spec`, shows ``evaluator.server.port: ...``). A ``SettingError`` is a
``ValueError``, so ``except ValueError`` keeps catching it.

An invalid *configuration* of a space (a point, not a definition) is a plain ``ValueError`` of
:meth:`deploytune.space.Space.validate`.

Example:
    >>> err = SettingError(("space", "bs", "low"), "must be a whole number", "parameter 'bs'")
    >>> str(err), format_path(err.path)
    ("parameter 'bs': must be a whole number", 'space.bs.low')
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "SettingError",
    "finite_number",
    "format_path",
    "join",
    "kind_of",
    "one_line",
    "show",
    "suggest",
]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
"""Keys that read as names in a path (``a.b``); others are shown in brackets (``a[3]``)."""


class SettingError(ValueError):
    """An invalid setting: where it is and what is wrong.

    Args:
        path: Keys and indexes from the settings' root to the mistake, e.g.
            ``("space", "bs", "low")`` or ``("forbidden", 0)``; empty for the whole.
        message: What is wrong and how to fix it, without the location.
        subject: How ``str()`` names the location for a Python caller (e.g.
            ``"parameter 'bs', low"``); default: the path, as :func:`format_path` writes it.

    Attributes:
        path: As given, as a tuple.
        message: As given.
        subject: As given.
    """

    def __init__(self, path: Sequence[Any], message: str, subject: str = ""):
        super().__init__(tuple(path), message, subject)
        self.path: tuple[Any, ...] = tuple(path)
        self.message = message
        self.subject = subject

    def __str__(self) -> str:
        where = self.subject or format_path(self.path)
        return f"{where}: {self.message}" if where else self.message


def format_path(path: Iterable[Any], start: str = "") -> str:
    """``start`` followed by the keys of ``path``: ``space.bs.low``, ``forbidden[0]``."""
    text = start
    for key in path:
        text = join(text, key)
    return text


def join(path: str, key: Any) -> str:
    """``path.key``, or ``path[<repr>]`` for keys that do not read as plain names."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{show(key, 40)}]"


def show(value: Any, limit: int = 60) -> str:
    """A short, safe ``repr`` for messages."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite int or float, else ``None`` (a bool is not a
    number here, nor an integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def kind_of(value: Any) -> str:
    """How a value reads in messages: 'a string', 'a list', 'true', ..."""
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", bytes: "binary data", set: "a set"}
    for cls, name in names.items():
        if isinstance(value, cls):
            return f"{name} ({show(value, 40)})" if cls in (int, float, str) else name
    return f"a {type(value).__name__}"


def suggest(word: Any, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` or nothing."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    low = word.lower().strip()
    if not close:
        close = [c for c in choices if c.lower() == low]
    if not close and len(low) >= 2:
        close = [c for c in choices if c.lower().startswith(low)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""
