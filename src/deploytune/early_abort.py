"""Early abort: the paper's trial timeout, applied to streamed measurements.

An evaluator streams intermediate measurements (p95 latency after the warm-up, then after each
measurement pass). A configuration whose streamed value of a capped metric (a ``<=`` constraint
with a positive limit) already exceeds ``k x limit`` will not come back under the limit: the
tuner stops it and records it as ``aborted`` with its partial metrics. ``k`` is
``before_feasible`` (default 5) while the study has no feasible trial, and ``after_feasible``
(default 3) once it has one: early on, a loose rule keeps the map of the space honest; later,
budget matters more.

``>=`` constraints (throughput floors) are never used to abort: throughput measured during the
warm-up is routinely far below its final value.

At the end of a fidelity rung (a report naming its ``rung``: ``boot``, ``short``, ...) a second,
model-based rule applies: the run stops there when the study's own runs that went on from that
rung make it unlikely (below ``promote_below``) to end as the new best feasible configuration
(:mod:`deploytune.promotion`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from deploytune.outcome import Constraint, Objective
from deploytune.setting_error import SettingError, finite_number, kind_of

if TYPE_CHECKING:
    from deploytune.history import TrialRecord

__all__ = ["EarlyAbort", "parse_early_abort"]


@dataclass(frozen=True)
class EarlyAbort:
    """The early-abort rule's settings.

    Attributes:
        before_feasible: ``k`` while no feasible trial exists.
        after_feasible: ``k`` once a feasible trial exists.
        enabled: ``False`` switches early abort off (both rules).
        promote_below: At the end of a rung, stop a run whose probability of ending as the
            new best feasible configuration is below this (0: every run goes to the end).
        min_pairs: Runs that must have gone from a rung to the end before the rung rule
            judges a metric from that rung.
    """

    before_feasible: float = 5.0
    after_feasible: float = 3.0
    enabled: bool = True
    promote_below: float = 0.05
    min_pairs: int = 3

    def __post_init__(self) -> None:
        """Check the settings.

        Raises:
            SettingError: At ``("before_feasible",)``, ``("after_feasible",)`` or
                ``("enabled",)``.
        """
        for name in ("before_feasible", "after_feasible"):
            v = getattr(self, name)
            number = finite_number(v)
            if number is None or number < 1:
                raise SettingError((name,), f"must be a number >= 1 (a multiple of the "
                                   f"constraint's limit), got {kind_of(v)}; e.g. {name}: 3")
        if not isinstance(self.enabled, bool):
            raise SettingError(("enabled",), f"expected true or false, got "
                               f"{kind_of(self.enabled)}")
        p = finite_number(self.promote_below)
        if p is None or not 0 <= p < 1:
            raise SettingError(("promote_below",), f"must be a probability in [0, 1), got "
                               f"{kind_of(self.promote_below)}; e.g. promote_below: 0.05")
        if isinstance(self.min_pairs, bool) or not isinstance(self.min_pairs, int) \
                or self.min_pairs < 2:
            raise SettingError(("min_pairs",), f"must be an integer >= 2, got "
                               f"{kind_of(self.min_pairs)}; e.g. min_pairs: 3")

    def factor(self, any_feasible: bool) -> float:
        """The ``k`` that applies."""
        return self.after_feasible if any_feasible else self.before_feasible

    def reason(self, partial: Mapping[str, float], constraints: Sequence[Constraint],
               any_feasible: bool) -> str | None:
        """Why the trial should stop now, or ``None`` to let it run."""
        if not self.enabled:
            return None
        k = self.factor(any_feasible)
        for c in constraints:
            if c.op != "<=" or c.limit <= 0 or c.metric not in partial:
                continue
            v = partial[c.metric]
            if math.isfinite(v) and v > k * c.limit:
                return (f"early abort: {c.metric} = {v:g} exceeds {k:g} x its limit {c.limit:g}")
            if math.isinf(v) and v > 0:
                return f"early abort: {c.metric} is infinite"
        return None

    def rung_reason(self, rung: str, partial: Mapping[str, float],
                    history: Sequence[TrialRecord], objective: Objective,
                    constraints: Sequence[Constraint]) -> str | None:
        """Why the run that just ended ``rung`` should stop there (the rung rule, see
        :func:`deploytune.promotion.rung_reason`), or ``None`` to let it go on."""
        if not self.enabled or self.promote_below <= 0:
            return None
        from deploytune.promotion import rung_reason

        return rung_reason(rung, partial, history, objective, constraints,
                           self.promote_below, self.min_pairs)


OFF = EarlyAbort(enabled=False)
"""Early abort switched off."""


def parse_early_abort(value: EarlyAbort | bool | Mapping[str, Any] | None) -> EarlyAbort:
    """``None``/``True`` -> defaults, ``False`` -> off, a mapping -> its settings."""
    if isinstance(value, EarlyAbort):
        return value
    if value is None or value is True:
        return EarlyAbort()
    if value is False:
        return OFF
    if isinstance(value, Mapping):
        known = [f.name for f in fields(EarlyAbort)]
        unknown = set(value) - set(known)
        if unknown:
            raise ValueError(f"early_abort: unknown key(s) {sorted(unknown)}; use "
                             f"{', '.join(known)}")
        return EarlyAbort(**dict(value))
    raise ValueError(f"early_abort: expected true, false or a mapping with before_feasible / "
                     f"after_feasible, got {value!r}")
