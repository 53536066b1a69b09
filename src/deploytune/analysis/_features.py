"""Configurations as the feature matrix of the importance forests and rule trees.

Categorical parameters are the samplers' one-hot blocks
(:class:`~deploytune.samplers._encoding.ConfigEncoder`), with an "inactive" indicator column
after the block of a conditional one, so that "this parameter is unset" is a column a tree can
split on. Numeric parameters stay in their own units (an inactive one a number far below the
range), not the encoder's [0, 1] scale: a forest's split falls midway between two observed
values, which decides the trees' votes on values no tree saw (the shuffled copies of the
permutation importance, out-of-bag rows) and is the number a rule states; on the unit (or log)
scale both would move, and the rankings and rules with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploytune.samplers._encoding import ConfigEncoder
from deploytune.space import Categorical, Config, Float, Int, Param, Space

__all__ = ["INACTIVE", "Column", "FeatureMatrix", "is_conditional"]


class _Inactive:
    """The value of a conditional parameter that is not active in a configuration."""

    def __repr__(self) -> str:
        return "(inactive)"


INACTIVE: Any = _Inactive()
"""Stands for "not active" among a categorical parameter's values."""


def is_conditional(p: Param, configs: Sequence[Config]) -> bool:
    """Whether ``p`` may be inactive: it has a ``when``, or a configuration lacks it."""
    return bool(p.when) or any(p.name not in c for c in configs)


@dataclass(frozen=True)
class Column:
    """What one column of a :class:`FeatureMatrix` stands for."""

    param: Param
    value: Any = None
    """For a one-hot column, the category (or :data:`INACTIVE`); ``None`` for a number."""


def _sentinel(p: Int | Float) -> float:
    """The number that stands for "inactive" in the parameter's units: so far below the range
    that the midpoint between it and any active value is below ``low`` too."""
    return float(p.low) - (float(p.high) - float(p.low)) - 1.0


class FeatureMatrix:
    """The encoded configurations (see the module docstring) and what each column holds.

    Attributes:
        matrix: One row per configuration.
        columns: One :class:`Column` per column of ``matrix``.
        groups: Parameter name -> its columns, in space order.
        conditional: Parameter name -> whether it may be inactive (:func:`is_conditional`).
    """

    def __init__(self, space: Space, configs: Sequence[Config]) -> None:
        encoder = ConfigEncoder(space)  # its one-hot blocks; numbers are in their own units
        encoded = encoder.encode(configs)
        self.columns: list[Column] = []
        self.groups: dict[str, list[int]] = {}
        self.conditional: dict[str, bool] = {}
        blocks: list[np.ndarray] = [np.zeros((len(configs), 0))]
        for p, offset in zip(space.params, encoder.offsets, strict=True):
            cond = is_conditional(p, configs)
            self.conditional[p.name] = cond
            start = len(self.columns)
            if isinstance(p, Categorical):
                blocks.append(encoded[:, offset:offset + len(p.choices)])
                self.columns += [Column(p, v) for v in p.choices]
                if cond:
                    blocks.append(np.array([[0.0 if p.name in c else 1.0] for c in configs])
                                  .reshape(len(configs), 1))
                    self.columns.append(Column(p, INACTIVE))
            else:
                assert isinstance(p, (Int, Float))
                blocks.append(np.array([[float(c[p.name]) if p.name in c else _sentinel(p)]
                                        for c in configs]).reshape(len(configs), 1))
                self.columns.append(Column(p))
            self.groups[p.name] = list(range(start, len(self.columns)))
        self.matrix: np.ndarray = np.hstack(blocks)
