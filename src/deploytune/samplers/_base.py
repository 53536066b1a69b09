"""The common base of deploytune's samplers: space-aware, seeded per trial, history-derived."""

from __future__ import annotations

import abc
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.samplers import BaseSampler

from deploytune.history import TrialRecord, is_interrupted, observations
from deploytune.space import Config, Space

if TYPE_CHECKING:
    from optuna import Study
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

__all__ = ["ASSUMED_BUDGET", "SpaceSampler", "draw_number", "planned_budget", "trial_rng"]

ASSUMED_BUDGET = 50
"""The trials a sampler plans for (coverage deadlines, annealing schedules, hand-offs) when it
is given no budget: a run limited by time only, or a sampler built by hand."""


def planned_budget(budget: int | None) -> int:
    """``budget``, or :data:`ASSUMED_BUDGET` without one (at least 1)."""
    return ASSUMED_BUDGET if budget is None else max(1, int(budget))


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().generate_state(1)[0] % (2**31))


def trial_rng(seed: int, number: int, salt: str = "") -> np.random.Generator:
    """A generator that depends only on (seed, trial number, salt): no hidden state."""
    return np.random.default_rng([seed & 0xFFFFFFFF, number, zlib.crc32(salt.encode())])


def draw_number(study: Study, trial: FrozenTrial) -> int:
    """The number that seeds ``trial``'s draws: its trial number less the interrupted trials
    before it. Interrupted trials are not evaluations (:mod:`deploytune.recovery`), so a study
    interrupted at any moment and resumed draws what the uninterrupted one would have."""
    from optuna.trial import TrialState

    before = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return trial.number - sum(t.number < trial.number and is_interrupted(t) for t in before)


class SpaceSampler(BaseSampler, abc.ABC):
    """An Optuna sampler that proposes whole configurations of a :class:`Space`.

    Subclasses implement :meth:`propose`, which must derive everything from the study's history
    and ``self.seed`` (plus the trial number), so that a resumed or shared study behaves the
    same. The whole configuration is returned from ``sample_relative``; Optuna then hands each
    parameter to the trial as it is suggested (define-by-run, declaration order).

    Args:
        space: The search space.
        seed: Seed; ``None`` draws one at random (the run is then not reproducible).
    """

    multi_objective = False
    """Whether the sampler proposes for studies of several objectives (else ``ValueError``)."""

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self.space = space
        self.seed = _fresh_seed() if seed is None else int(seed)

    def reseed_rng(self) -> None:
        """Called by Optuna in forked workers: give this worker its own seed."""
        self.seed = _fresh_seed()

    def warm_up(self) -> None:
        """Import what proposing needs. The tuner calls it once before its first ask, outside
        the study lock, so that a slow first import (scikit-learn: about 1.5 s here) does not
        hold the other workers up. Nothing by default."""

    def history(self, study: Study) -> list[TrialRecord]:
        """The study's finished trials that fit the space (:meth:`Space.fits`), by number: a
        trial added with a subset of the parameters or a value outside the declared range
        (``study.add_trial``, another objective on the same study) is not learnt from."""
        return [o for o in observations(study) if self.space.fits(o.config)]

    @abc.abstractmethod
    def propose(self, study: Study, trial: FrozenTrial) -> Config:
        """Return the configuration to evaluate as ``trial``."""

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Every parameter of the space (inactive ones are simply never suggested)."""
        return self.space.distributions()

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """A value for every parameter of ``search_space`` that this sampler can answer for.

        The space's own parameters come from :meth:`propose` (active ones only, and only
        where ``search_space`` has the space's distribution: a wrapper such as Optuna's
        ``PartialFixedSampler`` leaves out what it fixes). Parameters the space does not
        declare get an independent draw (:meth:`sample_independent`), as Optuna's relative
        samplers give every parameter they are asked for.
        """
        if not search_space:
            return {}
        self._check_single_objective(study)
        own = self.space.distributions()
        config = self.propose(study, trial) if any(k in own for k in search_space) else {}
        out = {k: v for k, v in config.items() if k in search_space and search_space[k] == own[k]}
        for name, distribution in search_space.items():
            if name not in own:
                out[name] = self.sample_independent(study, trial, name, distribution)
        return out

    def _check_single_objective(self, study: Study) -> None:
        if len(study.directions) > 1 and not self.multi_objective:
            raise ValueError(f"{type(self).__name__} supports single-objective studies only; "
                             f"use sampler random, or one of Optuna's multi-objective samplers")

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Fallback for parameters outside the space: uniform, seeded by trial and name."""
        from optuna.samplers import RandomSampler

        self._check_single_objective(study)
        rs = RandomSampler(seed=int(trial_rng(self.seed, trial.number, param_name)
                                    .integers(2**31)))
        return rs.sample_independent(study, trial, param_name, param_distribution)
