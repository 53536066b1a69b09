"""The per-trial limits the evaluators take (time, memory, kept log): checked and described
the same way by each of them.

Example:
    >>> positive_limit("timeout_s", 60), describe_limits(60.0, None)
    (60.0, '60 s')
"""

from __future__ import annotations

from typing import Any

from deploytune.setting_error import SettingError, finite_number, show

__all__ = ["check_log_tail_bytes", "describe_limits", "positive_limit"]

_UNITS = {"timeout_s": "seconds", "memory_mb": "megabytes"}
"""The unit of each limit, as its error names it."""


def positive_limit(name: str, value: Any) -> float | None:
    """The limit ``name`` (``timeout_s`` or ``memory_mb``) as a float; ``None`` for none.

    Raises:
        SettingError: At ``(name,)``: ``value`` is not a finite number > 0.
    """
    if value is None:
        return None
    number = finite_number(value)
    if number is None or number <= 0:
        raise SettingError((name,), f"must be a positive number of "
                           f"{_UNITS.get(name, 'units')} (got {show(value)})")
    return number


def check_log_tail_bytes(value: Any) -> int:
    """``value``, how many bytes of a log's end to keep.

    Raises:
        SettingError: At ``("log_tail_bytes",)``: ``value`` is not a positive integer.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingError(("log_tail_bytes",), f"must be a positive integer (got {show(value)})")
    return value


def describe_limits(timeout_s: float | None, memory_mb: float | None) -> str:
    """``60 s, 4096 MB`` or ``no time limit``: the limits as an evaluator's description
    shows them."""
    limits = [f"{timeout_s:g} s" if timeout_s is not None else "no time limit"]
    if memory_mb is not None:
        limits.append(f"{memory_mb:g} MB")
    return ", ".join(limits)
