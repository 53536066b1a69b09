"""TBA -> TPE: feasible-first annealing, then the whole history handed to Optuna's TPE.

Implements ``tba_spec.md`` section 3 (the seed paper's headline method). Phase 1 is the
annealer of :mod:`deploytune.samplers.annealing` with the hybrid's settings (3 random trials,
cooling 0.92 in both stages, a structural-move probability 0.5 -> 0.25 over 15 trials, no elite
restart, no snap-back). At the start of every Phase-1 ask the handoff test runs:

* fewer than ``min_phase1`` trials: stay;
* ``max_phase1`` trials or more: hand off (safety valve);
* otherwise hand off when there are ``min_feasible`` feasible trials, ``min_bad`` bad ones
  (crashed, infeasible or aborted) and ``min_families`` distinct values of the family
  parameter among the evaluated configurations (crashed ones included).

Handoff is one-way. Phase 2 is TPE (no start-up trials) on a mirror of *every* trial so far,
where crashes are infeasible trials with a graded, normalised violation
(:class:`~deploytune.samplers._view.GradedTransform`), and proposals already evaluated are
redrawn. Like every deploytune sampler, the whole state is derived from the history and the
seed, including the moment of the handoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from deploytune.samplers._base import SpaceSampler, planned_budget, trial_rng
from deploytune.samplers._options import check_optuna_options
from deploytune.samplers._view import GradedTransform, HistoryView
from deploytune.samplers.annealing import Annealer, AnnealingSettings, AnnealingState
from deploytune.space import Config, Space

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

__all__ = ["HYBRID_SETTINGS", "TBATPESampler", "register_all"]

HYBRID_SETTINGS = AnnealingSettings(
    n_initial_random=3,
    cooling_feasibility=0.92,
    cooling_optimisation=0.92,
    p_structural_start=0.5,
    p_structural_end=0.25,
    p_structural_offset=0,
    p_structural_horizon=15,
    elite_restart=False,
    snap_back=False,
)
"""Phase-1 settings of the hybrid (the original code's ``TBATPEHybrid`` defaults)."""


class TBATPESampler(SpaceSampler):
    """TBA -> TPE hybrid sampler.

    Args:
        space: The search space.
        seed: Seed.
        budget: The run's budget in trials (``None`` assumes 50).
        min_phase1: No handoff before this many trials.
        max_phase1: Forced handoff at this many trials (safety valve).
        min_feasible: Feasible trials needed for the handoff.
        min_bad: Crashed / infeasible / aborted trials needed for the handoff.
        min_families: Distinct values of ``family_param`` needed for the handoff.
        family_param: Categorical parameter that defines families (default: the first
            categorical parameter of the space).
        handoff: Enable the handoff (off: pure Phase-1 annealing forever).
        dedup: Redraw proposals that were already evaluated, in both phases.
        tpe_options: Keyword arguments for Optuna's ``TPESampler`` in Phase 2.
        **settings: Fields of :class:`AnnealingSettings` overriding :data:`HYBRID_SETTINGS`.
    """

    def __init__(self, space: Space, seed: int | None = None, budget: int | None = None, *,
                 min_phase1: int = 5, max_phase1: int = 15, min_feasible: int = 5,
                 min_bad: int = 3, min_families: int = 1, family_param: str | None = None,
                 handoff: bool = True, dedup: bool = True,
                 tpe_options: dict[str, Any] | None = None, **settings: Any) -> None:
        super().__init__(space, seed)
        self.budget = planned_budget(budget)
        self.settings = replace(HYBRID_SETTINGS, dedup=dedup, **settings)
        self.min_phase1, self.max_phase1 = min_phase1, max_phase1
        self.min_feasible, self.min_bad, self.min_families = min_feasible, min_bad, min_families
        self.handoff = handoff
        self.dedup = dedup
        self.tpe_options = {"n_startup_trials": 0, "constant_liar": False,
                            **(tpe_options or {})}
        check_optuna_options(self.tpe_options, owner="tba-tpe: tpe_options")
        self.annealer = Annealer(space, self.settings, self.seed, self.budget, family_param,
                                 pre_ask_hook=self._handoff_test)
        self._view = HistoryView(space, GradedTransform())

    def _handoff_test(self, state: AnnealingState) -> None:
        if state.handed_off or not self.handoff:
            return
        n = state.n_told
        if n < self.min_phase1:
            return
        if n >= self.max_phase1 or (state.n_feasible >= self.min_feasible
                                    and state.n_bad >= self.min_bad
                                    and len(state.families) >= self.min_families):
            state.handed_off = True

    def phase(self, study: Study, number: int) -> str:
        """``"tba"`` or ``"tpe"``: the phase that proposes trial ``number``."""
        return "tpe" if self.annealer.state_for(study, number).handed_off else "tba"

    def reseed_rng(self) -> None:
        """A new seed for this sampler and its annealer (Optuna's forked workers)."""
        super().reseed_rng()
        self.annealer.reseed(self.seed)

    def propose(self, study: Study, trial: FrozenTrial) -> Config:
        """Phase 1: an annealing move. Phase 2: TPE on the graded mirror of the history."""
        state = self.annealer.state_for(study, trial.number)
        if not state.handed_off:
            return self.annealer.propose(state, trial.number)
        import optuna

        inner_seed = int(trial_rng(self.seed, trial.number, "tpe").integers(2**31))
        inner = optuna.samplers.TPESampler(seed=inner_seed, **self.tpe_options)
        fallback = trial_rng(self.seed, trial.number, "fallback")
        if not self.dedup:
            return self._view.draw(study, inner, fallback=fallback)

        def accept(c: Config) -> bool:
            return self.space.key(c) not in state.evaluated

        return self._view.draw(study, inner, accept=accept, tries=self.settings.dedup_tries,
                               fallback=fallback)


def register_all(register: Callable[..., None]) -> None:
    """Register ``tba-tpe`` and ``tba-tpe-paper`` (the original code's exact configuration).
    The crash-gated variants ``tba-tpe-gate`` / ``tba-tpe-gate2`` lost their A/B and were
    removed on 2026-12-07 (docs/benchmarks.md keeps their numbers)."""
    register("tba-tpe", lambda space, seed=None, budget=None, **kw: TBATPESampler(
        space, seed=seed, budget=budget, **kw),
        "TBA's feasible-first annealing, then the whole history handed to Optuna's TPE")
    register("tba-tpe-paper", lambda space, seed=None, budget=None, **kw: TBATPESampler(
        space, seed=seed, budget=budget, **{"dedup": False, **kw}),
        "tba-tpe with the original research code's settings (re-evaluations allowed)")
