"""Configurations as rows of a float matrix, for the samplers' models (forests, classifiers).

Categorical parameters are one-hot blocks (all zeros when inactive); integers and floats are
scaled to [0, 1], on a log scale where declared, and an inactive one is :data:`INACTIVE`
(below the range, so a tree split never mixes "inactive" with "active").

With ``ordinal=True``, a categorical parameter whose choices are all numbers (``max_num_seqs``
in {64, 128, 256}, ``tensor_parallel_size`` in {1, 2, 4}) is one column holding the rank of
its value among the sorted choices, scaled to [0, 1]: "OOM above 128 sequences" is then one
split of a tree instead of a union of one-hot columns. Booleans and strings stay one-hot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deploytune.parameters import same_value
from deploytune.space import Categorical, Config, Float, Int, Param, Space

__all__ = ["INACTIVE", "ConfigEncoder", "is_ordinal", "ordinal_rank", "same_value"]

INACTIVE = -1.0
"""The encoded value of an inactive numeric parameter."""


_SCALARS = frozenset({bool, int, float, str, type(None)})


def _lookup_key(value: Any) -> tuple[bool, Any]:
    """A dict key under which equal values meet as :func:`same_value` says (``True`` is not
    ``1``); unhashable values never match."""
    if type(value) in _SCALARS:
        return (type(value) is bool, value)
    try:
        hash(value)
    except TypeError:
        return (False, object())
    return (isinstance(value, bool), value)


def is_ordinal(p: Param) -> bool:
    """Whether ``p`` is a categorical parameter whose choices are all numbers (not booleans):
    its choices have a natural order, that of their values."""
    return isinstance(p, Categorical) and len(p.choices) > 1 and p.is_ordered


def ordinal_rank(p: Categorical, value: Any) -> int | None:
    """Rank of ``value`` among the sorted numeric choices of ``p`` (``None`` if absent)."""
    ordered = sorted(p.choices)
    return next((k for k, c in enumerate(ordered) if c == value), None)


class ConfigEncoder:
    """Configurations to rows of a float matrix (one-hot categoricals, unit-scaled numbers).

    Args:
        space: The search space.
        ordinal: Encode numeric categoricals as one rank column (see the module docstring).
    """

    def __init__(self, space: Space, ordinal: bool = False) -> None:
        self.space = space
        self.ordinal = ordinal
        self.offsets: list[int] = []
        width = 0
        for p in space.params:
            self.offsets.append(width)
            if isinstance(p, Categorical) and not (ordinal and is_ordinal(p)):
                width += len(p.choices)
            else:
                width += 1
        self.width = width
        self.ordered_columns: list[int] = [
            self.offsets[j] for j, p in enumerate(space.params)
            if not isinstance(p, Categorical) or (ordinal and is_ordinal(p))]
        """Columns of the ordered parameters (numbers, and numeric choice lists when
        ``ordinal``): one column each, where a larger value is further along the parameter."""
        ordered_set = set(self.ordered_columns)
        self.nominal_columns: list[int] = [j for j in range(width) if j not in ordered_set]
        """The other columns: the one-hot blocks of unordered categorical values (what makes a
        configuration's *region*, :mod:`deploytune.samplers._chance`)."""
        # value -> one-hot column (or rank) per categorical, keyed so that True is not 1
        self._lookup: list[dict[tuple[bool, Any], int]] = []
        for p in space.params:
            table: dict[tuple[bool, Any], int] = {}
            if isinstance(p, Categorical):
                ordered = sorted(p.choices) if ordinal and is_ordinal(p) else p.choices
                for k, ch in enumerate(ordered):
                    table.setdefault(_lookup_key(ch), k)
            self._lookup.append(table)

    @staticmethod
    def to_unit(p: Int | Float, value: Any) -> float:
        """``value`` of the numeric ``p`` scaled to [0, 1] (log-scaled when ``p.log``)."""
        lo, hi, v = float(p.low), float(p.high), float(value)
        if hi <= lo:
            return 0.5
        if p.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, float(p.low)))
        return min(1.0, max(0.0, (v - lo) / (hi - lo)))

    @staticmethod
    def from_unit(p: Param, u: float) -> Any:
        """The value of ``p`` at unit coordinate ``u`` (inverse of :meth:`to_unit`)."""
        u = min(1.0, max(0.0, float(u)))
        if isinstance(p, Categorical):
            return p.choices[min(len(p.choices) - 1, int(u * len(p.choices)))]
        assert isinstance(p, (Int, Float))
        lo, hi = float(p.low), float(p.high)
        if isinstance(p, Int):
            if p.log:
                v = round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
            elif p.step is not None:
                n = (p.high - p.low) // p.step + 1  # grid points, each an equal share of u
                v = p.low + min(n - 1, int(u * n)) * p.step
            else:
                v = p.low + int(u * (p.high - p.low + 1))
            return int(min(p.high, max(p.low, v)))
        if p.log:
            return float(min(hi, max(lo, math.exp(math.log(lo) + u * (math.log(hi)
                                                                       - math.log(lo))))))
        return p.snap(lo + u * (hi - lo))

    def encode(self, configs: Sequence[Config]) -> np.ndarray:
        """One row per configuration; inactive (absent) parameters are imputed."""
        x = np.zeros((len(configs), self.width))
        for j, p in enumerate(self.space.params):
            col = self.offsets[j]
            table = self._lookup[j]
            if isinstance(p, Categorical) and self.ordinal and is_ordinal(p):
                top = len(p.choices) - 1
                for i, c in enumerate(configs):
                    r = table.get(_lookup_key(c[p.name])) if p.name in c else None
                    x[i, col] = INACTIVE if r is None else r / top
            elif isinstance(p, Categorical):
                for i, c in enumerate(configs):
                    if p.name in c:
                        k = table.get(_lookup_key(c[p.name]))
                        if k is not None:
                            x[i, col + k] = 1.0
            else:
                assert isinstance(p, (Int, Float))
                for i, c in enumerate(configs):
                    x[i, col] = self.to_unit(p, c[p.name]) if p.name in c else INACTIVE
        return x
