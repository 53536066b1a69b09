"""How the summaries write numbers, durations, parameter values and aligned ``key  value``
lines (shared by the plain-text summary, the HTML report and the command line)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["fmt_num", "fmt_seconds", "kv_lines", "last_line", "param_text"]


def fmt_num(v: float | None) -> str:
    """Format a number compactly (``"23.4"``, ``"1.2e+06"``, ``"nan"``); ``""`` for ``None``.

    Args:
        v: The number.

    Returns:
        Its short text.
    """
    if v is None:
        return ""
    return f"{v:.6g}"


def fmt_seconds(s: float) -> str:
    """Format a duration for humans: ``"0.42 ms"``, ``"12.3 s"``, ``"4.2 min"``, ``"1.5 h"``.

    Args:
        s: Seconds.

    Returns:
        The duration as text.
    """
    if not math.isfinite(s):
        return f"{s} s"
    if abs(s) < 1:
        return f"{s * 1000:.3g} ms"
    if abs(s) < 120:
        return f"{s:.1f} s"
    if abs(s) < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def param_text(v: Any) -> str:
    """A parameter value, shown exactly (``str`` of a float is its shortest exact form)."""
    return str(v)


def last_line(text: str | None, limit: int = 160) -> str | None:
    """The last non-blank line of ``text`` (an error message), cut to ``limit`` characters;
    ``None`` for no text."""
    if not text:
        return None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def kv_lines(items: Iterable[tuple[str, str]], indent: str = "    ") -> list[str]:
    """``key  value`` lines, the values aligned after the longest key."""
    pairs = list(items)
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {v}" for k, v in pairs]
