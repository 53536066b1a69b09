"""The ``objective`` and ``constraints`` sections: what to optimise, what must hold."""

from __future__ import annotations

from typing import Any

from deploytune.outcome import Constraint, Objective
from deploytune.spec.checks import as_mapping, as_string, check_keys
from deploytune.spec.errors import Invalid
from deploytune.spec.messages import kind_of, suggest
from deploytune.spec.schema import OBJECTIVE_KEYS


def parse_objective(raw: Any) -> Objective:
    """The metric to optimise and its direction (default: maximize)."""
    example = "objective: {metric: accuracy, direction: maximize}"
    if isinstance(raw, str):
        metric = as_string(raw, "objective", "a metric name", example)
        return Objective(metric, "maximize")
    d = as_mapping(raw, "objective", f"{example}, objective: {{minimize: p95_ms}} or "
                   f"objective: accuracy")
    check_keys(d, "objective", OBJECTIVE_KEYS)
    short = [k for k in ("maximize", "minimize") if k in d]
    if short:
        others = [k for k in d if k != short[0]]
        if others:
            raise Invalid(f"objective.{others[0]}",
                          f"cannot be combined with {short[0]!r}; write either "
                          f"{{{short[0]}: <metric>}} or {{metric: <metric>, direction: "
                          f"{short[0]}}}")
        metric = as_string(d[short[0]], f"objective.{short[0]}", "a metric name",
                           f"objective: {{{short[0]}: accuracy}}")
        return Objective(metric, short[0])
    if d.get("metric") is None:
        raise Invalid("objective.metric", f"missing; name the metric to optimise, e.g. "
                      f"{example}")
    metric = as_string(d["metric"], "objective.metric", "a metric name", example)
    direction = d.get("direction")
    if direction is None:
        direction = "maximize"
    if direction not in ("maximize", "minimize"):
        raise Invalid("objective.direction", f"must be maximize or minimize, got "
                      f"{kind_of(direction)}{suggest(direction, ['maximize', 'minimize'])}")
    return Objective(metric, str(direction))


def parse_constraints(raw: Any) -> tuple[Constraint, ...]:
    """The hard constraints: one string, or a list of them."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise Invalid("constraints", f"expected a list of strings, got {kind_of(raw)}; "
                      f"write e.g. constraints: [\"p95_ms <= 20\", \"memory_mb <= 512\"]")
    out: list[Constraint] = []
    for i, text in enumerate(raw):
        at = f"constraints[{i}]"
        if not isinstance(text, str):
            raise Invalid(at, f"expected a string such as \"p95_ms <= 20\", got "
                          f"{kind_of(text)}; quote the whole constraint")
        try:
            c = Constraint.parse(text)
        except ValueError as exc:
            raise Invalid(at, _strip_prefix(str(exc), "constraint ")) from None
        for j, other in enumerate(out):
            if (other.metric, other.op) == (c.metric, c.op):
                raise Invalid(at, f"{c.metric!r} already has a '{c.op}' constraint "
                              f"(constraints[{j}]); keep only the tighter one")
        out.append(c)
    return tuple(out)


def _strip_prefix(text: str, prefix: str) -> str:
    """``text`` without ``prefix`` at its start."""
    return text[len(prefix):] if text.startswith(prefix) else text
