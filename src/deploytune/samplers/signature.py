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

With ``culprits``, identical errors narrow the cause down. Two or more deterministic crashes
with the same error message (:func:`error_fingerprint`: numbers and addresses masked) and the
same kind share a cause; the unordered values they all hold are its suspects (the *culprit*:
"backend = onnxruntime and precision = fp16", whatever the model variant). A culprit that some
run holds is cleared; otherwise a configuration holding it gets the floor ``(k + 1) / (k + 2)``
of the ``k`` crashes that share the message. A culprit is never a hard exclusion: a crash rule
may also involve an ordered knob, and then the culprit is too wide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from deploytune.history import Observation
from deploytune.outcome import CrashKind
from deploytune.samplers.memory import succession_floor
from deploytune.space import Categorical, Space

__all__ = ["DETERMINISTIC_KINDS", "CrashSignatures", "error_fingerprint", "nominal_names"]

DETERMINISTIC_KINDS = frozenset({CrashKind.INVALID_CONFIG, CrashKind.TIMEOUT})
"""Crash kinds that repeat for the same combination (an OOM is the memory rules' matter)."""


_VARYING = re.compile(r"\b0x[0-9a-fA-F]+\b|(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\d)")


def error_fingerprint(error: str | None) -> str | None:
    """``error`` with what differs between two runs of one failure masked (numbers such as
    batch sizes, byte counts, process ids and seconds, and hexadecimal addresses, each
    replaced by ``#``; digits inside a word, as in ``fp16`` or ``layer3``, are kept),
    whitespace collapsed; ``None`` for no message."""
    if not error or not error.strip():
        return None
    return " ".join(_VARYING.sub("#", error).split())


def nominal_names(space: Space) -> list[str]:
    """Names of the space's unordered categorical parameters (the signature's parts)."""
    return [p.name for p in space.params if isinstance(p, Categorical) and not p.is_ordered]


class CrashSignatures:
    """The crash record of each nominal signature of a history (see the module).

    Args:
        space: The search space.
        history: Finished, non-transient trials.
    """

    def __init__(self, space: Space, history: Iterable[Observation],
                 culprits: bool = False) -> None:
        self._names = nominal_names(space)
        self._record: dict[tuple[Any, ...], tuple[int, set[CrashKind | None]]] = {}
        self._culprits: list[tuple[frozenset[tuple[str, Any]], int]] = []
        history = list(history) if self._names else []
        for o in history:
            key = self.signature(o.config)
            n, kinds = self._record.get(key, (0, set()))
            kinds = kinds | {o.crash_kind if o.crashed else None}
            self._record[key] = (n + 1, kinds)
        if culprits:
            self._culprits = self._suspects(history)

    def _pairs(self, config: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
        return frozenset((n, config[n]) for n in self._names if config.get(n) is not None)

    def _suspects(self, history: Sequence[Observation]) -> list[
            tuple[frozenset[tuple[str, Any]], int]]:
        """The culprits of the history's repeated errors, with their crash counts."""
        groups: dict[tuple[CrashKind, str], list[frozenset[tuple[str, Any]]]] = {}
        for o in history:
            fingerprint = error_fingerprint(o.error)
            if o.crashed and o.crash_kind in DETERMINISTIC_KINDS and fingerprint is not None:
                assert o.crash_kind is not None
                groups.setdefault((o.crash_kind, fingerprint), []).append(self._pairs(o.config))
        ran = [self._pairs(o.config) for o in history if not o.crashed]
        out = []
        for members in groups.values():
            if len(members) < 2:
                continue
            culprit = frozenset.intersection(*members)
            if culprit and not any(culprit <= r for r in ran):
                out.append((culprit, len(members)))
        return out

    def culprit_crashes(self, config: Mapping[str, Any]) -> int:
        """The most crashes that share one error and whose culprit ``config`` holds (0 when
        it holds none)."""
        pairs = self._pairs(config) if self._culprits else frozenset()
        return max((k for c, k in self._culprits if c <= pairs), default=0)

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
        after ``k`` repeated crashes of the signature, or ``k`` crashes with one error whose
        culprit the configuration holds; 0 without."""
        return succession_floor(max(self.repeats(c), self.culprit_crashes(c))
                                for c in configs)

    def __bool__(self) -> bool:
        """Whether some signature or culprit has a floor."""
        return bool(self._culprits) or any(self._repeated(kinds)
                                           for _, kinds in self._record.values())
