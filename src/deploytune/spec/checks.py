"""Validators of single values, shared by the sections; each raises :class:`Invalid`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploytune.spec.errors import Invalid
from deploytune.spec.messages import join, kind_of, show, suggest
from deploytune.spec.schema import MAX_DEPTH, MISPLACED


def is_number(v: Any) -> bool:
    """Whether ``v`` is an int or a float (a bool is not a number here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def safe_float(v: Any) -> float:
    """``float(v)``, or infinity where that fails."""
    try:
        return float(v)
    except (OverflowError, TypeError, ValueError):
        return math.inf


def is_dir(path: Path) -> bool:
    """Whether ``path`` is a folder; ``False`` for a name the system rejects."""
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL byte, ...
        return False


def check_keys(raw: Mapping[Any, Any], path: str, allowed: Sequence[str]) -> None:
    """Reject unknown keys, suggesting the closest valid one."""
    for key in raw:
        if isinstance(key, str) and key in allowed:
            continue
        where = MISPLACED.get(path, {}).get(key) if isinstance(key, str) else None
        at = join(path, key)
        if where is not None:
            raise Invalid(at, f"{key!r} does not belong here; move it under {where}")
        if not isinstance(key, str):
            raise Invalid(at, f"keys must be strings, got {kind_of(key)}; valid keys here "
                          f"are {', '.join(allowed)}")
        raise Invalid(at, f"unknown key {key!r}{suggest(key, allowed)}; valid keys here are "
                      f"{', '.join(allowed)}")


def as_mapping(raw: Any, path: str, example: str) -> Mapping[Any, Any]:
    """``raw`` if it is a mapping; ``example`` shows how to write one."""
    if not isinstance(raw, Mapping):
        raise Invalid(path, f"expected a mapping, got {kind_of(raw)}; write e.g. {example}")
    return raw


def as_string(raw: Any, path: str, what: str, example: str) -> str:
    """``raw`` stripped, if it is a non-empty string without NUL characters."""
    if not isinstance(raw, str):
        raise Invalid(path, f"expected {what}, got {kind_of(raw)}; write e.g. {example}")
    text = raw.strip()
    if not text:
        raise Invalid(path, f"is empty; give {what}, e.g. {example}")
    if "\x00" in text:
        raise Invalid(path, "contains a NUL character; remove it")
    return text


def positive_number(raw: Any, path: str, unit: str) -> float:
    """``raw`` as a float, if it is a finite number > 0 (of ``unit``)."""
    if not is_number(raw):
        raise Invalid(path, f"expected a number of {unit}, got {kind_of(raw)}; write e.g. "
                      f"{path.rsplit('.', 1)[-1]}: 60")
    value = safe_float(raw)
    if not math.isfinite(value) or value <= 0:
        raise Invalid(path, f"must be a finite number of {unit} > 0 (got {show(raw)}); "
                      f"give a positive value or remove the key")
    return value


def int_at_least(raw: Any, path: str, low: int, high: int, example: int) -> int:
    """``raw``, if it is a whole number from ``low`` to ``high``."""
    key = path.rsplit(".", 1)[-1]
    if isinstance(raw, bool) or not isinstance(raw, int):
        hint = ""
        if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
            hint = f" without a decimal point ({int(raw)})"
        raise Invalid(path, f"expected a whole number, got {kind_of(raw)}; write e.g. "
                      f"{key}: {example}{hint}")
    if not low <= raw <= high:
        raise Invalid(path, f"must be between {low} and {high} (got {show(raw)}); "
                      f"e.g. {key}: {example}")
    return int(raw)


def check_jsonable(value: Any, path: str, depth: int = 0) -> None:
    """Options must be plain YAML data (they are stored in reports as JSON)."""
    if depth > MAX_DEPTH:
        raise Invalid(path, "is nested too deeply (or refers to itself through a YAML alias); "
                      "simplify it")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(path, f"must be a finite number (got {show(value)})")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_jsonable(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise Invalid(join(path, k), f"keys must be strings, got {kind_of(k)}; "
                              f"quote the key")
            check_jsonable(v, join(path, k), depth + 1)
        return
    raise Invalid(path, f"expected plain data (a string, number, boolean, null, list or "
                  f"mapping), got {kind_of(value)}; quote it to make it a string")


MAX_SPEC_VALUES = 1_000_000
"""The most values a spec may expand to. YAML aliases let a short file name one list many
times over (a "billion laughs" document), which every later walk would expand."""


def check_expanded_size(data: Any, limit: int = MAX_SPEC_VALUES) -> None:
    """Refuse a document that expands to more than ``limit`` values, counted without
    expanding it: each shared list or mapping is measured once (by identity).

    Raises:
        Invalid: at the top level, naming the likely cause.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, (list, dict)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            return 1  # refers to itself: the section's own check names the field
        in_progress.add(key)
        items = value.values() if isinstance(value, dict) else value
        total = 1 + (len(value) if isinstance(value, dict) else 0)  # keys count once each
        for item in items:
            total += size(item)
            if total > limit:
                raise Invalid("", f"the spec expands to more than {limit:,} values (a YAML "
                              f"alias repeated inside others?); write it out plainly")
        in_progress.discard(key)
        sizes[key] = total
        return total

    size(data)
