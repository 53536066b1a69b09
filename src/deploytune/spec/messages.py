"""Wording of error messages: short reprs, kinds of values, field paths and suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from deploytune.spec.schema import PLAIN_KEY_RE


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


def join(path: str, key: Any) -> str:
    """``path.key``, or ``path[<repr>]`` for keys that do not read as plain names."""
    if isinstance(key, str) and PLAIN_KEY_RE.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{show(key, 40)}]"


def suggest(word: Any, choices: Sequence[str]) -> str:
    """`` did you mean 'x'?`` or nothing."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    low = word.lower().strip()
    if not close:
        close = [c for c in choices if c.lower() == low]
    if not close and len(low) >= 2:
        close = [c for c in choices if c.lower().startswith(low)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""
