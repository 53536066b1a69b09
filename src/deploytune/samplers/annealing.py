"""Thermal Budget Annealing (TBA): feasible-first, crash-aware simulated annealing.

Implements ``tba_spec.md`` sections 2 and 4.2 (the seed paper's "TBA pure SA"):

1. an initial random phase;
2. a **feasibility phase** that minimises the total normalised constraint violation;
3. an **optimisation phase**, entered on the first feasible observation, that maximises the
   objective among feasible states;

with an adaptive temperature (cooling on improvement, reheating after ``patience`` failures
to improve), a structural-move probability that decays over the budget, elite restarts,
a decaying snap-back to the best feasible state, and value / 2-way combination blacklisting.
Every mechanism has a switch in :class:`AnnealingSettings` so ablations can be run.

All state is *replayed* from the study's history: the sampler keeps no state of its own
beyond a cache, and random draws come from generators seeded by (seed, trial number, purpose).
A resumed or shared study therefore behaves exactly like an uninterrupted one.

Deviations from the original code (each explained in ``docs/algorithm.md``): an elite restart
moves the current state to the elite and proposes a *neighbour* of it instead of re-evaluating
the elite; proposals already evaluated are redrawn (``dedup``); log-scale integer moves step
in log space; violations are normalised by each limit; blacklist lookups are pure functions
of the history.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from deploytune.history import TrialRecord, observations
from deploytune.moves import neighbor
from deploytune.samplers._base import SpaceSampler, planned_budget, trial_rng
from deploytune.samplers._options import check_settings
from deploytune.samplers.blacklist import BlacklistTracker
from deploytune.space import Categorical, Config, Space

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

__all__ = ["Annealer", "AnnealingSettings", "AnnealingState", "TBASampler", "register_all"]

RANDOM, FEASIBILITY, OPTIMISATION = "random", "feasibility", "optimisation"


@dataclass(frozen=True)
class AnnealingSettings:
    """Constants and switches of the annealing phase (defaults: the paper's pure SA).

    Attributes:
        n_initial_random: Random trials before annealing starts.
        t_init: Initial temperature.
        t_min: Floor of the temperature.
        patience: Non-improving steps before a reheat.
        cooling_feasibility: Cooling factor on improvement in the feasibility phase.
        cooling_optimisation: Cooling factor on improvement in the optimisation phase.
        reheat_factor: Temperature multiplier of a reheat.
        reheat_cap: Reheats never exceed ``reheat_cap * t_init``.
        first_feasible_temperature: Temperature (x ``t_init``) on entering optimisation.
        adaptive_temperature: Reheating on stagnation (off: cool by the phase's factor every
            step, never reheat).
        p_structural_start: Probability of a structural (categorical) move at the start.
        p_structural_end: ... at the end of the schedule.
        p_structural_offset: Trials before the schedule starts.
        p_structural_horizon: Length of the schedule in trials (``None``: the rest of the
            budget after the random phase).
        adaptive_structural: Use the schedule (off: a constant ``p_structural_fixed``).
        p_structural_fixed: The constant used when ``adaptive_structural`` is off.
        sigma_v: Scale of violation differences in the feasibility-phase acceptance.
        elite_restart: Jump to the 2nd/3rd best feasible state every ``restart_interval``
            trials during the first ``restart_until`` of the budget.
        restart_interval: Trials between elite restarts.
        restart_until: Fraction of the budget after which no restart happens.
        snap_back: After an accepted worse move, jump back to the best feasible state with
            probability ``snap_back_prob * (1 - n / budget)``.
        snap_back_prob: See ``snap_back``.
        value_blacklist: Blacklist categorical values after repeated failures.
        combo_blacklist: Blacklist 2-way combinations after repeated failures.
        max_failures: Consecutive failures that blacklist.
        cooldown: Trials a blacklist entry lasts.
        combo_retries: Re-proposals while the candidate holds a blacklisted combination.
        dedup: Redraw proposals that were already evaluated.
        dedup_tries: Redraws before falling back to an unseen random configuration.
    """

    n_initial_random: int = 5
    t_init: float = 1.0
    t_min: float = 0.001
    patience: int = 4
    cooling_feasibility: float = 0.95
    cooling_optimisation: float = 0.92
    reheat_factor: float = 2.5
    reheat_cap: float = 0.8
    first_feasible_temperature: float = 0.7
    adaptive_temperature: bool = True
    p_structural_start: float = 0.5
    p_structural_end: float = 0.15
    p_structural_offset: int | None = None
    p_structural_horizon: int | None = None
    adaptive_structural: bool = True
    p_structural_fixed: float = 0.3
    sigma_v: float = 0.1
    elite_restart: bool = True
    restart_interval: int = 12
    restart_until: float = 0.7
    snap_back: bool = True
    snap_back_prob: float = 0.4
    value_blacklist: bool = True
    combo_blacklist: bool = True
    max_failures: int = 3
    cooldown: int = 8
    combo_retries: int = 9
    dedup: bool = True
    dedup_tries: int = 30

    def __post_init__(self) -> None:
        probability = (0.0, 1.0)
        check_settings(self, owner="tba", ranges={
            "n_initial_random": (0, None), "t_init": (1e-12, None), "t_min": (0, None),
            "patience": (0, None), "cooling_feasibility": probability,
            "cooling_optimisation": probability, "reheat_factor": (0, None),
            "reheat_cap": (0, None), "first_feasible_temperature": (0, None),
            "p_structural_start": probability, "p_structural_end": probability,
            "p_structural_offset": (0, None), "p_structural_horizon": (0, None),
            "p_structural_fixed": probability, "sigma_v": (0, None),
            "restart_interval": (1, None), "restart_until": probability,
            "snap_back_prob": probability, "max_failures": (1, None), "cooldown": (0, None),
            "combo_retries": (0, None), "dedup_tries": (0, None)})

    def p_structural(self, n: int, budget: int) -> float:
        """Probability of a structural move after ``n`` told trials."""
        if not self.adaptive_structural:
            return self.p_structural_fixed
        offset = self.n_initial_random if self.p_structural_offset is None else \
            self.p_structural_offset
        horizon = (budget - offset) if self.p_structural_horizon is None else \
            self.p_structural_horizon
        if horizon <= 0:
            return self.p_structural_start
        frac = min(1.0, max(0.0, (n - offset) / horizon))
        return self.p_structural_start + (self.p_structural_end - self.p_structural_start) * frac


@dataclass
class AnnealingState:
    """Everything the annealer knows, rebuilt from the history by :meth:`Annealer.replay`."""

    tracker: BlacklistTracker
    temperature: float
    n_told: int = 0
    phase: str = RANDOM
    current: Config | None = None
    current_v: float = math.inf
    current_f: float = -math.inf
    no_improve: int = 0
    steps_since_restart: int = 0
    force_random: bool = False
    handed_off: bool = False
    ran: list[tuple[Config, float, float | None]] = field(default_factory=list)
    feasible: list[tuple[Config, float]] = field(default_factory=list)
    evaluated: set[tuple[tuple[str, Any], ...]] = field(default_factory=set)
    families: set[Any] = field(default_factory=set)
    n_feasible: int = 0
    n_bad: int = 0
    numbers: list[int] = field(default_factory=list)

    @property
    def best(self) -> tuple[Config, float] | None:
        """The best feasible (config, sign-adjusted value), earliest on ties."""
        best: tuple[Config, float] | None = None
        for c, f in self.feasible:
            if best is None or f > best[1]:
                best = (c, f)
        return best


PreAskHook = Callable[[AnnealingState], None]


class Annealer:
    """The TBA state machine: ``pre_ask`` / ``propose`` / ``tell``, replayable from history.

    Args:
        space: The search space.
        settings: Constants and switches.
        seed: Seed of every random draw (combined with trial numbers).
        budget: The run's budget in trials (for schedules).
        sign: +1 to maximise the objective, -1 to minimise it.
        family_param: Categorical parameter that defines "families" (for handoff gates).
        pre_ask_hook: Extra ask-time transition (the hybrid's handoff test).
    """

    def __init__(self, space: Space, settings: AnnealingSettings, seed: int, budget: int,
                 family_param: str | None = None,
                 pre_ask_hook: PreAskHook | None = None) -> None:
        self.space = space
        self.s = settings
        self.seed = seed
        self.budget = budget
        self.family_param = family_param if family_param is not None else next(
            (p.name for p in space.params if isinstance(p, Categorical)), None)
        self.pre_ask_hook = pre_ask_hook
        self._cache: tuple[float, AnnealingState] | None = None

    def reseed(self, seed: int) -> None:
        """Draw from ``seed`` from now on (the replayed state depended on the old one)."""
        self.seed = seed
        self._cache = None

    # ------------------------------------------------------------------------------- replay
    def new_state(self) -> AnnealingState:
        """The state before any trial."""
        tracker = BlacklistTracker(self.space, self.s.max_failures, self.s.cooldown,
                                   values=self.s.value_blacklist, combos=self.s.combo_blacklist)
        return AnnealingState(tracker=tracker, temperature=self.s.t_init)

    def replay(self, history: Sequence[TrialRecord], sign: float) -> AnnealingState:
        """The state after ``history`` (finished trials in number order).

        Cached: when ``history`` extends the last replayed one, only the new trials are told.
        """
        numbers = [o.number for o in history]
        if (self._cache is not None and self._cache[0] == sign
                and numbers[: len(self._cache[1].numbers)] == self._cache[1].numbers):
            state = self._cache[1]
        else:
            state = self.new_state()
        for obs in history[len(state.numbers):]:
            self.pre_ask(state, obs.number)
            self.tell(state, obs, sign)
            state.numbers.append(obs.number)
        self._cache = (sign, state)
        return state

    # ------------------------------------------------------------------------------ ask side
    def pre_ask(self, state: AnnealingState, number: int) -> None:
        """Ask-time transitions before trial ``number``: initialisation, elite restart."""
        state.force_random = False
        if state.n_told < self.s.n_initial_random:
            return
        if state.phase == RANDOM:
            self._initialise(state, number)
        if self.pre_ask_hook is not None:
            self.pre_ask_hook(state)
        if (self.s.elite_restart and state.steps_since_restart >= self.s.restart_interval
                and state.n_told / self.budget < self.s.restart_until):
            state.steps_since_restart = 0
            ranked = sorted(state.feasible, key=lambda cf: -cf[1])
            if len(ranked) >= 3:
                pick = 1 + int(trial_rng(self.seed, number, "restart").integers(2))
            elif len(ranked) == 2:
                pick = 1
            else:
                state.force_random = True
                return
            state.current, state.current_f = dict(ranked[pick][0]), ranked[pick][1]

    def _initialise(self, state: AnnealingState, number: int) -> None:
        best = state.best
        if best is not None:
            state.phase = OPTIMISATION
            state.current, state.current_f = dict(best[0]), best[1]
            state.temperature = self.s.first_feasible_temperature * self.s.t_init
            return
        state.phase = FEASIBILITY
        runs = [(c, v) for c, v, _ in state.ran]
        if runs:
            c, v = min(runs, key=lambda cv: cv[1])
            state.current, state.current_v = dict(c), v
        else:
            state.current = self.space.sample(trial_rng(self.seed, number, "init"))
            state.current_v = math.inf

    def propose(self, state: AnnealingState, number: int) -> Config:
        """The configuration to evaluate as trial ``number`` (after :meth:`pre_ask`)."""
        rng = trial_rng(self.seed, number, "propose")
        if state.n_told < self.s.n_initial_random or state.current is None or state.force_random:
            return self.random_unseen(state, rng)
        t = state.n_told
        allowed = state.tracker.allowed_values(t) if self.s.value_blacklist else None
        p_s = self.s.p_structural(t, self.budget)
        check_combos = self.s.combo_blacklist and state.tracker.has_blocked_combos(t)
        last: Config | None = None
        combo_tries = 0
        for _ in range(1 + self.s.combo_retries + (self.s.dedup_tries if self.s.dedup else 0)):
            cand = neighbor(self.space, state.current, rng, state.temperature, p_s, allowed)
            if self.space.is_forbidden(cand):
                continue
            if check_combos and combo_tries < self.s.combo_retries and \
                    state.tracker.blocked_combos(cand, t):
                combo_tries += 1
                last = cand
                continue
            last = cand
            if self.s.dedup and self.space.key(cand) in state.evaluated:
                continue
            return cand
        if self.s.dedup or last is None:
            return self.random_unseen(state, rng)
        return last

    def random_unseen(self, state: AnnealingState, rng: np.random.Generator) -> Config:
        """A random configuration, not yet evaluated when ``dedup`` is on (if one is found in
        50 draws; else the last one drawn)."""
        config = self.space.sample(rng)
        for _ in range(50):
            if not self.s.dedup or self.space.key(config) not in state.evaluated:
                return config
            config = self.space.sample(rng)
        return config

    # ----------------------------------------------------------------------------- tell side
    def tell(self, state: AnnealingState, obs: TrialRecord, sign: float) -> None:
        """Update ``state`` with a finished trial (acceptance, temperature, blacklists)."""
        if obs.transient:
            return
        t = state.n_told
        state.tracker.record(obs.config, obs.bad, t)
        state.evaluated.add(self.space.key(obs.config))
        if self.family_param is not None and self.family_param in obs.config:
            state.families.add(obs.config[self.family_param])
        f = sign * obs.value if obs.value is not None and math.isfinite(obs.value) else None
        if obs.feasible and f is not None:
            state.feasible.append((dict(obs.config), f))
            state.n_feasible += 1
        else:
            state.n_bad += 1
        if not obs.crashed:
            state.ran.append((dict(obs.config), self._violation(obs), f))
        state.n_told += 1
        state.steps_since_restart += 1
        if state.phase == RANDOM or state.handed_off:
            return
        if obs.crashed:
            self._temperature(state, improved=False)
        elif state.phase == FEASIBILITY:
            self._tell_feasibility(state, obs, f)
        else:
            self._tell_optimisation(state, obs, f)

    @staticmethod
    def _violation(obs: TrialRecord) -> float:
        if obs.feasible:
            return 0.0
        v = obs.total_violation
        return v if v > 0 else math.inf  # aborted without a measured violation

    def _tell_feasibility(self, state: AnnealingState, obs: TrialRecord,
                          f: float | None) -> None:
        if obs.feasible and f is not None:
            state.phase = OPTIMISATION
            state.current, state.current_f = dict(obs.config), f
            state.temperature = self.s.first_feasible_temperature * self.s.t_init
            state.no_improve = 0
            return
        v = self._violation(obs)
        improved = v < state.current_v
        if improved:
            state.current, state.current_v = dict(obs.config), v
        elif v > state.current_v and math.isfinite(v):
            p = math.exp(-(v - state.current_v) / (state.temperature * self.s.sigma_v)) \
                if math.isfinite(state.current_v) else 0.0
            if trial_rng(self.seed, obs.number, "accept").random() < p:
                state.current, state.current_v = dict(obs.config), v
        self._temperature(state, improved)

    def _tell_optimisation(self, state: AnnealingState, obs: TrialRecord,
                           f: float | None) -> None:
        if not obs.feasible or f is None:
            self._temperature(state, improved=False)
            return
        values = [v for _, v in state.feasible]
        sigma_f = max(max(values) - min(values), 1e-6) if len(values) >= 2 else 1.0
        improved = f > state.current_f
        if improved:
            state.current, state.current_f = dict(obs.config), f
        else:
            p = math.exp(-(state.current_f - f) / (state.temperature * sigma_f))
            if trial_rng(self.seed, obs.number, "accept").random() < p:
                state.current, state.current_f = dict(obs.config), f
        self._temperature(state, improved)
        best = state.best
        if self.s.snap_back and best is not None and state.current_f < best[1]:
            p_snap = self.s.snap_back_prob * max(0.0, 1.0 - state.n_told / self.budget)
            if trial_rng(self.seed, obs.number, "snap").random() < p_snap:
                state.current, state.current_f = dict(best[0]), best[1]

    def _temperature(self, state: AnnealingState, improved: bool) -> None:
        cooling = (self.s.cooling_optimisation if state.phase == OPTIMISATION
                   else self.s.cooling_feasibility)
        if not self.s.adaptive_temperature:
            state.temperature *= cooling
        elif improved:
            state.no_improve = 0
            state.temperature *= cooling
        else:
            state.no_improve += 1
            if state.no_improve >= self.s.patience:
                state.temperature = min(self.s.reheat_factor * state.temperature,
                                        self.s.reheat_cap * self.s.t_init)
                state.no_improve = 0
        state.temperature = max(state.temperature, self.s.t_min)

    # ---------------------------------------------------------------------------- live asks
    def state_for(self, study: Study, number: int) -> AnnealingState:
        """The state at the ask of trial ``number``: history replayed, ask transitions done.

        Returns a copy; the cached replay is never modified by an ask.
        """
        sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
        history = [o for o in observations(study) if self.space.fits(o.config)]
        state = copy.deepcopy(self.replay(history, sign))
        self.pre_ask(state, number)
        return state


class TBASampler(SpaceSampler):
    """TBA, the seed paper's feasible-first, crash-aware simulated annealing (pure SA).

    Args:
        space: The search space.
        seed: Seed.
        budget: The run's budget in trials (schedules and restarts depend on it). ``None``
            assumes 50.
        family_param: The categorical parameter that defines model families (default: the
            first categorical parameter).
        **settings: Any field of :class:`AnnealingSettings` (switches for ablations).

    Example:
        >>> sampler = TBASampler(space, seed=0, budget=25, elite_restart=False)
        >>> study = optuna.create_study(sampler=sampler, direction="maximize")
    """

    def __init__(self, space: Space, seed: int | None = None, budget: int | None = None,
                 family_param: str | None = None, **settings: Any) -> None:
        super().__init__(space, seed)
        self.settings = replace(AnnealingSettings(), **settings)
        self.budget = planned_budget(budget)
        self.annealer = Annealer(space, self.settings, self.seed, self.budget, family_param)

    def reseed_rng(self) -> None:
        """A new seed for this sampler and its annealer (Optuna's forked workers)."""
        super().reseed_rng()
        self.annealer.reseed(self.seed)

    def propose(self, study: Study, trial: FrozenTrial) -> Config:
        """Replay the history, then propose a neighbour of the current state."""
        state = self.annealer.state_for(study, trial.number)
        return self.annealer.propose(state, trial.number)


def register_all(register: Callable[..., None]) -> None:
    """Register ``tba``."""
    register("tba", lambda space, seed=None, budget=None, **kw: TBASampler(
        space, seed=seed, budget=budget, **kw),
        "Thermal Budget Annealing: feasible-first, crash-aware simulated annealing")
