"""Settings of the re-runs that make a recommendation trustworthy.

Two kinds of re-run, both chosen by :func:`deploytune.feasibility.next_to_validate` (the
best-ranked configuration that has not been run often enough):

* **During the search** (``during_search``): before each new proposal, the incumbent (the best
  pessimistic bound among configurations feasible at least once) is run again while it does
  not meet the chance constraint and has fewer than ``1 + repeats`` runs. These re-runs are
  evaluations of the budget: a budget of 25 is 25 runs, repeats included, and the sampler sees
  them like any other trial.
* **Finalists** (after the search's budget): the ``finalists`` best-ranked configurations are
  run again, best first, until one with ``1 + repeats`` runs meets the chance constraint, at
  most ``finalists * repeats`` runs per call of :func:`~deploytune.optimize` (a tuner resumed
  after a kill may spend that again). These come on top of the budget (the summary counts
  them apart) and carry the trial user attribute ``dt.validation``.

Every re-run is a fresh evaluation by the same evaluator: a new process for isolated and
command evaluators, a fresh server start for the server evaluator, so variance that appears
only across restarts is seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["OFF", "Validation", "parse_validation"]


@dataclass(frozen=True)
class Validation:
    """How many re-runs to spend, and where (see the module docstring).

    Attributes:
        finalists: Configurations re-run after the search (0: none).
        repeats: Re-runs each of them gets at most (beyond its first run).
        during_search: Whether the incumbent is re-run during the search while its
            feasibility is uncertain.
    """

    finalists: int = 3
    repeats: int = 2
    during_search: bool = True

    def __post_init__(self) -> None:
        for name in ("finalists", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"validation.{name}: must be an integer >= 0 (got {value!r})")
        if not isinstance(self.during_search, bool):
            raise ValueError(f"validation.during_search: must be true or false "
                             f"(got {self.during_search!r})")

    @property
    def max_final_runs(self) -> int:
        """The most runs the finalists can take after the budget."""
        return self.finalists * self.repeats


OFF = Validation(0, 0, False)
"""No re-runs (what deploytune did before chance constraints)."""


def parse_validation(value: Validation | Mapping[str, Any] | bool | None) -> Validation:
    """A :class:`Validation` from itself, a mapping of its fields, ``None``/``True`` (the
    defaults) or ``False`` (no re-runs).

    Raises:
        ValueError: One line naming the field and the fix.
    """
    if isinstance(value, Validation):
        return value
    if value is None or value is True:
        return Validation()
    if value is False:
        return OFF
    if isinstance(value, Mapping):
        known = {f.name for f in fields(Validation)}
        unknown = sorted(set(map(str, value)) - known)
        if unknown:
            raise ValueError(f"validation.{unknown[0]}: unknown field; use "
                             f"{', '.join(sorted(known))}")
        return Validation(**dict(value))
    raise ValueError(f"validation: expected a mapping such as {{finalists: 3, repeats: 2}}, true "
                     f"or false (got {value!r})")
