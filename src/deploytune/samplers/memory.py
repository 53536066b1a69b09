"""What a space's memory declarations let a sampler conclude (``memory: increasing`` on a
parameter; see :attr:`deploytune.space.Param.memory`).

Two rules, both exact under the declaration:

* **Dominance.** If configuration ``b`` ran out of memory, every configuration ``a`` that
  equals ``b`` in all undeclared parameters and needs at least as much memory in every declared
  one (``a[p] >= b[p]`` for ``increasing``, ``<=`` for ``decreasing``) runs out of memory too:
  one OOM at batch 32 rules out batch 64 with the same model, backend and precision.
  :class:`MemoryDominance` answers "is this configuration ruled out?" in one dictionary lookup
  plus a comparison per recorded OOM of the same undeclared part.
* **Safe side.** :func:`least_memory` moves every declared parameter of a configuration to its
  low-memory end (the smallest batch, the shortest context). A first guess there is the one
  least likely to run out of memory and, for latency caps that grow with the same knobs,
  the likeliest to meet them.

Both need no history beyond the crashes themselves and are deterministic, so they keep the
samplers' "state = study history + seed" rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from deploytune.space import Categorical, Config, Float, Int, Param, Space

__all__ = ["MemoryDominance", "declared_memory_params", "least_memory", "succession_floor"]

_Part = tuple[tuple[str, Any], ...]


def declared_memory_params(space: Space) -> list[Param]:
    """The parameters of ``space`` with a ``memory`` declaration, in declaration order."""
    return [p for p in space.params if p.memory is not None]


def _low_memory_end(p: Param) -> Any:
    """The value of ``p`` that needs the least memory."""
    if isinstance(p, Categorical):
        values = [float(c) for c in p.choices]
        i = values.index(min(values) if p.memory == "increasing" else max(values))
        return p.choices[i]
    assert isinstance(p, (Int, Float))
    return p.low if p.memory == "increasing" else p.high


def least_memory(space: Space, config: Mapping[str, Any]) -> Config:
    """``config`` with every active declared parameter at its low-memory end (the hierarchy is
    unchanged: only ordered values move). Returns ``config`` unchanged when the result would
    be a forbidden combination."""
    out = dict(config)
    for p in declared_memory_params(space):
        if p.name in out:
            out[p.name] = _low_memory_end(p)
    return dict(config) if space.is_forbidden(out) else out


def succession_floor(counts: Iterable[int]) -> np.ndarray:
    """Laplace's rule of succession as a crash probability floor: ``(k + 1) / (k + 2)`` after
    ``k`` crashes that count against a configuration, 0 when ``k`` is 0."""
    k = np.asarray(list(counts), dtype=float)
    return np.where(k > 0, (k + 1.0) / (k + 2.0), 0.0)


class MemoryDominance:
    """Configurations ruled out by recorded out-of-memory crashes (see the module).

    Args:
        space: The search space (its ``memory`` declarations).
        ooms: Configurations that ran out of memory.
    """

    def __init__(self, space: Space, ooms: Iterable[Mapping[str, Any]]) -> None:
        self.space = space
        self._declared = {p.name: p.memory for p in declared_memory_params(space)}
        self._by_part: dict[_Part, list[dict[str, float]]] = {}
        for c in ooms if self._declared else ():
            self._by_part.setdefault(self._part(c), []).append(self._levels(c))

    def __bool__(self) -> bool:
        """Whether any configuration can be ruled out (declarations and an OOM exist)."""
        return bool(self._by_part)

    def _part(self, config: Mapping[str, Any]) -> _Part:
        """The undeclared values, plus which declared parameters are active."""
        return tuple((k, ("<memory>" if k in self._declared else v))
                     for k, v in self.space.key(config))

    def _levels(self, config: Mapping[str, Any]) -> dict[str, float]:
        """Declared value of each active declared parameter, signed so larger = more memory."""
        return {k: (float(config[k]) if d == "increasing" else -float(config[k]))
                for k, d in self._declared.items() if k in config}

    def _dominating(self, config: Mapping[str, Any]) -> Iterator[bool]:
        """For each recorded OOM with ``config``'s undeclared values: does it dominate?"""
        ooms = self._by_part.get(self._part(config)) if self._by_part else None
        if not ooms:
            return iter(())
        levels = self._levels(config)
        return (all(levels[k] >= v for k, v in oom.items()) for oom in ooms)

    def rules_out(self, config: Mapping[str, Any]) -> bool:
        """Whether some recorded OOM configuration needs no more memory than ``config`` in
        every declared parameter and equals it in every other one (stops at the first)."""
        return any(self._dominating(config))

    def keep(self, configs: Iterable[Config]) -> list[Config]:
        """The configurations that are not ruled out."""
        return [c for c in configs if not self.rules_out(c)]

