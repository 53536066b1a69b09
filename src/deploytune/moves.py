"""Moves in a search space: the neighbourhoods that local searches step through.

* :func:`neighbor`: one random annealing move (``tba``, :mod:`deploytune.samplers.annealing`;
  :meth:`Space.neighbor <deploytune.space.Space.neighbor>` delegates here): exactly one active
  parameter changes, by a temperature-scaled Gaussian step for a number;
* :func:`one_exchange_neighbours`: every one-parameter move around a configuration, for the
  local searches of the forest-based samplers (``smac``, ``cabo``);
* :func:`draw_unseen`: a random configuration that was not evaluated yet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from deploytune.parameters import Categorical, Float, Int, Param, same_value
from deploytune.space import Config, Space

__all__ = ["UnitScale", "draw_unseen", "neighbor", "numeric_step", "one_exchange_neighbours"]

_Key = tuple[tuple[str, Any], ...]


class UnitScale(Protocol):
    """Maps numeric values to [0, 1] and back (log-scaled where declared), e.g.
    :class:`~deploytune.samplers._encoding.ConfigEncoder`."""

    def to_unit(self, p: Int | Float, value: Any) -> float:
        """``value`` of ``p`` scaled to [0, 1]."""

    def from_unit(self, p: Param, u: float) -> Any:
        """The value of ``p`` at unit coordinate ``u``."""


def neighbor(
    space: Space,
    config: Mapping[str, Any],
    rng: np.random.Generator,
    temperature: float,
    p_structural: float,
    allowed: Mapping[str, Iterable[Any]] | None = None,
) -> Config:
    """One annealing move: change exactly one active parameter, then resolve the hierarchy.

    With probability ``p_structural`` (or when no numeric parameter is active) a categorical
    parameter moves to another value, drawn from ``allowed[name]`` when given (the
    blacklist's allowed values). Otherwise a numeric parameter takes a Gaussian step of scale
    ``0.3 * temperature`` of its range, measured in log space for ``log`` parameters. Integer
    steps are at least 1 (in the parameter's own scale) so a move never stands still.
    """
    active = space.active_params(config)
    structural = [p for p in active if isinstance(p, Categorical) and len(p.choices) > 1]
    numeric = [p for p in active if isinstance(p, (Int, Float)) and p.low < p.high]
    new: Config = dict(config)
    if structural and (not numeric or rng.random() < p_structural):
        p = structural[int(rng.integers(len(structural)))]
        assert isinstance(p, Categorical)
        pool = list(allowed[p.name]) if allowed and p.name in allowed else list(p.choices)
        pool = _other_values(pool, config[p.name])
        if pool:
            new[p.name] = pool[int(rng.integers(len(pool)))]
        return space.complete(new, rng)
    if not numeric:
        return space.complete(new, rng)
    q = numeric[int(rng.integers(len(numeric)))]
    new[q.name] = numeric_step(q, config[q.name], temperature, rng)
    return space.complete(new, rng)


def numeric_step(p: Int | Float, value: Any, temperature: float,
                 rng: np.random.Generator) -> int | float:
    """A Gaussian step of scale ``0.3 * T`` of the (log) range, clipped to the bounds.

    An integer step that rounds back to ``value`` moves one unit (of ``step``) in the drawn
    direction instead; a real step past a bound is reflected, so a move at a bound still
    moves.
    """
    lo, hi, v = float(p.low), float(p.high), float(value)
    if p.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, p.low))
    sigma = max(temperature, 1e-3) * (hi - lo) * 0.3
    step = float(rng.normal(0.0, sigma))
    if isinstance(p, Int):
        candidate = v + step
        out = p.snap(math.exp(candidate) if p.log else candidate)
        unit = p.step or 1
        if out == int(value):  # never stand still: one unit step in the drawn direction
            direction = unit if step > 0 or (step == 0 and rng.random() < 0.5) else -unit
            if not p.low <= out + direction <= p.high:
                direction = -direction
            out = p.snap(out + direction)
        return out
    out_f = v + step
    if out_f > hi or out_f < lo:  # reflect at the bounds so a move at a bound still moves
        out_f = v - step
    out_f = min(hi, max(lo, out_f))
    return float(min(p.high, max(p.low, math.exp(out_f)))) if p.log else p.snap(out_f)


def one_exchange_neighbours(space: Space, encoder: UnitScale, config: Config,
                            rng: np.random.Generator, numeric_sds: Sequence[float],
                            ordinal: bool = False, max_nominal: int = 8) -> list[Config]:
    """Every configuration that differs from ``config`` in one active parameter (the
    hierarchy resolved, forbidden ones left out).

    * a categorical parameter takes each other value (at most ``max_nominal`` of them, drawn
      at random); with ``ordinal``, one whose choices are all numbers moves to the adjacent
      values of its sorted choices only;
    * a number takes ``len(numeric_sds)`` Gaussian steps in unit scale (log scale where
      declared), the k-th with standard deviation ``numeric_sds[k]``; an integer step that
      rounds back to the current value moves by one in the drawn direction.

    Args:
        space: The search space.
        encoder: Provides the unit scale of numeric parameters.
        config: The configuration to move from.
        rng: Source of the random steps and subsets.
        numeric_sds: Standard deviations of the numeric steps (their count is the number of
            steps per numeric parameter).
        ordinal: Move numeric categoricals to adjacent values only.
        max_nominal: Most other values tried for a categorical parameter.

    Returns:
        The neighbours, parameter by parameter in declaration order.
    """
    out: list[Config] = []
    sds = np.asarray(numeric_sds, dtype=float)
    for p in space.active_params(config):
        if isinstance(p, Categorical):
            values = _categorical_moves(p, config[p.name], rng, ordinal, max_nominal)
        else:
            assert isinstance(p, (Int, Float))
            if p.high <= p.low:
                continue
            values = _unit_steps(p, config[p.name], encoder, rng, sds)
        for v in values:
            new = dict(config)
            new[p.name] = v
            if space.is_conditional:
                new = space.complete(new, rng)
            if not space.is_forbidden(new):
                out.append(new)
    return out


def draw_unseen(space: Space, seen: set[_Key], rng: np.random.Generator,
                tries: int) -> tuple[Config, bool]:
    """A random valid configuration whose key is not in ``seen``, drawing at most ``tries``
    more after the first.

    Returns:
        ``(configuration, True)``, or ``(the last configuration drawn, False)`` when every draw
        had been seen.
    """
    config = space.sample(rng)
    for _ in range(tries):
        if space.key(config) not in seen:
            return config, True
        config = space.sample(rng)
    return config, False


def _other_values(values: Sequence[Any], current: Any) -> list[Any]:
    """``values`` without ``current`` (``True`` is not ``1``)."""
    return [v for v in values if not same_value(v, current)]


def _categorical_moves(p: Categorical, current: Any, rng: np.random.Generator, ordinal: bool,
                       max_nominal: int) -> list[Any]:
    """The values a one-exchange move gives ``p``: the adjacent ones of its sorted numeric
    choices (``ordinal``), else up to ``max_nominal`` other choices drawn at random."""
    if ordinal and p.is_ordered:  # one choice: no neighbours either way
        ordered = sorted(p.choices)
        r = next((k for k, c in enumerate(ordered) if c == current), None)
        if r is None:
            return []
        return [ordered[j] for j in (r - 1, r + 1) if 0 <= j < len(ordered)]
    values = _other_values(p.choices, current)
    if len(values) > max_nominal:
        idx = rng.choice(len(values), max_nominal, replace=False)
        values = [values[int(k)] for k in sorted(idx)]
    return values


def _unit_steps(p: Int | Float, current: Any, encoder: UnitScale, rng: np.random.Generator,
                sds: np.ndarray) -> list[Any]:
    """The values of ``len(sds)`` Gaussian steps of ``p`` in unit scale (those that move)."""
    values: list[Any] = []
    u = encoder.to_unit(p, current)
    for step in rng.normal(0.0, 1.0, len(sds)) * sds:
        v = encoder.from_unit(p, u + float(step))
        if isinstance(p, Int) and v == int(current):
            v = p.snap(v + (p.step or 1) * (1 if step > 0 else -1))
        if v != current:
            values.append(v)
    return values
