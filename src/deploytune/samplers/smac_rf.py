"""``smac``: a SMAC-style Bayesian optimisation baseline with a random-forest surrogate.

This is our own implementation of the ideas behind SMAC3's hyperparameter-optimisation facade
(Hutter, Hoos and Leyton-Brown, "Sequential Model-Based Optimization for General Algorithm
Configuration", LION 2011; Lindauer et al., "SMAC3", JMLR 2022), written as a deploytune
:class:`~deploytune.samplers.SpaceSampler`. No SMAC code is used. (``pip install smac==2.4.1``
installs cleanly, since SMAC 2.4 fits its forest with scikit-learn rather than pyrfr, but it
would add some 25 packages, among them dask, distributed, ConfigSpace and pynisher, and it keeps
its own run history, output directory and random state; a sampler whose whole state is the
Optuna study's history plus a seed is simpler to keep reproducible on resume.)

How it works, per ask (everything is recomputed from the study's finished trials and the seed,
so a resumed study proposes exactly what an uninterrupted one would):

1. **Initial design.** The first ``n_init`` trials are points of a scrambled Sobol sequence
   (seeded by ``seed`` only; trial ``k`` takes point ``k``), mapped onto the space; inactive
   coordinates are dropped, forbidden or already evaluated points are replaced by random
   unseen configurations. ``n_init`` follows SMAC's rule, 10 per parameter but at most a
   quarter of the budget, with a floor of 5 so the forest has something to split:
   ``min(budget, max(5, min(10 * n_params, budget // 4)))``; 5, 6 and 12 trials for budgets of
   15, 25 and 50 on a four-parameter space.
2. **Costs.** SMAC minimises a cost; here ``cost = -value`` when maximising, ``value`` when
   minimising. SMAC has no native constraints, so they are folded into the cost:

   * *infeasible* (a constraint violated): ``worst feasible cost + span * (0.1 + v / (1 + v))``
     with ``v`` the total normalised violation and ``span`` the range of the objective costs
     measured so far; every infeasible trial ranks below every feasible one, and a larger
     violation below a smaller one;
   * *aborted* (stopped early by the tuner): treated as infeasible with its partial
     violation (at least 1e-3), i.e. scored on its partial measurements;
   * *crashed* (any kind but transient): SMAC's ``crash_cost``: a cost worse than anything
     observed, ``largest cost of a trial that ran + 0.1 * span``. Crashed trials stay in the
     training data, so the forest learns where configurations crash;
   * *transient* crashes say nothing about the configuration and are ignored.

   Before fitting, costs are min-max scaled and log-transformed, the idea of SMAC's
   log-scaled run-history encoder (:func:`log_scale`): ``y = log((c - c_min + d) /
   (c_max - c_min + d))``, where the offset ``d`` is the distance from the best cost to the
   5th percentile of the costs, so the incumbent does not dominate the fit.
3. **Surrogate.** A scikit-learn ``RandomForestRegressor`` with SMAC's HPO-facade settings:
   10 trees, bootstrapping, all features considered per split, ``min_samples_split`` 2,
   ``min_samples_leaf`` 1. Configurations are encoded with categoricals one-hot, integers and
   floats scaled to [0, 1] (in log space for ``log`` parameters); like SMAC, inactive
   conditional parameters are imputed with a value outside the range (-1 for numbers, an
   all-zero one-hot block for categoricals). The predictive mean and variance are those of the
   individual trees' predictions. The forest is fitted once per ask.
4. **Acquisition.** Expected improvement over the incumbent (the lowest transformed cost seen)
   for log-transformed costs (SMAC's ``EI(log=True)``, ``xi = 0``): with ``m, s`` the
   forest's mean and standard deviation of ``y`` and ``eta`` the incumbent's ``y``,
   ``EI = e^eta * Phi(z) - e^(m + s^2/2) * Phi(z - s)``, ``z = (eta - m) / s``.
5. **Maximisation** (SMAC's local-and-sorted-random search, scaled down): EI is evaluated on
   ``n_random_candidates`` random configurations, then a best-improvement local search in the
   one-exchange neighbourhood (each categorical to each other value; each number by four
   Gaussian steps of 0.2 of its unit range; newly active children drawn at random) starts from
   the ``n_local_starts // 2`` best evaluated configurations and the best random candidates,
   for at most ``local_search_steps`` moves. The candidate of highest EI (lower predicted mean
   on ties) that was not evaluated yet is proposed. On a small all-discrete space (at most
   ``max_enumerate`` configurations) every configuration is scored instead.
6. **Random interleaving.** As in SMAC's ``ProbabilityRandomDesign``, with probability
   ``random_probability`` (0.2) a trial after the initial design is a random unseen
   configuration instead.

An already evaluated configuration is never proposed again while unseen ones can be found.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import ndtr

from deploytune.history import TrialRecord
from deploytune.moves import draw_unseen, one_exchange_neighbours
from deploytune.outcome import Status
from deploytune.samplers._base import SpaceSampler, draw_number, planned_budget, trial_rng
from deploytune.samplers._encoding import ConfigEncoder
from deploytune.samplers._forest import Forest
from deploytune.samplers._local_search import local_search
from deploytune.space import Categorical, Config, Float, Int, Param, Space

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

__all__ = ["RandomForestSampler", "default_n_init", "make_smac", "register_all", "training_costs"]

_Key = tuple[tuple[str, Any], ...]

"""Imputed unit value of an inactive numeric parameter (outside [0, 1], as SMAC does)."""

_LOG_EPS = 1e-3
_INFEASIBLE_BASE = 0.1
_CRASH_MARGIN = 0.1
_NEIGHBOUR_SD = 0.2
_NUMERIC_NEIGHBOURS = 4
_MAX_CATEGORICAL_NEIGHBOURS = 8


def default_n_init(n_params: int, budget: int) -> int:
    """SMAC's initial-design size (10 per parameter, at most a quarter of the budget), at
    least 5 and at most the budget."""
    return max(1, min(budget, max(5, min(10 * n_params, budget // 4))))


def training_costs(history: Sequence[TrialRecord], sign: float) -> list[tuple[Config, float]]:
    """The (configuration, cost) pairs the forest is trained on; lower cost is better.

    See the module docstring: feasible trials cost ``-sign * value``; infeasible and aborted
    ones the worst feasible cost plus a penalty growing with their violation; crashes a cost
    worse than anything observed. Transient crashes are left out. Empty when no trial ran
    (only crashes): there is then nothing to learn from.

    Args:
        history: Finished trials, in trial-number order.
        sign: +1 when the objective is maximised, -1 when it is minimised.
    """
    used = [o for o in history if not o.transient]

    def measured(o: TrialRecord) -> float | None:
        if o.value is None or not math.isfinite(o.value):
            return None
        return -sign * float(o.value)

    feasible = [c for o in used if o.feasible and (c := measured(o)) is not None]
    ran = [c for o in used if not o.crashed and (c := measured(o)) is not None]
    if not ran and not any(not o.crashed for o in used):
        return []
    worst_f = max(feasible) if feasible else (max(ran) if ran else 0.0)
    span = (max(ran) - min(ran)) if len(ran) >= 2 else 0.0
    if not span > 1e-12:
        span = max(1.0, abs(worst_f))
    costs: list[float | None] = []
    for o in used:
        c = measured(o) if o.feasible else None
        if o.feasible and c is None:  # a feasible run without a finite value: a crash
            costs.append(None)
        elif o.feasible:
            costs.append(c)
        elif o.crashed:
            costs.append(None)
        else:
            v = o.total_violation
            if o.status is Status.ABORTED:
                v = max(v, 1e-3)
            costs.append(worst_f + span * (_INFEASIBLE_BASE + v / (1.0 + v)))
    known = [c for c in costs if c is not None]
    crash_cost = (max(known) if known else worst_f) + _CRASH_MARGIN * span
    return [(dict(o.config), crash_cost if c is None else c) for o, c in zip(used, costs,
                                                                                strict=True)]


def log_scale(costs: np.ndarray, percentile: float = 5.0) -> np.ndarray:
    """Costs min-max scaled and log-transformed (the idea of SMAC's log-scaled encoder).

    The best cost is not sent to ``log(0)``: every cost is first shifted by ``d``, the distance
    between the minimum and the ``percentile``-th percentile of the costs (at least a
    thousandth of their range), so the best trials are spread out without dominating:
    ``y = log((c - c_min + d) / (c_max - c_min + d))``, in ``(-inf, 0]``.
    """
    lo, hi = float(costs.min()), float(costs.max())
    d = max(float(np.percentile(costs, percentile)) - lo, _LOG_EPS * (hi - lo), 1e-300)
    return np.asarray(np.log((costs - lo + d) / (hi - lo + d)))


def _improves(new: float, old: float) -> bool:
    """The local search's acceptance rule: a move must raise EI by a relative ``1e-9`` (and
    above ``1e-300``), so that ties and rounding never move a start."""
    return bool(new > old * (1 + 1e-9) + 1e-300)


class _Surrogate:
    """A fitted forest: predictive mean and variance across trees, and log-EI."""

    def __init__(self, x: np.ndarray, y: np.ndarray, random_state: int, n_trees: int,
                 min_samples_split: int, min_samples_leaf: int, max_features: float,
                 log_y: bool) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self.forest = Forest(RandomForestRegressor, x, y, random_state, n_estimators=n_trees,
                             bootstrap=True, max_features=max_features,
                             min_samples_split=min_samples_split,
                             min_samples_leaf=min_samples_leaf)
        self.eta = float(np.min(y))
        self.log_y = log_y

    def expected_improvement(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(EI, predictive mean) at the rows of ``x``; EI for log-transformed costs when the
        forest was fitted to log-scaled costs."""
        m, var = self.forest.mean_and_variance(x)
        s = np.sqrt(np.maximum(var, 1e-12))
        z = (self.eta - m) / s
        with np.errstate(over="ignore", invalid="ignore"):
            if self.log_y:
                ei = math.exp(self.eta) * ndtr(z) - np.exp(m + 0.5 * s * s) * ndtr(z - s)
            else:
                ei = (self.eta - m) * ndtr(z) + s * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        ei = np.where(np.isfinite(ei), np.maximum(ei, 0.0), 0.0)
        return ei, m


class RandomForestSampler(SpaceSampler):
    """``smac``: SMAC-style Bayesian optimisation with a random forest and crash handling.

    See the module docstring for the algorithm. SMAC has no native constraints: violations
    are folded into the cost as a penalty above the worst feasible cost, and crashes get a
    cost worse than anything observed (SMAC's ``crash_cost``).

    Args:
        space: The search space.
        seed: Seed; ``None`` draws one (the run is then not reproducible).
        budget: The run's budget in trials (sizes the initial design); ``None`` assumes 50.
        n_init: Initial-design size; default: :func:`default_n_init`.
        n_trees: Trees of the forest.
        min_samples_split: The forest's ``min_samples_split``.
        min_samples_leaf: The forest's ``min_samples_leaf``.
        max_features: Fraction of features considered per split.
        random_probability: Probability that a trial after the initial design is random.
        n_random_candidates: Random configurations scored by EI per ask.
        n_local_starts: Starting points of the local search (half the best evaluated
            configurations, half the best random candidates).
        local_search_steps: Moves of each local search at most.
        max_enumerate: All-discrete spaces with at most this many configurations are
            scored exhaustively.
        log_y: Fit the forest to log-scaled costs (:func:`log_scale`) and use the matching
            log EI, as SMAC's HPO facade does; ``False``: min-max scaled costs, plain EI.
        log_percentile: The percentile that sets the offset of :func:`log_scale`.

    Example:
        >>> sampler = RandomForestSampler(space, seed=0, budget=50)
        >>> study = optuna.create_study(sampler=sampler, direction="maximize")
    """

    def __init__(self, space: Space, seed: int | None = None, budget: int | None = None,
                 n_init: int | None = None, n_trees: int = 10, min_samples_split: int = 2,
                 min_samples_leaf: int = 1, max_features: float = 1.0,
                 random_probability: float = 0.2, n_random_candidates: int = 500,
                 n_local_starts: int = 10, local_search_steps: int = 10,
                 max_enumerate: int = 2000, log_y: bool = True,
                 log_percentile: float = 5.0) -> None:
        super().__init__(space, seed)
        self.budget = planned_budget(budget)
        self.n_init = int(n_init) if n_init is not None else default_n_init(len(space),
                                                                            self.budget)
        self.n_trees = n_trees
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_probability = random_probability
        self.n_random_candidates = n_random_candidates
        self.n_local_starts = n_local_starts
        self.local_search_steps = local_search_steps
        self.max_enumerate = max_enumerate
        self.log_y = log_y
        self.log_percentile = log_percentile
        self._encoder = ConfigEncoder(space)
        self._all: list[Config] | None = None
        self._enumerated = False

    def warm_up(self) -> None:
        """Import scikit-learn's forests (see :meth:`SpaceSampler.warm_up`)."""
        import sklearn.ensemble  # noqa: F401

    # ------------------------------------------------------------------------------- propose
    def propose(self, study: Study, trial: FrozenTrial) -> Config:
        """Initial design, a random interleave, or the EI maximiser (see the module)."""
        sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
        history = self.history(study)
        seen = {self.space.key(self._in_space(o.config)) for o in history if not o.transient}
        number = draw_number(study, trial)
        n_used = sum(not o.transient for o in history)
        rng = trial_rng(self.seed, number, "smac")
        if n_used < self.n_init:
            return self._initial(number, seen, rng)
        if trial_rng(self.seed, number, "interleave").random() < self.random_probability:
            return self.random_unseen(seen, rng)
        data = training_costs(history, sign)
        if not data:
            return self.random_unseen(seen, rng)
        configs = [self._in_space(c) for c, _ in data]
        costs = np.array([c for _, c in data])
        lo, hi = float(costs.min()), float(costs.max())
        if not hi > lo:
            return self.random_unseen(seen, rng)
        y = (log_scale(costs, self.log_percentile) if self.log_y
             else (costs - lo) / (hi - lo))
        model = _Surrogate(self._encoder.encode(configs), y,
                           int(trial_rng(self.seed, number, "forest").integers(2**31)),
                           self.n_trees, self.min_samples_split, self.min_samples_leaf,
                           self.max_features, self.log_y)
        order = np.argsort(y, kind="stable")
        best = [configs[i] for i in order[: max(1, self.n_local_starts // 2)]]
        pick = self._maximise(model, best, seen, rng)
        return pick if pick is not None else self.random_unseen(seen, rng)

    def _in_space(self, config: Config) -> Config:
        return {k: v for k, v in config.items() if k in self.space}

    # ------------------------------------------------------------------------ initial design
    def _initial(self, number: int, seen: set[_Key], rng: np.random.Generator) -> Config:
        from scipy.stats import qmc

        sobol = qmc.Sobol(len(self.space), scramble=True,
                          seed=trial_rng(self.seed, 0, "sobol"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if number > 0:
                sobol.fast_forward(number)
            u = sobol.random(1)[0]
        config: Config = {}
        for p, ui in zip(self.space.params, u, strict=True):
            if self.space.is_active(p, config):
                config[p.name] = self._encoder.from_unit(p, float(ui))
        if self.space.is_forbidden(config) or self.space.key(config) in seen:
            return self.random_unseen(seen, rng)
        return config

    # ------------------------------------------------------------------------------ random
    def random_unseen(self, seen: set[_Key], rng: np.random.Generator) -> Config:
        """A random valid configuration that was not evaluated yet, if one can be found."""
        config, found = draw_unseen(self.space, seen, rng, 100)
        if found:
            return config
        unseen = [c for c in self._enumerate() or () if self.space.key(c) not in seen]
        return unseen[int(rng.integers(len(unseen)))] if unseen else config

    def _enumerate(self) -> list[Config] | None:
        """Every valid configuration of a small all-discrete space (cached), else ``None``."""
        if self._enumerated:
            return self._all
        self._enumerated = True
        sizes = []
        for p in self.space.params:
            if isinstance(p, Float) and p.high > p.low:
                return None
            sizes.append(len(p.choices) if isinstance(p, Categorical)
                         else (p.high - p.low) // (p.step or 1) + 1 if isinstance(p, Int)
                         else 1)
        if math.prod(sizes) > self.max_enumerate:
            return None

        def values(p: Param) -> list[Any]:
            if isinstance(p, Categorical):
                return list(p.choices)
            if isinstance(p, Int):
                return list(range(p.low, p.high + 1, p.step or 1))
            assert isinstance(p, Float)
            return [float(p.low)]

        def walk(i: int, config: Config) -> Iterator[Config]:
            if i == len(self.space.params):
                yield dict(config)
                return
            p = self.space.params[i]
            if not self.space.is_active(p, config):
                yield from walk(i + 1, config)
                return
            for v in values(p):
                config[p.name] = v
                yield from walk(i + 1, config)
            del config[p.name]

        self._all = [c for c in walk(0, {}) if not self.space.is_forbidden(c)]
        return self._all

    # ---------------------------------------------------------------------------- maximise
    def _maximise(self, model: _Surrogate, best: list[Config], seen: set[_Key],
                  rng: np.random.Generator) -> Config | None:
        """The unseen candidate of highest EI (lower mean on ties), or ``None``."""
        pool: list[Config] = []
        scores: list[np.ndarray] = []
        means: list[np.ndarray] = []

        def ei_only(cands: list[Config]) -> np.ndarray:
            return model.expected_improvement(self._encoder.encode(cands))[0]

        def score(cands: list[Config]) -> np.ndarray:  # and record, as candidates
            ei, m = model.expected_improvement(self._encoder.encode(cands))
            pool.extend(cands)
            scores.append(ei)
            means.append(m)
            return ei

        everything = self._enumerate()
        if everything is not None:
            score(everything)
        else:
            randoms = [self.space.sample(rng) for _ in range(self.n_random_candidates)]
            ei_r = score(randoms)
            n_rand = max(0, self.n_local_starts - len(best))
            top = np.argsort(-ei_r, kind="stable")[:n_rand]
            local_search([*best, *(randoms[i] for i in top)], score, self._neighbours, rng,
                         self.local_search_steps, rate_starts=ei_only, accept=_improves)
        ei_all, m_all = np.concatenate(scores), np.concatenate(means)
        for i in np.lexsort((m_all, -ei_all)):
            cand = pool[int(i)]
            if self.space.key(cand) not in seen:
                return cand
        return None

    def _neighbours(self, config: Config, rng: np.random.Generator) -> list[Config]:
        """The one-exchange neighbourhood of ``config`` (forbidden ones left out)."""
        return one_exchange_neighbours(self.space, self._encoder, config, rng,
                                       [_NEIGHBOUR_SD] * _NUMERIC_NEIGHBOURS,
                                       max_nominal=_MAX_CATEGORICAL_NEIGHBOURS)


def make_smac(space: Space, seed: int | None = None, budget: int | None = None,
              **options: Any) -> RandomForestSampler:
    """``smac``: :class:`RandomForestSampler` (``options`` are its keyword arguments)."""
    return RandomForestSampler(space, seed=seed, budget=budget, **options)


def register_all(register: Callable[..., None]) -> None:
    """Register ``smac``."""
    register("smac", make_smac, "SMAC-style random-forest Bayesian optimisation (our own code); "
             "crashes cost worse than anything seen")
