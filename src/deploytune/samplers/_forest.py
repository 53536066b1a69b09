"""One scikit-learn forest regressor, fitted once and read tree by tree.

The surrogates of ``cabo`` (:mod:`deploytune.samplers._cabo_models`, extremely randomised
trees) and ``smac`` (:mod:`deploytune.samplers.smac_rf`, a random forest) are both forests
whose predictive mean and variance are those of the individual trees' predictions; this
module fits either kind and reads the trees back.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["Forest"]


class Forest:
    """A fitted forest regressor: per-tree predictions and their mean and variance.

    Args:
        estimator: The scikit-learn forest regressor class (``ExtraTreesRegressor``,
            ``RandomForestRegressor``).
        x: Training rows.
        y: Training targets.
        seed: Seed of the forest (taken modulo ``2**32``, scikit-learn's range).
        **settings: Keyword arguments of ``estimator`` (``n_estimators``, ``max_features``,
            ...); the forest always fits in one thread.

    Example:
        >>> from sklearn.ensemble import ExtraTreesRegressor
        >>> forest = Forest(ExtraTreesRegressor, x, y, seed=0, n_estimators=12)
        >>> mean, variance = forest.mean_and_variance(candidates)
    """

    def __init__(self, estimator: type[Any], x: np.ndarray, y: np.ndarray, seed: int,
                 **settings: Any) -> None:
        self.estimator = estimator(**settings, random_state=seed % (2**32), n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.estimator.fit(x, y)

    def per_tree(self, x: np.ndarray) -> np.ndarray:
        """Predictions of every tree at the rows of ``x``: shape (trees, rows).

        Calls the fitted trees' low-level ``tree_.predict`` on float32 rows (what
        ``DecisionTreeRegressor.predict`` does after validating its input, which costs more
        than the prediction itself on a few hundred candidates)."""
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        return np.stack([t.tree_.predict(x32).reshape(len(x32))
                         for t in self.estimator.estimators_])

    def mean(self, x: np.ndarray) -> np.ndarray:
        """Mean of the trees' predictions at the rows of ``x``."""
        return np.asarray(self.per_tree(x).mean(axis=0))

    def mean_and_variance(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of the trees' predictions at the rows of ``x``."""
        per_tree = self.per_tree(x)
        return per_tree.mean(axis=0), per_tree.var(axis=0)
