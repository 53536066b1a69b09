"""Configurations as rows of a float matrix, for the samplers' models (forests, classifiers).

Categorical parameters are one-hot blocks (all zeros when inactive); integers and floats are
scaled to [0, 1], on a log scale where declared, and an inactive one is :data:`INACTIVE`
(below the range, so a tree split never mixes "inactive" with "active").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deploytune.space import Categorical, Config, Float, Int, Param, Space

__all__ = ["INACTIVE", "ConfigEncoder", "same_value"]

INACTIVE = -1.0
"""The encoded value of an inactive numeric parameter."""


def same_value(a: Any, b: Any) -> bool:
    """Whether two parameter values are equal (``True`` is not ``1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


class ConfigEncoder:
    """Configurations to rows of a float matrix (one-hot categoricals, unit-scaled numbers)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.offsets: list[int] = []
        width = 0
        for p in space.params:
            self.offsets.append(width)
            width += len(p.choices) if isinstance(p, Categorical) else 1
        self.width = width

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
            else:
                v = p.low + int(u * (p.high - p.low + 1))
            return int(min(p.high, max(p.low, v)))
        if p.log:
            return float(min(hi, max(lo, math.exp(math.log(lo) + u * (math.log(hi)
                                                                       - math.log(lo))))))
        return float(min(hi, max(lo, lo + u * (hi - lo))))

    def encode(self, configs: Sequence[Config]) -> np.ndarray:
        """One row per configuration; inactive (absent) parameters are imputed."""
        x = np.zeros((len(configs), self.width))
        for j, p in enumerate(self.space.params):
            col = self.offsets[j]
            if isinstance(p, Categorical):
                for i, c in enumerate(configs):
                    if p.name in c:
                        k = next((k for k, ch in enumerate(p.choices) if same_value(ch, c[p.name])),
                                 None)
                        if k is not None:
                            x[i, col + k] = 1.0
            else:
                assert isinstance(p, (Int, Float))
                for i, c in enumerate(configs):
                    x[i, col] = self.to_unit(p, c[p.name]) if p.name in c else INACTIVE
        return x
