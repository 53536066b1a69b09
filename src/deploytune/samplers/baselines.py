"""Baselines built on Optuna's own samplers: ``tpe``, ``ctpe`` and ``gp``.

* ``tpe`` — what a typical Optuna user does today: TPE with default settings, the objective
  only, crashed trials recorded as ``FAIL`` (which TPE ignores).
* ``ctpe`` — TPE told about constraints (one aggregated normalised violation), with crashes
  turned into infeasible trials of graded violation, so it learns where configurations crash.
* ``gp`` — Optuna's Gaussian-process sampler with the same constrained view. Needs PyTorch
  (``pip install 'deploytune[gp]'``).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

from deploytune.samplers._base import SpaceSampler, trial_rng
from deploytune.samplers._options import check_optuna_options
from deploytune.samplers._view import GradedTransform, HistoryTransform, HistoryView, PlainTransform
from deploytune.space import Config, Space

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

__all__ = ["OptunaViewSampler", "register_all"]


class OptunaViewSampler(SpaceSampler):
    """An Optuna sampler run on a transformed mirror of the study's history.

    Args:
        space: The search space.
        make_inner: ``seed -> optuna sampler``; called afresh for every trial.
        transform: How the history is shown to the inner sampler.
        seed: Seed.
        dedup: Redraw (up to ``dedup_tries`` times) configurations already evaluated.
    """

    def __init__(self, space: Space, make_inner: Callable[[int], optuna.samplers.BaseSampler],
                 transform: HistoryTransform, seed: int | None = None, dedup: bool = False,
                 dedup_tries: int = 10) -> None:
        super().__init__(space, seed)
        self._make_inner = make_inner
        self._view = HistoryView(space, transform)
        self.dedup = dedup
        self.dedup_tries = dedup_tries

    def propose(self, study: Study, trial: FrozenTrial) -> Config:
        """Draw on the mirror with an inner sampler seeded by (seed, trial number)."""
        inner_seed = int(trial_rng(self.seed, trial.number, "inner").integers(2**31))
        inner = self._make_inner(inner_seed)
        fallback = trial_rng(self.seed, trial.number, "fallback")
        if not self.dedup:
            return self._view.draw(study, inner, fallback=fallback)
        seen = {self.space.key(t.params) for t in study.get_trials(deepcopy=False)
                if t.state.is_finished()}
        return self._view.draw(study, inner, accept=lambda c: self.space.key(c) not in seen,
                               tries=self.dedup_tries, fallback=fallback)


def _tpe(seed: int, **options: Any) -> optuna.samplers.BaseSampler:
    opts = {"constant_liar": False, **options}
    return optuna.samplers.TPESampler(seed=seed, **opts)


def _gp(seed: int, **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, **{"warn_independent_sampling": False,
                                                   **options})


def _require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise ImportError(
            "sampler 'gp' needs PyTorch, which is not installed; install the extra with "
            "pip install 'deploytune[gp]' (it pins torch==2.13.0)")


def make_tpe(space: Space, seed: int | None = None, budget: int | None = None,
             **options: Any) -> OptunaViewSampler:
    """``tpe``: Optuna's TPE with defaults, objective only, crashes as FAIL."""
    check_optuna_options(options, owner="tpe")
    return OptunaViewSampler(space, functools.partial(_tpe, **options), PlainTransform(), seed)


def make_ctpe(space: Space, seed: int | None = None, budget: int | None = None,
              **options: Any) -> OptunaViewSampler:
    """``ctpe``: TPE with constraints; crashes as graded infeasible trials."""
    check_optuna_options(options, owner="ctpe")
    return OptunaViewSampler(space, functools.partial(_tpe, **options), GradedTransform(), seed)


def make_gp(space: Space, seed: int | None = None, budget: int | None = None,
            **options: Any) -> OptunaViewSampler:
    """``gp``: Optuna's GP sampler with constraints; crashes as graded infeasible trials."""
    _require_torch()
    check_optuna_options(options, owner="gp")

    return OptunaViewSampler(space, functools.partial(_gp, **options), GradedTransform(), seed)


def register_all(register: Callable[..., None]) -> None:
    """Register ``tpe``, ``ctpe`` and ``gp``."""
    register("tpe", make_tpe, "Optuna's TPE as a typical user runs it: objective only, crashes "
             "ignored, constraints unseen")
    register("ctpe", make_ctpe, "Optuna's TPE told about the constraints; crashes become graded "
             "infeasible trials")
    register("gp", make_gp, "Optuna's Gaussian-process sampler, told about the constraints like "
             "ctpe; needs PyTorch: pip install 'deploytune[gp]'")
