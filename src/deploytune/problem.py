"""The problem a study holds, recorded on it so a study is never mixed with another problem.

:func:`deploytune.optimize` records the objective, its direction, the constraints and the space
as the study's user attribute ``dt.setup`` (:data:`ATTR_SETUP`) and refuses to add trials of a
different problem; ``deploytune tune`` picks a study by the same comparison. One exception: a
study with no evaluation yet (every finished trial interrupted, e.g. stopped at once for a
misspelt metric) and the same space may be claimed by a corrected problem, since its queued
configurations still fit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial

from deploytune.history import is_interrupted
from deploytune.outcome import Constraint, Objective
from deploytune.space import Space

__all__ = ["SETUP_KEYS", "claimable", "difference", "setup_of"]

SETUP_KEYS = ("objective", "direction", "constraints", "space")
"""What makes two problems the same, in the order a difference is reported."""


def _plain(value: Any) -> Any:
    """``value`` as stored (a JSON round trip: tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def setup_of(objective: Objective, constraints: Sequence[Constraint],
             space: Space) -> dict[str, Any]:
    """The problem definition as it is recorded on a study."""
    return _plain({"objective": objective.metric, "direction": objective.direction,
                   "constraints": [str(c) for c in constraints], "space": space.to_dict()})


def difference(recorded: Any, setup: Mapping[str, Any]) -> str | None:
    """The first key of :data:`SETUP_KEYS` in which ``recorded`` differs from ``setup``;
    ``None`` when they are the same problem or nothing is recorded."""
    if not isinstance(recorded, Mapping):
        return None
    return next((k for k in SETUP_KEYS if _plain(recorded.get(k)) != _plain(setup.get(k))),
                None)


def claimable(recorded: Any, setup: Mapping[str, Any], trials: Iterable[FrozenTrial]) -> bool:
    """Whether a study whose recorded problem is ``recorded`` may be claimed by ``setup``:
    nothing recorded and no trial run or running, or the same space and no evaluation yet."""
    trials = list(trials)
    if not isinstance(recorded, Mapping):
        return not any(t.state.is_finished() or t.state.name == "RUNNING" for t in trials)
    return (_plain(recorded.get("space")) == _plain(setup.get("space"))
            and not any(t.state.is_finished() and not is_interrupted(t) for t in trials))
