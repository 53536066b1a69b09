"""Checking a sampler's settings when it is built, so a bad option fails before any trial.

Options reach a sampler from YAML (``cabo[coverage_until=.nan]``, ``tba[patience=abc]``), so any
type can arrive. :func:`check_settings` holds every field of a settings dataclass to its
annotation (``bool``, ``int``, ``float``, ``str``, ``X | None``, ``tuple[float, ...]``), to
finite numbers, and to the closed ranges and choices its owner declares. The message names the
option and says what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

__all__ = ["OPTUNA_COUNTS", "check_optuna_options", "check_settings"]

Bounds = tuple[float | None, float | None]
"""A closed range ``(low, high)``; ``None`` leaves a side open."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_error(owner: str, name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{owner}: option {name} must be {expected}, got {value!r}")


def _check_value(owner: str, name: str, value: Any, hint: Any) -> None:
    """Hold ``value`` to the annotation ``hint`` (see the module docstring)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        hint = next(h for h in options if h is not type(None))
        origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise _type_error(owner, name, value, "true or false")
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(owner, name, value, "an integer")
    elif hint is float:
        if not _is_number(value) or not math.isfinite(value):
            raise _type_error(owner, name, value, "a finite number")
    elif hint is str:
        if not isinstance(value, str):
            raise _type_error(owner, name, value, "a string")
    elif origin is tuple and not (isinstance(value, (tuple, list)) and value and all(
            _is_number(v) and math.isfinite(v) for v in value)):
        raise _type_error(owner, name, value, "a non-empty list of finite numbers")


def check_settings(settings: Any, *, owner: str,
                   ranges: Mapping[str, Bounds] | None = None,
                   choices: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """Check every field of the dataclass instance ``settings``.

    Args:
        settings: A dataclass instance.
        owner: The sampler's name, for the message.
        ranges: Field name -> closed range of its value (every item of a tuple field).
        choices: Field name -> the strings it accepts.

    Raises:
        ValueError: ``"<owner>: option <name> must be ..., got ..."`` for the first bad field.
    """
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        _check_value(owner, f.name, value, hints[f.name])
        allowed = (choices or {}).get(f.name)
        if allowed is not None and value not in allowed:
            raise _type_error(owner, f.name, value, "one of " + ", ".join(allowed))
        low, high = (ranges or {}).get(f.name, (None, None))
        items = value if isinstance(value, (tuple, list)) else (value,)
        for v in items:
            if v is None:
                continue
            if (low is not None and v < low) or (high is not None and v > high):
                where = (f"between {low:g} and {high:g}" if low is not None and high is not None
                         else f">= {low:g}" if low is not None else f"<= {high:g}")
                raise _type_error(owner, f.name, value, f"a number {where}")


_S = typing.TypeVar("_S")


def settings_from(cls: type[_S], options: Mapping[str, Any], *, owner: str) -> _S:
    """The settings dataclass ``cls`` built from a sampler's ``options`` (its own checks run
    in ``__post_init__``).

    Raises:
        ValueError: ``"<owner>: unknown option(s) ...; choose from ..."`` naming every option
            ``cls`` lacks, or the dataclass's own message for a bad value.
    """
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(sorted(known))}")
    return cls(**options)


OPTUNA_COUNTS: dict[str, int] = {"n_startup_trials": 0, "n_ei_candidates": 1,
                                 "n_min_trials": 1}
"""Counts among the options of Optuna's samplers, with their smallest sensible value (Optuna
accepts ``n_startup_trials=-5`` and goes on)."""


def check_optuna_options(options: Mapping[str, Any], *, owner: str) -> None:
    """Check options passed through to one of Optuna's samplers before Optuna sees them:
    numbers finite, the counts of :data:`OPTUNA_COUNTS` integers at or above their minimum.

    Raises:
        ValueError: ``"<owner>: option <name> must be ..., got ..."``.
    """
    for name, value in options.items():
        if name in OPTUNA_COUNTS:
            low = OPTUNA_COUNTS[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise _type_error(owner, name, value, f"an integer >= {low}")
        elif _is_number(value) and not math.isfinite(value):
            raise _type_error(owner, name, value, "a finite number")
