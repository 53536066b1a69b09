"""Repeated deterministic crashes of one combination of nominal values.

The *nominal signature* of a configuration is the tuple of its unordered categorical values
(model variant, backend, precision, ...: not batch sizes, thread counts or other ordered knobs).
A runtime that rejects a combination (``invalid_config``) or hangs compiling it (``timeout``)
usually does so whatever the ordered knobs are. Measured on the runs of ``cabo`` (13 problems x
20 seeds, 50 trials; docs/benchmarks.md): once a signature's first two trials both crashed with
the same one of those kinds, the next trial with that signature crashed the same way in 336 of
341 cases (98.5 %); the pairs of values that the blacklisting study of the second round tried
were right only 57-75 % of the time.

:class:`CrashSignatures` turns that record into a crash probability floor: after ``k`` trials of
a signature, all crashed with one deterministic kind, a configuration with that signature
crashes with probability at least ``(k + 1) / (k + 2)`` (Laplace's rule of succession); one
trial of the signature that ran, or two different kinds, and there is no floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from deploytune.history import TrialRecord
from deploytune.outcome import CrashKind
from deploytune.samplers.memory import succession_floor
from deploytune.space import Categorical, Space

__all__ = ["DETERMINISTIC_KINDS", "CrashSignatures", "nominal_names"]

DETERMINISTIC_KINDS = frozenset({CrashKind.INVALID_CONFIG, CrashKind.TIMEOUT})
"""Crash kinds that repeat for the same combination (an OOM is the memory rules' matter)."""


def nominal_names(space: Space) -> list[str]:
    """Names of the space's unordered categorical parameters (the signature's parts)."""
    return [p.name for p in space.params if isinstance(p, Categorical) and not p.is_ordered]


class CrashSignatures:
    """The crash record of each nominal signature of a history (see the module).

    Args:
        space: The search space.
        history: Finished, non-transient trials.
    """

    def __init__(self, space: Space, history: Iterable[TrialRecord]) -> None:
        self._names = nominal_names(space)
        self._record: dict[tuple[Any, ...], tuple[int, set[CrashKind | None]]] = {}
        for o in history if self._names else ():
            key = self.signature(o.config)
            n, kinds = self._record.get(key, (0, set()))
            kinds = kinds | {o.crash_kind if o.crashed else None}
            self._record[key] = (n + 1, kinds)

    def signature(self, config: Mapping[str, Any]) -> tuple[Any, ...]:
        """The nominal values of ``config`` (``None`` for an inactive parameter)."""
        return tuple(config.get(name) for name in self._names)

    @staticmethod
    def _repeated(kinds: set[CrashKind | None]) -> CrashKind | None:
        """The one deterministic kind every trial of a signature crashed with, if any."""
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        return kind if kind in DETERMINISTIC_KINDS else None

    def repeated_kind(self, config: Mapping[str, Any]) -> CrashKind | None:
        """The deterministic kind every trial of ``config``'s signature crashed with (None if
        there were none, one ran, or they crashed in different ways)."""
        return self._repeated(self._record.get(self.signature(config), (0, set()))[1])

    def repeats(self, config: Mapping[str, Any]) -> int:
        """How many trials of ``config``'s signature there were, if every one crashed with
        the same deterministic kind; else 0."""
        n, kinds = self._record.get(self.signature(config), (0, set()))
        return n if self._repeated(kinds) else 0

    def floor(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Lower bounds on the crash probabilities of ``configs``: ``(k + 1) / (k + 2)``
        after ``k`` repeated crashes of the signature, 0 without."""
        return succession_floor(self.repeats(c) for c in configs)

    def __bool__(self) -> bool:
        """Whether some signature has a floor."""
        return any(self._repeated(kinds) for _, kinds in self._record.values())
