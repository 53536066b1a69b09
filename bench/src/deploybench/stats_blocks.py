"""Building blocks of the bench statistics (:mod:`deploybench.stats`): the paired Wilcoxon
signed-rank test, the samplers tied at the lowest mean, ranks, waste ratios and the discovery
fraction.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from deploybench.metrics import RunMetrics

__all__ = ["TIE", "discovery_fraction", "lowest_samplers", "rank", "ratio", "wilcoxon_p"]

TIE = 1e-12
"""Differences this small count as ties (floating-point noise)."""


def wilcoxon_p(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Two-sided p-value of a paired Wilcoxon signed-rank test of ``x`` against ``y``.

    Zero differences (``|x - y| <= 1e-12``) are split evenly between the positive and the
    negative ranks (``zero_method="zsplit"``), ties share ranks.

    Args:
        x: Per-seed values of one sampler.
        y: The other sampler's values for the same seeds, in the same order.

    Returns:
        The p-value; ``1.0`` when every difference is zero; ``None`` without pairs.

    Raises:
        ValueError: When ``x`` and ``y`` differ in length.
    """
    if len(x) != len(y):
        raise ValueError(f"wilcoxon_p: {len(x)} values paired with {len(y)}")
    if not x:
        return None
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d[np.abs(d) <= TIE] = 0.0
    if not np.any(d):
        return 1.0
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample and ties notes
        p = float(wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)
    return min(1.0, p) if math.isfinite(p) else 1.0


def lowest_samplers(means: Mapping[str, float | None]) -> list[str]:
    """The samplers tied at the lowest mean (within ``1e-12``), in the mapping's order.

    Args:
        means: Sampler -> mean regret (``None``: no runs, never lowest).

    Returns:
        Every sampler whose mean equals the lowest; empty when no mean is known.
    """
    known = {s: m for s, m in means.items() if m is not None}
    if not known:
        return []
    low = min(known.values())
    return [s for s, m in known.items() if m - low <= TIE]


def discovery_fraction(runs: Sequence[RunMetrics]) -> float | None:
    """Fraction of runs that evaluated every family value that can be feasible.

    Args:
        runs: Runs of one sampler (on one or several problems).

    Returns:
        The fraction, over the runs whose problem has families; ``None`` when none has.
    """
    known = [r.discovered_all for r in runs if r.discovered_all is not None]
    return float(sum(known)) / len(known) if known else None


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` for waste ratios: ``1.0`` when both are zero, ``None`` when ``b`` is zero
    alone or either is unknown."""
    if a is None or b is None:
        return None
    if b == 0:
        return 1.0 if a == 0 else None
    return a / b


def rank(values: Mapping[str, float | None]) -> dict[str, float]:
    """Rank 1 = lowest, ties averaged; unknown values are left out."""
    from scipy.stats import rankdata

    known = [(s, v) for s, v in values.items() if v is not None]
    if not known:
        return {}
    ranks = rankdata([v for _, v in known], method="average")
    return {s: float(r) for (s, _), r in zip(known, ranks, strict=True)}
