"""How each importance ranking is computed: fANOVA for the objective, a random forest's grouped
permutation importance for a class (crashed, infeasible, a crash kind, a violated constraint).

scikit-learn and Optuna's importance module are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deploytune.analysis._features import INACTIVE, FeatureMatrix, is_conditional
from deploytune.analysis.importance_report import Ranking
from deploytune.outcome import Objective, Status
from deploytune.samplers._encoding import same_value
from deploytune.space import Categorical, Config, Float, Int, Space
from deploytune.tuner import TrialRecord

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = [
    "FOREST_METHOD",
    "MIN_CLASS_EXAMPLES",
    "MIN_FEASIBLE",
    "classifier_ranking",
    "objective_ranking",
]

MIN_FEASIBLE = 4
"""Fewest feasible trials (with a finite objective value) for an objective ranking."""
MIN_CLASS_EXAMPLES = 3
"""Fewest trials on each side (e.g. crashed and not crashed) for a classification ranking."""
FOREST_METHOD = "random forest, permutation importance"
"""The ``method`` of a classification ranking."""

_N_TREES = 100
_FOREST_DEPTH = 4
_MIN_LEAF = 2
_PERMUTATION_REPEATS = 10
_FANOVA_METHOD = "fANOVA (Optuna) on the feasible trials"

_Encode = Callable[[Any], Any]


def _normalised(raw: Mapping[str, float], order: Sequence[str]) -> dict[str, float]:
    """Shares summing to 1, most important first (ties in space order); empty if all zero."""
    clean = {n: max(0.0, float(raw.get(n, 0.0))) for n in order}
    clean = {n: (v if math.isfinite(v) else 0.0) for n, v in clean.items()}
    total = sum(clean.values())
    if total <= 0:
        return {}
    rank = {n: i for i, n in enumerate(order)}
    return dict(sorted(((n, v / total) for n, v in clean.items()),
                       key=lambda nv: (-nv[1], rank[nv[0]])))


# ------------------------------------------------------------------------------- objective


def _distributions(space: Space, configs: Sequence[Config]
                   ) -> tuple[dict[str, BaseDistribution], dict[str, _Encode]]:
    """The Optuna distribution of each parameter that varies among ``configs``, and how a value
    (or :data:`INACTIVE`) becomes a value of it: an inactive categorical is one more choice, an
    inactive number a value below the range (on the log scale for a log parameter)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists: dict[str, BaseDistribution] = {}
    encoders: dict[str, Any] = {}  # lambdas with defaults: mypy cannot type them
    token = "(inactive)"
    for p in space.params:
        if not any(p.name in c for c in configs):
            continue
        if not is_conditional(p, configs):
            dist = p.distribution()
            encoders[p.name] = lambda v: v
        elif isinstance(p, Categorical):
            while any(same_value(token, c) for c in p.choices):
                token = f"({token})"
            dist = CategoricalDistribution([*p.choices, token])
            encoders[p.name] = lambda v, t=token: t if v is INACTIVE else v
        else:
            assert isinstance(p, (Int, Float))
            scale = math.log if p.log else float
            lo, hi = scale(p.low), scale(p.high)
            below = lo - max(hi - lo, 1.0)
            dist = FloatDistribution(below, hi)
            encoders[p.name] = lambda v, s=scale, b=below: b if v is INACTIVE else float(s(v))
        if not dist.single():
            dists[p.name] = dist
    return dists, encoders


def _derived_study(feasible: Sequence[TrialRecord], values: Sequence[float],
                   dists: Mapping[str, BaseDistribution], encoders: Mapping[str, _Encode],
                   seed: int) -> optuna.Study:
    """An in-memory study of the feasible trials, their values scaled to at most 1 in
    magnitude (fANOVA's shares do not depend on the scale, and huge values would overflow its
    variances: 1e308 squared)."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        # the direction does not matter to fANOVA: it decomposes the variance
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    magnitude = max(abs(v) for v in values) or 1.0
    for t, value in zip(feasible, values, strict=True):
        params = {n: encoders[n](t.config.get(n, INACTIVE)) for n in dists}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dict(dists),
                                                  value=value / magnitude))
    return study


def objective_ranking(trials: Sequence[TrialRecord], space: Space, objective: Objective,
                      seed: int) -> Ranking:
    """fANOVA (Optuna) on a derived in-memory study of the feasible trials."""
    from optuna.importance import FanovaImportanceEvaluator

    target = f"objective: {objective.metric}"
    feasible = [t for t in trials if t.status is Status.FEASIBLE and t.value is not None
                and math.isfinite(t.value)]
    n = len(feasible)
    if n < MIN_FEASIBLE:
        return Ranking(target, {}, n, None, _FANOVA_METHOD,
                       f"only {n} feasible trial(s) with a finite {objective.metric}; an "
                       f"objective ranking needs at least {MIN_FEASIBLE}")
    dists, encoders = _distributions(space, [t.config for t in feasible])
    if not dists:
        return Ranking(target, {}, n, None, _FANOVA_METHOD,
                       "no parameter varies among the feasible trials")
    values = [float(t.value or 0.0) for t in feasible]  # all finite (filtered above)
    study = _derived_study(feasible, values, dists, encoders, seed)
    constant = (f"{objective.metric} does not vary with the parameters among the feasible "
                f"trials")
    if len(set(values)) < 2:
        return Ranking(target, {}, n, None, _FANOVA_METHOD, constant)
    try:
        raw = FanovaImportanceEvaluator(seed=seed).evaluate(study)
    except RuntimeError:  # every tree of the forest predicts a constant
        raw = {}
    except (AssertionError, ArithmeticError, ValueError) as exc:  # fANOVA's own checks
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Ranking(target, {}, n, None, _FANOVA_METHOD,
                       f"fANOVA failed on these values ({detail})")
    shares = _normalised(raw, space.names)
    return Ranking(target, shares, n, None, _FANOVA_METHOD, None if shares else constant)


# --------------------------------------------------------------------------------- classes


def _brier(proba: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    """Class-balanced Brier score of the positive class's probability (lower is better)."""
    return float(np.average((proba - y) ** 2, weights=weight))


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    """Weights that give both classes the same total."""
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    return np.where(y > 0, len(y) / (2 * n_pos), len(y) / (2 * n_neg))


def _permutation_importance(forest: Any, features: FeatureMatrix, y: np.ndarray,
                            seed: int) -> dict[str, float]:
    """Parameter -> how much the forest's class-balanced Brier score worsens, on average over
    :data:`_PERMUTATION_REPEATS` shuffles of the rows of all of its columns together."""
    x = features.matrix
    n = len(y)
    pos = list(forest.classes_).index(1.0)
    weight = _balanced_weights(y)
    rng = np.random.default_rng(seed)
    # every shuffled copy of the data in one matrix: one predict_proba call per ranking
    names = list(features.groups)
    copies = [x]
    for name in names:
        cols = features.groups[name]
        for _ in range(_PERMUTATION_REPEATS):
            shuffled = x.copy()
            shuffled[:, cols] = x[rng.permutation(n)][:, cols]
            copies.append(shuffled)
    proba = forest.predict_proba(np.vstack(copies))[:, pos].reshape(len(copies), n)
    base = _brier(proba[0], y, weight)
    raw: dict[str, float] = {}
    for i, name in enumerate(names):
        block = proba[1 + i * _PERMUTATION_REPEATS: 1 + (i + 1) * _PERMUTATION_REPEATS]
        raw[name] = float(np.mean([_brier(p, y, weight) for p in block])) - base
    return raw


def classifier_ranking(target: str, configs: Sequence[Config],
                       labels: Sequence[bool], space: Space, seed: int, what: str) -> Ranking:
    """A shallow random forest on the encoded configurations; grouped permutation importance.

    Args:
        target: The ranking's target (``"crash"``, ``"violates latency_ms <= 20"``, ...).
        configs: The configurations.
        labels: Whether each had the outcome.
        space: The search space.
        seed: Seeds the forest and the shuffles.
        what: The outcome in words, for the note when a class is too small (``"crashed"``).
    """
    from sklearn.ensemble import RandomForestClassifier

    y = np.asarray(labels, dtype=float)
    n_pos = int(y.sum())
    n = len(y)
    if n_pos < MIN_CLASS_EXAMPLES or n - n_pos < MIN_CLASS_EXAMPLES:
        return Ranking(target, {}, n, n_pos, FOREST_METHOD,
                       f"{n_pos} {what} and {n - n_pos} other trial(s); a ranking needs at "
                       f"least {MIN_CLASS_EXAMPLES} of each")
    features = FeatureMatrix(space, configs)
    forest = RandomForestClassifier(n_estimators=_N_TREES, max_depth=_FOREST_DEPTH,
                                    min_samples_leaf=_MIN_LEAF, class_weight="balanced",
                                    random_state=seed, n_jobs=1)
    forest.fit(features.matrix, y)
    shares = _normalised(_permutation_importance(forest, features, y, seed), space.names)
    note = None if shares else "no parameter separates the classes"
    return Ranking(target, shares, n, n_pos, FOREST_METHOD, note)
