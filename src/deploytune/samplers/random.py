"""Uniform random search over a hierarchical space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploytune.samplers._base import SpaceSampler, draw_number, trial_rng
from deploytune.space import Config

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

__all__ = ["UniformSampler"]


class UniformSampler(SpaceSampler):
    """Random search: each trial is an independent uniform draw of a valid configuration.

    Conditional parameters are drawn only when active, and forbidden combinations are
    rejected. Log-scale parameters are drawn log-uniformly. Works for studies of several
    objectives too.
    """

    multi_objective = True

    def propose(self, study: Study, trial: FrozenTrial) -> Config:
        """A uniform draw seeded by (seed, trial number)."""
        return self.space.sample(trial_rng(self.seed, draw_number(study, trial), "random"))
