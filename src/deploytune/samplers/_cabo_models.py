"""The models of ``cabo`` (:mod:`deploytune.samplers.cabo`): crash, constraint, objective and
cost forests over one history, and the acquisition they make.

Private machinery: :class:`~deploytune.samplers.cabo.CaboSampler` is the public face. Every
switch is a field of :class:`~deploytune.samplers.cabo.CaboSettings`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import log_ndtr, ndtr

from deploytune.feasibility import DEFAULT_CONFIDENCE
from deploytune.history import TrialRecord
from deploytune.samplers._chance import ConstraintNoise, chance_incumbent
from deploytune.samplers._encoding import INACTIVE, ConfigEncoder
from deploytune.samplers._forest import Forest
from deploytune.samplers.memory import MemoryDominance
from deploytune.samplers.signature import CrashSignatures
from deploytune.space import Config, Space

if TYPE_CHECKING:
    from deploytune.samplers.cabo import CaboSettings

__all__ = ["CrashRules", "Models"]

_VIOLATION_CLIP = (-2.0, 4.0)
_COST_SPREAD = 1.5
_MIN_COST_S = 0.1
"""Costs below this many seconds count as this many: differences between evaluations that take
milliseconds are timing noise, and would make two runs of the same seed diverge."""


def _forest(x: np.ndarray, y: np.ndarray, n_trees: int, seed: int) -> Forest:
    """Extremely randomised trees (fast to fit, smooth spread between trees)."""
    from sklearn.ensemble import ExtraTreesRegressor

    return Forest(ExtraTreesRegressor, x, y, seed, n_estimators=n_trees, min_samples_leaf=1,
                  max_features=0.6, bootstrap=False)


def _standardised(y: np.ndarray, best: float | None) -> tuple[np.ndarray, float | None]:
    """``y`` at mean 0 and standard deviation 1, and ``best`` on the same scale.

    Finite values near the largest float (an evaluator reporting ``1e308``) overflow the mean
    and the spread; then ``y`` is first divided by its largest magnitude, which gives the same
    standardised values without the overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        mu, sd = float(y.mean()), float(y.std()) or 1.0
    if not (math.isfinite(mu) and math.isfinite(sd)):
        scale = float(np.max(np.abs(y)))
        y = y / scale
        best = None if best is None else best / scale
        mu, sd = float(y.mean()), float(y.std()) or 1.0
    return (y - mu) / sd, None if best is None else (best - mu) / sd


def _noise_floor(x: np.ndarray, y: np.ndarray, cap: float) -> float:
    """A constraint's spread floor estimated from its runs (see
    ``CaboSettings.violation_sd_floor``):
    the median of ``|y_i - y_j|`` over each run ``i`` and its nearest other run ``j``, over
    ``sqrt(2)``, clipped to ``[cap / 10, cap]``; ``cap`` with fewer than 5 runs."""
    if len(y) < 5:
        return cap
    sq = (x * x).sum(axis=1)
    # squared distances by the Gram matrix (a few ms at 300 runs); rounded, so that ties
    # between equally near runs are broken the same way whatever the BLAS
    d = np.round(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 9)
    np.fill_diagonal(d, np.inf)
    nearest = np.argmin(d, axis=1)
    noise = float(np.median(np.abs(y - y[nearest]))) / math.sqrt(2.0)
    return min(cap, max(cap / 10.0, noise))


class _Trend:
    """A ridge regression of ``y`` on the ordered columns of ``x`` (inactive values at the
    middle of their range): the part of a constraint's violation that grows or falls along
    the ordered parameters, which goes on beyond the runs seen (see
    ``CaboSettings.violation_trend``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, columns: Sequence[int],
                 penalty: float) -> None:
        self.columns = list(columns)
        z = self._features(x)
        self.z_mean, self.y_mean = z.mean(axis=0), float(y.mean())
        zc = z - self.z_mean
        gram = zc.T @ zc + penalty * np.eye(zc.shape[1])
        self.weights = np.linalg.solve(gram, zc.T @ (y - self.y_mean))

    def _features(self, x: np.ndarray) -> np.ndarray:
        z = x[:, self.columns]
        return np.where(z == INACTIVE, 0.5, z)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The trend's prediction for each row."""
        return np.asarray(self.y_mean + (self._features(x) - self.z_mean) @ self.weights)


def _repeated(x: np.ndarray, history: Sequence[TrialRecord]) -> bool:
    """Whether some configuration ran (did not crash) more than once: evidence of how much
    its measurements move between runs."""
    ran = x[[i for i, o in enumerate(history) if not o.crashed]]
    return len(np.unique(ran, axis=0)) < len(ran)


@dataclass(frozen=True)
class CrashRules:
    """What the crashes of one history rule out, or make likelier, as the settings ask:
    memory dominance (``memory_rules``) and repeated crashes of a nominal signature
    (``signature_rule``)."""

    dominance: MemoryDominance
    signatures: CrashSignatures | None
    hard_signature: bool
    """Signatures that crashed the same deterministic way twice are ruled out."""

    def memory_rules_out(self, config: Config) -> bool:
        """Memory dominance rules ``config`` out."""
        return self.dominance.rules_out(config)

    def signature_rules_out(self, config: Config) -> bool:
        """The hard signature rule rules ``config`` out (two or more repeated crashes)."""
        return (self.hard_signature and self.signatures is not None
                and self.signatures.repeats(config) >= 2)

    def floor(self, configs: Sequence[Config]) -> np.ndarray | None:
        """Lower bounds on the crash probabilities of ``configs`` (None when there are none):
        the floors of repeated signature crashes."""
        return self.signatures.floor(configs) if self.signatures else None


class Models:
    """The crash, constraint, objective and cost models of one history (see the module).

    Args:
        space: The search space.
        history: Finished, non-transient trials.
        sign: +1 when the objective is maximised, -1 when minimised.
        settings: Which models to fit and how.
        seed: Seed of the forests.
        encoder: The configuration encoder.
        confidence: The chance constraint's level (the incumbent's, ``chance_incumbent``).
    """

    def __init__(self, space: Space, history: Sequence[TrialRecord], sign: float,
                 settings: CaboSettings, seed: int, encoder: ConfigEncoder,
                 confidence: float = DEFAULT_CONFIDENCE) -> None:
        self.space = space
        self.encoder = encoder
        self.settings = settings
        configs = [o.config for o in history]
        x = encoder.encode(configs) if configs else np.zeros((0, encoder.width))
        self.x_seen = x
        crashed = np.array([o.crashed for o in history], dtype=float)
        ran = [i for i, o in enumerate(history) if not o.crashed]
        self.n_ran = len(ran)
        self.n_crashed = int(crashed.sum())
        self.any_feasible = any(o.feasible for o in history)
        n = settings.n_trees
        # crash model: needs both classes
        self._crash: Forest | None = None
        if settings.crash_model and self.n_crashed and self.n_ran:
            self._crash = _forest(x, crashed, n, seed)
        # constraint models, one per constraint label seen on runs
        self._constraints: list[Forest] = []
        self._trends: list[_Trend | None] = []
        self._floors: list[float] = []
        violations: dict[str, tuple[list[int], np.ndarray, float]] = {}
        if settings.constraint_models and len(ran) >= 2:
            labels = sorted({k for i in ran for k in history[i].violations})
            for k, label in enumerate(labels):
                rows = [i for i in ran if label in history[i].violations]
                if len(rows) < 2:
                    continue
                y = np.clip([history[i].violations[label] for i in rows], *_VIOLATION_CLIP)
                trend = None
                if (settings.violation_trend > 0 and encoder.ordered_columns
                        and not self.any_feasible):
                    trend = _Trend(x[rows], y, encoder.ordered_columns,
                                   settings.violation_trend)
                residual = y if trend is None else y - trend(x[rows])
                self._constraints.append(_forest(x[rows], residual, n, seed + 1 + k))
                self._trends.append(trend)
                floor = _noise_floor(x[rows], y, settings.violation_sd_floor)
                self._floors.append(floor)
                violations[label] = (rows, y, floor)
        # objective model over runs with a finite value
        rows = [i for i in ran if history[i].value is not None
                and math.isfinite(float(history[i].value or 0.0))]
        self._objective: Forest | None = None
        self.incumbent: float | None = None
        if len(rows) >= 2:
            y = np.array([sign * float(history[i].value or 0.0) for i in rows])
            feas = [sign * float(o.value) for o in history
                    if o.feasible and o.value is not None and math.isfinite(float(o.value))]
            z, self.incumbent = _standardised(y, max(feas) if feas else None)
            self._objective = _forest(x[rows], z, n, seed + 101)
            if settings.chance_incumbent and feas and _repeated(x, history):
                noises = {label: ConstraintNoise(x[r], v, encoder.nominal_columns, floor)
                          for label, (r, v, floor) in violations.items()}
                self.incumbent = chance_incumbent(
                    history, x, noises, dict(zip(rows, z.tolist(), strict=True)), confidence)
        # cost model over log seconds
        self._cost: Forest | None = None
        costs = np.array([max(o.cost_s, _MIN_COST_S) for o in history])
        if (settings.cost_exponent > 0 and len(history) >= 3
                and float(costs.max()) > _COST_SPREAD * float(costs.min())):
            self._cost = _forest(x, np.log(costs), n, seed + 202)
            ran_costs = [max(o.cost_s, _MIN_COST_S) for o in history if not o.crashed]
            self._typical_cost = float(np.median(ran_costs if ran_costs else costs))

    @property
    def informative(self) -> bool:
        """Whether any trial ran (else only distance from the crashes can guide)."""
        return self.n_ran > 0

    def p_crash(self, x: np.ndarray) -> np.ndarray:
        """Predicted crash probability (0 without a crash model)."""
        if self._crash is None:
            return np.zeros(len(x))
        return np.clip(self._crash.mean(x), 0.0, 1.0)

    def p_constraints(self, x: np.ndarray) -> np.ndarray:
        """Predicted probability that every constraint is met (1 without models)."""
        p = np.ones(len(x))
        for z in self._met_z(x):
            p *= ndtr(z)
        return p

    def _met_z(self, x: np.ndarray) -> Iterator[np.ndarray]:
        """Per constraint model: ``-m / s``, the standardised margin of each row (its
        probability of being met is ``Phi`` of it)."""
        for forest, trend, floor in zip(self._constraints, self._trends, self._floors,
                                        strict=True):
            mean, var = forest.mean_and_variance(x)
            if trend is not None:
                mean = mean + trend(x)
            yield -mean / np.sqrt(var + floor**2)

    def log_p_constraints(self, x: np.ndarray) -> np.ndarray:
        """``log`` of :meth:`p_constraints`, without its underflow: when every run so far
        violates a constraint by many spreads, each ``Phi(-m / s)`` is 0 in floating point
        for every candidate, while its logarithm still orders them by how far they are
        predicted to miss."""
        lp = np.zeros(len(x))
        for z in self._met_z(x):
            lp += log_ndtr(z)
        return lp

    def log_pof(self, x: np.ndarray, crash_floor: np.ndarray | None = None) -> np.ndarray:
        """``log`` of :meth:`pof`, computed without underflow (``-inf`` where a crash is
        certain)."""
        with np.errstate(divide="ignore"):
            return np.log1p(-self._p_crash_at_least(x, crash_floor)) + self.log_p_constraints(x)

    def objective(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the standardised objective (0, 1 without a model)."""
        if self._objective is None:
            return np.zeros(len(x)), np.ones(len(x))
        mean, var = self._objective.mean_and_variance(x)
        return mean, np.sqrt(var + 1e-6)

    def expected_cost(self, x: np.ndarray) -> np.ndarray:
        """Predicted seconds of each row (1 without a cost model)."""
        if self._cost is None:
            return np.ones(len(x))
        return np.asarray(np.exp(self._cost.mean(x)))

    def acquisition(self, x: np.ndarray, crash_floor: np.ndarray | None = None) -> np.ndarray:
        """The score of each row (higher is better); see the module docstring.
        ``crash_floor``: lower bounds on the rows' crash probabilities (repeated signature
        crashes)."""
        if not self.informative:
            d = self.distance_to_seen(x)
            return d if crash_floor is None else d * (1.0 - crash_floor)
        m, s = self.objective(x)
        if not (self.any_feasible and self.incumbent is not None
                and self.settings.objective_model):
            return self._feasible_first(x, m, crash_floor)
        pof = self.pof(x, crash_floor)
        z = (m - self.incumbent) / s
        ei = (m - self.incumbent) * ndtr(z) + s * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        score = np.maximum(ei, 0.0) * pof
        if not np.any(score > 0):
            score = pof
        waste = self._waste(x, pof)
        if waste is not None:
            score = score / (1.0 + waste) ** self.settings.cost_exponent
        return score

    def _waste(self, x: np.ndarray, pof: np.ndarray) -> np.ndarray | None:
        """Expected wasted seconds of each row over the typical run's, ``(1 - PoF) *
        predicted seconds / typical``; ``None`` when the cost penalty is off or there is
        no cost model."""
        if self.settings.cost_exponent <= 0 or self._cost is None:
            return None
        return np.asarray((1.0 - pof) * self.expected_cost(x) / self._typical_cost)

    def _feasible_first(self, x: np.ndarray, m: np.ndarray,
                        crash_floor: np.ndarray | None) -> np.ndarray:
        """The acquisition before anything is feasible: PoF, the objective's mean breaking
        near-ties, divided by the cost penalty; computed in log space, so it still ranks the
        candidates where PoF underflows to 0 for all of them (every run so far missed a
        constraint by far), and returned as ``1 / (1 - log score)``: positive, and in the
        same order as ``PoF * (1 + 1e-3 tanh(m)) / penalty``."""
        log_pof = self.log_pof(x, crash_floor)
        log_score = log_pof + np.log1p(1e-3 * np.tanh(m))
        waste = self._waste(x, np.exp(log_pof))
        if waste is not None:
            log_score -= self.settings.cost_exponent * np.log1p(waste)
        with np.errstate(divide="ignore"):
            return 1.0 / (1.0 - np.minimum(log_score, 0.5))

    def pof(self, x: np.ndarray, crash_floor: np.ndarray | None = None) -> np.ndarray:
        """Probability of feasibility: no crash and every constraint met (the crash
        probability at least ``crash_floor`` where given)."""
        return (1.0 - self._p_crash_at_least(x, crash_floor)) * self.p_constraints(x)

    def _p_crash_at_least(self, x: np.ndarray, crash_floor: np.ndarray | None) -> np.ndarray:
        """:meth:`p_crash`, raised to ``crash_floor`` where given."""
        p_crash = self.p_crash(x)
        return p_crash if crash_floor is None else np.maximum(p_crash, crash_floor)

    def distance_to_seen(self, x: np.ndarray) -> np.ndarray:
        """Euclidean distance of each row to the nearest evaluated configuration."""
        if not len(self.x_seen):
            return np.ones(len(x))
        d = ((x[:, None, :] - self.x_seen[None, :, :]) ** 2).sum(axis=2)
        return np.sqrt(d.min(axis=1))
