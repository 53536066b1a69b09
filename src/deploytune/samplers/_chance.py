"""The incumbent a chance-constrained recommendation would pick, inside a sampler.

:func:`chance_incumbent` is the value expected improvement should beat: the best mean
objective among the evaluated configurations that meet the chance constraint (a fresh run meets
every constraint with probability at least ``confidence``), else that of the configuration
most likely to be feasible. A lucky run of a marginal configuration is not the bar.

A sampler's constraint models see one normalised violation per run. When configurations have
been run more than once (the tuner's re-runs of an uncertain incumbent, a resumed study's
re-queued trials), the spread between the runs of one configuration *is* the measurement noise,
and it differs by region: on a CPU, INT8 runs spread more than fp32 runs.
:class:`ConstraintNoise` pools those spreads as :mod:`deploytune.feasibility` does
(configuration -> region -> study, :class:`~deploytune.feasibility.PooledNoise`), on the
encoded rows: a row's *region* is its one-hot (unordered categorical) columns. The study level
starts from the sampler's own noise estimate (``cabo``'s spread floor), so that without repeats
a configuration's P(met) uses that floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

from deploytune.feasibility import PRIOR_DOF, PooledNoise
from deploytune.history import TrialRecord

__all__ = ["ConstraintNoise", "chance_incumbent"]


def _key(row: np.ndarray) -> bytes:
    return np.ascontiguousarray(row).tobytes()


class ConstraintNoise:
    """One constraint's run-to-run spread (normalised violation units) by encoded row.

    Args:
        x: Encoded rows of the runs that reported the constraint.
        y: Their violations.
        nominal: The columns that make a row's region (one-hot columns).
        prior_sd: The study level's prior spread.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, nominal: Sequence[int],
                 prior_sd: float) -> None:
        self.nominal = list(nominal)
        per_row: dict[bytes, list[float]] = {}
        regions: dict[bytes, bytes] = {}
        for row, v in zip(x, y, strict=True):
            k = _key(row)
            per_row.setdefault(k, []).append(float(v))
            regions[k] = _key(row[self.nominal])
        self.per_row = per_row
        self.regions = regions
        self._pooled = PooledNoise(per_row, regions, prior_sd * prior_sd)
        rates = [v for vs in per_row.values() for v in vs]
        # a count-like constraint (error_rate <= 0): no run ever met it with room to spare
        self.is_rate = bool(rates) and min(rates) >= 0.0

    def p_met(self, key: bytes, met_share: float) -> float:
        """P(a fresh run of the configuration ``key`` meets the constraint) from its runs: the
        predictive normal; for a count-like constraint, the share of its runs at zero shrunk
        toward ``met_share`` (as :func:`deploytune.feasibility.assess` does); 1 without runs."""
        values = self.per_row.get(key, [])
        if not values:
            return 1.0
        if self.is_rate:
            met = sum(v <= 0 for v in values)
            return (met + PRIOR_DOF * met_share) / (len(values) + PRIOR_DOF)
        s = math.sqrt(self._pooled.variance(key, self.regions[key]))
        mean = sum(values) / len(values)
        return float(ndtr(-mean / (s * math.sqrt(1 + 1 / len(values)))))

    def met_share(self) -> float:
        """Share of the runs that met the constraint among configurations that met it once."""
        able = [v for vs in self.per_row.values() if any(u <= 0 for u in vs) for v in vs]
        return sum(v <= 0 for v in able) / len(able) if able else 1.0


def chance_incumbent(history: Sequence[TrialRecord], x: np.ndarray,
                     noises: dict[str, ConstraintNoise], values: dict[int, float],
                     confidence: float) -> float | None:
    """The best mean objective (``values``: history index -> signed, standardised value of the
    runs that have one) among configurations feasible at least once whose P(feasible) is at
    least ``confidence``; else the mean of the one most likely feasible; ``None`` when no run
    was feasible.

    Args:
        history: The runs (crashes included), in the order of ``x``'s rows.
        x: Their encoded rows.
        noises: Per constraint label, its noise model.
        values: Objective values by history index.
        confidence: The chance constraint's level.
    """
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(x):
        groups.setdefault(_key(row), []).append(i)
    shares = {label: n.met_share() for label, n in noises.items() if n.is_rate}
    best: float | None = None
    likeliest: tuple[float, float] | None = None
    for key, rows in groups.items():
        if not any(history[i].feasible for i in rows):
            continue
        ran = [i for i in rows if not history[i].crashed]
        p = len(ran) / len(rows)
        for label, noise in noises.items():
            p *= noise.p_met(key, shares.get(label, 1.0))
        objective = [values[i] for i in ran if i in values]
        if not objective:
            continue
        mean = sum(objective) / len(objective)
        if p >= confidence and (best is None or mean > best):
            best = mean
        if likeliest is None or p > likeliest[0]:
            likeliest = (p, mean)
    if best is not None:
        return best
    return None if likeliest is None else likeliest[1]
