"""A deploytune :class:`~deploytune.space.Space` as a ConfigSpace ``ConfigurationSpace``, with
value conversions both ways, for ``smac3`` (:mod:`deploytune.samplers.smac3`, whose module
docstring says how each kind of parameter, condition and forbidden combination is converted).
Needs the ``peers`` extra (ConfigSpace), imported only when an encoding is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploytune.samplers._encoding import same_value
from deploytune.space import Categorical, Config, Float, Int, Param, Space, all_numbers

__all__ = ["ConfigSpaceEncoding"]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (``np.True_`` -> ``True``, ``np.str_`` -> ``str``)."""
    return value.item() if isinstance(value, np.generic) else value


def _same(a: Any, b: Any) -> bool:
    """Whether two values are the same, numpy scalars compared as Python values."""
    return same_value(_plain(a), _plain(b))


def _grid(p: Int | Float) -> list[Any]:
    """The grid points of a parameter with a ``step``, from ``low`` to ``high``."""
    assert p.step is not None
    n = round((p.high - p.low) / p.step)
    return [p.snap(p.low + k * p.step) for k in range(n + 1)]


class ConfigSpaceEncoding:
    """A :class:`Space` as a ConfigSpace ``ConfigurationSpace``, with value conversions both
    ways (deploytune value <-> the item ConfigSpace holds)."""

    def __init__(self, space: Space, seed: int) -> None:
        from ConfigSpace import (
            AndConjunction,
            ConfigurationSpace,
            EqualsCondition,
            ForbiddenAndConjunction,
            ForbiddenInClause,
            InCondition,
        )

        self.space = space
        # Ordered items of every parameter held as a list (choices, numeric choices, grids).
        self.items: dict[str, list[Any]] = {}
        defaults = self._defaults(space)
        self.cs = ConfigurationSpace(seed=seed)
        hps = {p.name: self._hyperparameter(p, defaults.get(p.name)) for p in space}
        self.cs.add(list(hps.values()))
        for p in space:
            parts: list[Any] = []
            for parent, allowed in p.when.items():
                values = [self.to_smac(parent, v) for v in allowed
                          if space[parent].contains(v)]
                parts.append(EqualsCondition(hps[p.name], hps[parent], values[0])
                             if len(values) == 1 else
                             InCondition(hps[p.name], hps[parent], values))
            if parts:
                self.cs.add(parts[0] if len(parts) == 1 else AndConjunction(*parts))
        for rule in space.forbidden:
            clauses = [ForbiddenInClause(hps[name], [self.to_smac(name, v) for v in values
                                                     if space[name].contains(v)])
                       for name, values in rule.items()]
            self.cs.add(clauses[0] if len(clauses) == 1 else ForbiddenAndConjunction(*clauses))

    @staticmethod
    def _defaults(space: Space) -> Config:
        """ConfigSpace's own defaults, unless forbidden combinations are declared: then a fixed
        valid configuration (ConfigSpace refuses a forbidden default configuration)."""
        return space.sample(np.random.default_rng(0)) if space.forbidden else {}

    def _hyperparameter(self, p: Param, default: Any) -> Any:
        from ConfigSpace import Categorical as CsCategorical
        from ConfigSpace import Float as CsFloat
        from ConfigSpace import Integer as CsInteger
        from ConfigSpace import OrdinalHyperparameter

        if isinstance(p, Categorical) and all_numbers(p.choices):
            self.items[p.name] = sorted(p.choices)
            return OrdinalHyperparameter(p.name, self.items[p.name], default_value=(
                self.items[p.name][0] if default is None else self.to_smac(p.name, default)))
        if isinstance(p, Categorical):
            self.items[p.name] = list(p.choices)
            if default is None:
                return CsCategorical(p.name, self.items[p.name])
            return CsCategorical(p.name, self.items[p.name], default=self.to_smac(p.name, default))
        if isinstance(p, (Int, Float)) and p.step is not None:
            self.items[p.name] = _grid(p)
            return OrdinalHyperparameter(p.name, self.items[p.name], default_value=(
                self.items[p.name][0] if default is None else self.to_smac(p.name, default)))
        if isinstance(p, Int):
            return CsInteger(p.name, (p.low, p.high), log=p.log, default=default)
        assert isinstance(p, Float)
        return CsFloat(p.name, (float(p.low), float(p.high)), log=p.log,
                       default=None if default is None else float(default))

    def to_smac(self, name: str, value: Any) -> Any:
        """The ConfigSpace value of ``name = value`` (a declared, legal value)."""
        p = self.space[name]
        items = self.items.get(name)
        if isinstance(p, Int) and items is None:
            return int(value)
        if isinstance(p, Float) and items is None:
            return min(float(p.high), max(float(p.low), float(value)))
        assert items is not None
        if isinstance(p, (Int, Float)):  # a grid: the nearest point
            assert p.step is not None
            return items[min(len(items) - 1, max(0, round((float(value) - p.low) / p.step)))]
        return next(item for item in items if _same(item, value))

    def from_smac(self, name: str, value: Any) -> Any:
        """The deploytune value of ``name`` for the value ConfigSpace returned."""
        p = self.space[name]
        value = _plain(value)
        if isinstance(p, Categorical):
            return next((c for c in p.choices if _same(c, value)), value)
        assert isinstance(p, (Int, Float))
        return p.snap(float(value))

    def configuration(self, config: Config) -> Any:
        """A ConfigSpace ``Configuration`` of a deploytune configuration."""
        from ConfigSpace import Configuration

        return Configuration(self.cs, values={k: self.to_smac(k, v) for k, v in config.items()})

    def config(self, configuration: Any) -> Config:
        """The deploytune configuration of a ConfigSpace ``Configuration`` (declaration
        order)."""
        values = dict(configuration)
        return {p.name: self.from_smac(p.name, values[p.name]) for p in self.space
                if p.name in values}
