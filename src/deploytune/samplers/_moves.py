"""Moves shared by the forest-based samplers (``smac``, ``cabo``): one-parameter moves around
a configuration for their local searches, and random draws that avoid what was evaluated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deploytune.samplers._encoding import ConfigEncoder, is_ordinal, same_value
from deploytune.space import Categorical, Config, Float, Int, Space

_Key = tuple[tuple[str, Any], ...]

__all__ = ["draw_unseen", "one_exchange_neighbours"]


def one_exchange_neighbours(space: Space, encoder: ConfigEncoder, config: Config,
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
        values: list[Any] = []
        if isinstance(p, Categorical):
            if ordinal and is_ordinal(p):
                ordered = sorted(p.choices)
                r = next((k for k, c in enumerate(ordered) if c == config[p.name]), None)
                if r is not None:
                    values = [ordered[j] for j in (r - 1, r + 1) if 0 <= j < len(ordered)]
            else:
                values = [c for c in p.choices if not same_value(c, config[p.name])]
                if len(values) > max_nominal:
                    idx = rng.choice(len(values), max_nominal, replace=False)
                    values = [values[int(k)] for k in sorted(idx)]
        else:
            assert isinstance(p, (Int, Float))
            if p.high <= p.low:
                continue
            u = encoder.to_unit(p, config[p.name])
            for step in rng.normal(0.0, 1.0, len(sds)) * sds:
                v = encoder.from_unit(p, u + float(step))
                if isinstance(p, Int) and v == int(config[p.name]):
                    v = p.snap(v + (p.step or 1) * (1 if step > 0 else -1))
                if v != config[p.name]:
                    values.append(v)
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
