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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploytune.outcome import Constraint
from deploytune.setting_error import SettingError, finite_number, kind_of

__all__ = ["EarlyAbort", "parse_early_abort"]


@dataclass(frozen=True)
class EarlyAbort:
    """The early-abort rule's settings.

    Attributes:
        before_feasible: ``k`` while no feasible trial exists.
        after_feasible: ``k`` once a feasible trial exists.
        enabled: ``False`` switches early abort off.
    """

    before_feasible: float = 5.0
    after_feasible: float = 3.0
    enabled: bool = True

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
        unknown = set(value) - {"before_feasible", "after_feasible", "enabled"}
        if unknown:
            raise ValueError(f"early_abort: unknown key(s) {sorted(unknown)}; use "
                             f"before_feasible, after_feasible, enabled")
        return EarlyAbort(**dict(value))
    raise ValueError(f"early_abort: expected true, false or a mapping with before_feasible / "
                     f"after_feasible, got {value!r}")
