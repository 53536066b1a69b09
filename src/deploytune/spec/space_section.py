"""The ``space`` and ``forbidden`` sections: parameters, their bounds and conditions."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from deploytune.space import MEMORY_DIRECTIONS, Space, all_numbers
from deploytune.spec.checks import as_mapping, check_keys, is_number, safe_float
from deploytune.spec.errors import Invalid
from deploytune.spec.messages import join, kind_of, show, suggest
from deploytune.spec.schema import MAX_INT_BOUND, PARAM_KEYS


def parse_space(raw: Any, forbidden: Any) -> Space:
    """The search space of ``space``, with the ``forbidden`` combinations."""
    example = "space: {batch_size: {type: int, low: 1, high: 64}}"
    params = as_mapping(raw, "space", example)
    if not params:
        raise Invalid("space", f"has no parameters; declare at least one, e.g. {example}")
    declared: list[str] = []
    for name, definition in params.items():
        _param(name, definition, declared, list(params))
        declared.append(name)
    if forbidden is not None:
        _forbidden(forbidden, params)
    try:
        return Space.from_dict(params, forbidden)
    except ValueError as exc:
        raise Invalid(*_space_error_path(str(exc), declared)) from None


def _param(name: Any, d: Any, declared: list[str], all_names: list[Any]) -> None:
    """Check the parameter ``name``: its type, choices or bounds, and ``when``."""
    if not isinstance(name, str) or not name.strip():
        raise Invalid(join("space", name), f"parameter names must be non-empty strings, "
                      f"got {kind_of(name)}; quote the name")
    path = join("space", name)
    d = as_mapping(d, path, f"{name}: {{type: int, low: 1, high: 8}}")
    kind = d.get("type")
    if kind is None:
        raise Invalid(f"{path}.type", "missing; add type: categorical, int or float")
    if not isinstance(kind, str) or kind not in PARAM_KEYS:
        raise Invalid(f"{path}.type", f"must be categorical, int or float, got "
                      f"{kind_of(kind)}{suggest(kind, list(PARAM_KEYS))}")
    check_keys(d, path, PARAM_KEYS[kind])
    if kind == "categorical":
        choices = d.get("choices")
        if not isinstance(choices, list) or not choices:
            raise Invalid(f"{path}.choices", f"expected a non-empty list of values, got "
                          f"{kind_of(choices)}; write e.g. choices: [eager, onnx]")
        _check_choices(choices, f"{path}.choices")
    else:
        _bounds(path, kind, d)
    _memory(path, kind, d)
    when = d.get("when")
    if when is None:
        if "when" in d:
            raise Invalid(f"{path}.when", "is empty; remove it or write e.g. "
                          "when: {backend: [eager]}")
        return
    when = as_mapping(when, f"{path}.when", "when: {backend: [eager]}")
    for parent, allowed in when.items():
        at = join(f"{path}.when", parent)
        if parent == name:
            raise Invalid(at, "a parameter cannot depend on itself; remove this entry")
        if not isinstance(parent, str) or parent not in declared:
            if parent in all_names:
                raise Invalid(at, f"the parent {parent!r} is declared after {name!r}; "
                              f"move {parent!r} above {name!r} in space")
            raise Invalid(at, f"unknown parent {show(parent)}"
                          f"{suggest(parent, declared)}; 'when' must name a parameter "
                          f"declared above {name!r}")
        if allowed is None or (isinstance(allowed, list) and not allowed):
            raise Invalid(at, f"gives no allowed values; write e.g. {parent}: [value]")


def _bounds(path: str, kind: str, d: Mapping[Any, Any]) -> None:
    """Check ``low``, ``high`` and ``log`` of the int / float parameter at ``path``."""
    values: dict[str, float] = {}
    for key in ("low", "high"):
        at = f"{path}.{key}"
        if key not in d or d[key] is None:
            raise Invalid(at, f"missing; an {kind} parameter needs low and high, e.g. "
                          f"{{type: {kind}, low: 1, high: 8}}")
        v = d[key]
        if kind == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise Invalid(at, f"expected a whole number, got {kind_of(v)}; write e.g. "
                              f"{key}: 8 (use type: float for fractional bounds)")
            if abs(v) > MAX_INT_BOUND:
                raise Invalid(at, f"is too large (|{key}| must be at most 2**62); "
                              f"use a smaller bound")
            values[key] = float(v)
        else:
            if not is_number(v):
                raise Invalid(at, f"expected a number, got {kind_of(v)}; write e.g. "
                              f"{key}: 0.5")
            f = safe_float(v)
            if not abs(f) < 1e300:
                raise Invalid(at, f"must be a finite number below 1e300 (got {show(v)})")
            values[key] = f
    if values["low"] > values["high"]:
        raise Invalid(f"{path}.low", f"low ({show(d['low'])}) is greater than high "
                      f"({show(d['high'])}); swap them")
    log = d.get("log", False)
    if not isinstance(log, bool):
        raise Invalid(f"{path}.log", f"expected true or false, got {kind_of(log)}")
    if log and values["low"] <= 0:
        raise Invalid(f"{path}.low", f"a log-scale parameter needs low > 0 (got "
                      f"{show(d['low'])}); raise low or remove log: true")
    step = d.get("step")
    if step is None:
        return
    at = f"{path}.step"
    if kind == "int" and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
        raise Invalid(at, f"expected a whole number >= 1, got {show(step)}; write e.g. "
                      f"step: 8")
    if kind == "float" and not (is_number(step) and 0 < safe_float(step) < 1e300):
        raise Invalid(at, f"expected a positive number, got {show(step)}; write e.g. "
                      f"step: 0.05")
    if log:
        raise Invalid(at, "cannot be combined with log: true; remove one of them")
    k = (values["high"] - values["low"]) / safe_float(step)
    if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
        fixed = values["low"] + math.floor(k + 1e-9) * safe_float(step)
        raise Invalid(f"{path}.high", f"high - low is not a multiple of step "
                      f"({show(step)}); set high to {fixed:g}")


def _memory(path: str, kind: str, d: Mapping[Any, Any]) -> None:
    """Check the optional ``memory: increasing | decreasing`` of the parameter at ``path``."""
    if "memory" not in d:
        return
    memory = d["memory"]
    if memory not in MEMORY_DIRECTIONS:
        raise Invalid(f"{path}.memory", f"must be increasing (a larger value needs more "
                      f"memory) or decreasing, got {show(memory)}; remove it when neither "
                      f"holds")
    if kind == "categorical" and not all_numbers(d["choices"]):
        raise Invalid(f"{path}.memory", "needs ordered values: every choice must be a "
                      "number (e.g. choices: [1024, 4096, 16384]); remove memory or use "
                      "type: int")


def _forbidden(raw: Any, params: Mapping[Any, Any]) -> None:
    """Check that each forbidden combination names parameters of the space."""
    if not isinstance(raw, list):
        raise Invalid("forbidden", f"expected a list of combinations, got "
                      f"{kind_of(raw)}; write e.g. forbidden: [{{backend: [onnx], "
                      f"threads: [8]}}]")
    names = [n for n in params if isinstance(n, str)]
    for i, rule in enumerate(raw):
        at = f"forbidden[{i}]"
        if not isinstance(rule, Mapping) or not rule:
            raise Invalid(at, f"expected a non-empty mapping parameter -> [values], got "
                          f"{kind_of(rule)}; write e.g. {{backend: [onnx], threads: [8]}}")
        for name, values in rule.items():
            if not isinstance(name, str) or name not in params:
                raise Invalid(join(at, name), f"unknown parameter {show(name)}"
                              f"{suggest(name, names)}; name a parameter of space")
            if values is None or (isinstance(values, list) and not values):
                raise Invalid(join(at, name), f"gives no values; write e.g. "
                              f"{name}: [value]")


def _check_choices(choices: list[Any], path: str) -> None:
    """Choices are scalars (str, int, finite float, bool, null), each listed once."""
    seen: set[tuple[bool, Any]] = set()
    for i, c in enumerate(choices):
        if not (c is None or isinstance(c, (str, int, float))) or (
                isinstance(c, float) and not math.isfinite(c)):
            raise Invalid(f"{path}[{i}]", f"choices must be str, int, finite float, bool or "
                          f"None, got {kind_of(c)}; quote it to make it a string")
        key = (isinstance(c, bool), c)  # true and 1 are different choices, 1 and 1.0 are not
        if key in seen:
            raise Invalid(f"{path}[{i}]", f"choice {show(c)} is listed twice; remove the "
                          f"duplicate")
        seen.add(key)


def _space_error_path(message: str, names: Sequence[str]) -> tuple[str, str]:
    """Map a ``ValueError`` of :class:`Space` to ``(field path, message)``."""
    m = re.match(r"forbidden combination #(\d+): (.*)", message, re.DOTALL)
    if m:
        return f"forbidden[{m[1]}]", m[2]
    for name in sorted(names, key=len, reverse=True):
        prefix = f"parameter {name!r}: "
        if message.startswith(prefix):
            rest = message[len(prefix):]
            path = join("space", name)
            for key in ("choices", "low", "high", "log", "when", "type"):
                if rest.startswith((f"'{key}'", f"{key} ")):
                    return f"{path}.{key}", rest
            return path, rest
    if message.startswith("forbidden: "):
        return "forbidden", message[len("forbidden: "):]
    return "space", message
