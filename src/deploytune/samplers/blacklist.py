"""Subspace blacklisting: suppress categorical values and pairs that keep failing.

The mechanism of the TBA paper (``tba_spec.md`` 4.2):

* **value level** — per (parameter, value), a counter of consecutive failures (crash,
  infeasible or aborted). At ``max_failures`` the value is blacklisted; a success resets the
  counter and lifts the blacklist at once; after ``cooldown`` trials the value is released and
  its counter reset. If every value of a parameter would be excluded, all are allowed
  (safety valve).
* **combination level** — the same counters for every 2-way pair of categorical values present
  in a configuration, e.g. ``(precision=int8, backend=onnxruntime)``.

Transient crashes are not failures of the configuration and are not recorded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deploytune.space import Categorical, Space

__all__ = ["BlacklistTracker"]

_Item = tuple[str, Any]
_Pair = tuple[_Item, _Item]


@dataclass
class _Counter:
    failures: int = 0
    since: int | None = None  # trial index at which it was (re)blacklisted


@dataclass
class BlacklistTracker:
    """Consecutive-failure counters with cooldown for categorical values and their pairs.

    Args:
        space: The search space; its categorical parameters are tracked.
        max_failures: Consecutive failures that blacklist a value (or pair).
        cooldown: Trials after which a blacklisted value (or pair) is released.
        values: Track single values.
        combos: Track 2-way combinations.
    """

    space: Space
    max_failures: int = 3
    cooldown: int = 8
    values: bool = True
    combos: bool = True
    _value_counters: dict[_Item, _Counter] = field(default_factory=dict)
    _pair_counters: dict[_Pair, _Counter] = field(default_factory=dict)

    def _items(self, config: Mapping[str, Any]) -> list[_Item]:
        return [(p.name, config[p.name]) for p in self.space.params
                if isinstance(p, Categorical) and p.name in config]

    def record(self, config: Mapping[str, Any], failed: bool, t: int) -> None:
        """Record the outcome of ``config``, told as the ``t``-th trial (0-based)."""
        items = self._items(config)
        if self.values:
            for item in items:
                self._update(self._value_counters, item, failed, t)
        if self.combos:
            for pair in itertools.combinations(items, 2):
                self._update(self._pair_counters, pair, failed, t)

    def _update(self, table: dict[Any, _Counter], key: Any, failed: bool, t: int) -> None:
        c = table.setdefault(key, _Counter())
        if c.since is not None and t - c.since >= self.cooldown:  # released: forget the streak
            c.failures, c.since = 0, None
        if failed:
            c.failures += 1
            if c.failures >= self.max_failures:
                c.since = t
        else:
            c.failures, c.since = 0, None

    def _blocked(self, c: _Counter | None, t: int) -> bool:
        # Pure: a lookup never changes state, so replaying the history rebuilds it exactly.
        return c is not None and c.since is not None and t - c.since < self.cooldown

    def blacklisted_values(self, t: int) -> list[_Item]:
        """(parameter, value) pairs blacklisted at trial index ``t``."""
        return [k for k, c in self._value_counters.items() if self._blocked(c, t)]

    def allowed_values(self, t: int) -> dict[str, list[Any]]:
        """Parameter -> values allowed at trial index ``t`` (all, when all would be blocked)."""
        out: dict[str, list[Any]] = {}
        for p in self.space.params:
            if not isinstance(p, Categorical):
                continue
            ok = [v for v in p.choices
                  if not self.values or not self._blocked(self._value_counters.get((p.name, v)),
                                                          t)]
            out[p.name] = ok if ok else list(p.choices)
        return out

    def has_blocked_combos(self, t: int) -> bool:
        """Whether any pair is blacklisted at trial index ``t``."""
        return any(self._blocked(c, t) for c in self._pair_counters.values())

    def blocked_combos(self, config: Mapping[str, Any], t: int) -> list[_Pair]:
        """The blacklisted pairs contained in ``config`` at trial index ``t``."""
        if not self.combos:
            return []
        items = self._items(config)
        return [pair for pair in itertools.combinations(items, 2)
                if self._blocked(self._pair_counters.get(pair), t)]

    def is_blocked(self, config: Mapping[str, Any], t: int) -> bool:
        """Whether ``config`` holds a blacklisted value or pair at trial index ``t``."""
        allowed = self.allowed_values(t) if self.values else {}
        for name, value in self._items(config):
            if name in allowed and value not in allowed[name]:
                return True
        return bool(self.blocked_combos(config, t))

    def snapshot(self, t: int) -> dict[str, Iterable[Any]]:
        """A JSON-friendly view of what is blacklisted at ``t`` (for logs and reports)."""
        return {
            "values": [list(k) for k in self.blacklisted_values(t)],
            "combos": [[list(a), list(b)] for (a, b), c in self._pair_counters.items()
                       if self._blocked(c, t)],
        }
