"""A crash model: the probability that a configuration crashes, learnt from the history.

A small random forest (scikit-learn ``ExtraTreesClassifier``) over encoded configurations
(:class:`~deploytune.samplers._encoding.ConfigEncoder`), trained on every finished trial that is
not a transient crash: label 1 for a crash (``invalid_config``, ``oom``, ``timeout``,
``runtime_error``), 0 for a trial that ran (feasible, infeasible or aborted). Deterministic
given the history and a seed; refitted at every ask (a few hundred rows at most).

Samplers use it as a *gate*: a proposal whose predicted crash probability exceeds a threshold
is redrawn (see :class:`CrashGate`). Crash zones in deployment spaces are interactions
(quantized KV cache x no flash attention, batch size x precision x backend) that a forest finds
from a handful of examples, while TPE's per-parameter densities cannot represent them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deploytune.history import Observation
from deploytune.outcome import CrashKind, Status
from deploytune.samplers._encoding import ConfigEncoder
from deploytune.space import Config, Space

__all__ = ["CrashGate", "CrashModel"]


class CrashModel:
    """P(crash | configuration) from a history (``None`` model until both classes exist).

    Args:
        space: The search space.
        seed: Seed of the forest.
        min_crashes: Crashed trials needed before the model predicts anything.
        min_ran: Trials that ran needed before the model predicts anything.
        n_trees: Trees in the forest.
    """

    def __init__(self, space: Space, seed: int, history: Sequence[Observation], *,
                 min_crashes: int = 2, min_ran: int = 2, n_trees: int = 48) -> None:
        self.space = space
        self._encoder = ConfigEncoder(space)
        rows = [o for o in history
                if not (o.status is Status.CRASHED and o.crash_kind is CrashKind.TRANSIENT)]
        labels = np.array([o.status is Status.CRASHED for o in rows], dtype=int)
        self.n_crashed = int(labels.sum())
        self.n_ran = len(rows) - self.n_crashed
        self._forest = None
        if self.n_crashed >= min_crashes and self.n_ran >= min_ran:
            from sklearn.ensemble import ExtraTreesClassifier

            forest = ExtraTreesClassifier(n_estimators=n_trees, min_samples_leaf=1,
                                          max_features=None, random_state=seed % (2**32),
                                          n_jobs=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                forest.fit(self._encoder.encode([o.config for o in rows]), labels)
            self._forest = forest

    @property
    def ready(self) -> bool:
        """Whether the model predicts (enough crashes and runs seen)."""
        return self._forest is not None

    def p_crash(self, configs: Sequence[Config]) -> np.ndarray:
        """Predicted crash probability of each configuration (0 when not ready)."""
        if self._forest is None or not configs:
            return np.zeros(len(configs))
        proba = self._forest.predict_proba(self._encoder.encode(list(configs)))
        classes = list(self._forest.classes_)
        return np.asarray(proba[:, classes.index(1)]) if 1 in classes else np.zeros(len(configs))


@dataclass
class CrashGate:
    """Accept a proposal only when its predicted crash probability is at most ``threshold``.

    Attributes:
        model: The crash model of the current history.
        threshold: The largest accepted crash probability.
        rejected: How many proposals this gate refused (for diagnostics).
    """

    model: CrashModel
    threshold: float
    rejected: int = 0

    def __call__(self, config: Config) -> bool:
        """Whether ``config`` passes the gate."""
        if not self.model.ready:
            return True
        ok = bool(self.model.p_crash([config])[0] <= self.threshold)
        if not ok:
            self.rejected += 1
        return ok
