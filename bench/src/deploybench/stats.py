"""Statistics of a DeployBench: samplers judged per (problem, budget) cell, paired over seeds.

A *cell* is one (problem, budget) pair; each sampler has one run per seed in it. Per cell:

* the *lowest* sampler(s): the lowest mean normalised regret (every sampler tied at the lowest
  mean counts as lowest);
* for every sampler, a paired two-sided Wilcoxon signed-rank test of its per-seed regrets
  against those of the *best other* sampler (the lowest mean regret among the other samplers,
  the first in sampler order on ties), paired by seed. Zero differences are split between the
  signs (``zero_method="zsplit"``); when every difference is zero, ``p = 1``. A sampler is
  *significantly worse* when ``p < alpha`` and its mean regret is above the best other's
  (*significantly better* when below, which only the lowest sampler can be);
* waste relative to every other sampler: ratios of mean wasted trials and of mean wasted
  simulated seconds.

Across cells, per sampler (:class:`SamplerScore`): the share of cells where it is lowest, the
number of cells where it is significantly worse, its mean rank of regret and of wasted seconds
(1 = best, ties averaged), its waste relative to every other sampler as ratios of means over the
cells both ran, the median trials to first feasible over all its runs, and its discovery rate
over all its runs (:attr:`~deploybench.metrics.RunMetrics.discovered_all`).

Runs are the run summaries of :func:`deploybench.runner.run_bench` (``problem``,
``sampler``, ``seed``, ``budget``, ``metrics``).

The building blocks (the test, ties, ranks, ratios) are in :mod:`deploybench.stats_blocks`, the
markdown rendering in :mod:`deploybench.stats_report`; their public names are importable from
here.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploybench.metrics import Aggregate, RunMetrics, aggregate
from deploybench.stats_blocks import (
    TIE,
    discovery_fraction,
    lowest_samplers,
    rank,
    ratio,
    wilcoxon_p,
)
from deploybench.stats_report import matrix_markdown, stats_markdown

__all__ = [
    "ALPHA",
    "BenchStats",
    "CellStats",
    "SamplerCell",
    "SamplerScore",
    "bench_stats",
    "cell_stats",
    "discovery_fraction",
    "lowest_samplers",
    "matrix_markdown",
    "ratio",
    "stats_markdown",
    "wilcoxon_p",
]

ALPHA = 0.05
"""Significance level of the "significantly worse" flag."""


# ----------------------------------------------------------------------------------- one cell
@dataclass(frozen=True)
class SamplerCell:
    """One sampler in one (problem, budget) cell.

    Attributes:
        sampler: Sampler name.
        seeds: Seeds of its runs, sorted.
        regrets: Normalised regret per seed, in the order of ``seeds``.
        aggregate: Its runs summarised (:class:`~deploybench.metrics.Aggregate`).
        lowest: Whether its mean regret is the cell's lowest (ties: every tied sampler).
        reference: The best other sampler it is tested against (``None``: no other sampler
            has runs in the cell).
        n_pairs: Seeds both it and ``reference`` have runs for.
        p_value: Two-sided Wilcoxon p-value against ``reference`` (``None``: no pairs).
        significantly_worse: ``p_value < alpha`` and its mean regret above the reference's.
        significantly_better: ``p_value < alpha`` and its mean regret below the reference's.
    """

    sampler: str
    seeds: list[int]
    regrets: list[float]
    aggregate: Aggregate
    lowest: bool = False
    reference: str | None = None
    n_pairs: int = 0
    p_value: float | None = None
    significantly_worse: bool = False
    significantly_better: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the fields, with the aggregate's fields flattened in."""
        return {"sampler": self.sampler, "seeds": list(self.seeds),
                "regrets": list(self.regrets), "lowest": self.lowest,
                "reference": self.reference, "n_pairs": self.n_pairs,
                "p_value": self.p_value, "significantly_worse": self.significantly_worse,
                "significantly_better": self.significantly_better,
                **self.aggregate.to_dict()}


@dataclass(frozen=True)
class CellStats:
    """The samplers of one (problem, budget) cell, compared.

    Attributes:
        problem: Problem name.
        budget: Trials per run.
        samplers: One entry per sampler with runs in the cell, in sampler order.
        lowest: The samplers with the lowest mean regret (several on ties).
        waste_ratio: ``a -> b -> mean wasted trials of a / of b`` (see :func:`ratio`).
        seconds_ratio: ``a -> b -> mean wasted simulated seconds of a / of b``.
        alpha: The significance level used.
    """

    problem: str
    budget: int
    samplers: list[SamplerCell]
    lowest: list[str]
    waste_ratio: dict[str, dict[str, float | None]] = field(default_factory=dict)
    seconds_ratio: dict[str, dict[str, float | None]] = field(default_factory=dict)
    alpha: float = ALPHA

    def get(self, sampler: str) -> SamplerCell | None:
        """The entry of ``sampler``, or ``None`` when it has no runs in the cell."""
        return next((c for c in self.samplers if c.sampler == sampler), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"problem": self.problem, "budget": self.budget, "lowest": list(self.lowest),
                "alpha": self.alpha, "samplers": [c.to_dict() for c in self.samplers],
                "waste_ratio": self.waste_ratio, "seconds_ratio": self.seconds_ratio}


def _metrics_by_seed(runs: Sequence[Mapping[str, Any]]) -> dict[int, RunMetrics]:
    out: dict[int, RunMetrics] = {}
    for r in runs:
        m = r["metrics"]
        out[int(r["seed"])] = m if isinstance(m, RunMetrics) else RunMetrics.from_dict(m)
    return dict(sorted(out.items()))


def cell_stats(runs: Sequence[Mapping[str, Any]], problem: str, budget: int,
               samplers: Sequence[str] | None = None, alpha: float = ALPHA) -> CellStats:
    """Compare the samplers of one (problem, budget) cell.

    Args:
        runs: Run summaries (``problem``, ``sampler``, ``seed``, ``budget``, ``metrics`` as a
            :meth:`RunMetrics.to_dict` dict or a :class:`RunMetrics`); runs of other cells are
            ignored, a run without ``budget`` belongs to every budget.
        problem: The problem.
        budget: The budget.
        samplers: Samplers in order (default: those with runs, in order of appearance);
            samplers without runs in the cell are left out.
        alpha: Significance level.

    Returns:
        The :class:`CellStats`.
    """
    mine = [r for r in runs if r["problem"] == problem and r.get("budget", budget) == budget]
    order = list(samplers) if samplers is not None else list(
        dict.fromkeys(r["sampler"] for r in mine))
    by_sampler = {s: _metrics_by_seed([r for r in mine if r["sampler"] == s]) for s in order}
    by_sampler = {s: ms for s, ms in by_sampler.items() if ms}
    aggs = {s: aggregate(list(ms.values())) for s, ms in by_sampler.items()}
    means = {s: a.regret_mean for s, a in aggs.items()}
    lowest = lowest_samplers(means)
    cells: list[SamplerCell] = []
    for s, ms in by_sampler.items():
        others = {o: m for o, m in means.items() if o != s}
        best_other = lowest_samplers(others)
        ref = best_other[0] if best_other else None
        p: float | None = None
        n_pairs = 0
        worse = better = False
        if ref is not None:
            seeds = [seed for seed in ms if seed in by_sampler[ref]]
            n_pairs = len(seeds)
            p = wilcoxon_p([ms[seed].regret for seed in seeds],
                           [by_sampler[ref][seed].regret for seed in seeds])
            mean_s, mean_ref = means[s], means[ref]
            if p is not None and p < alpha and mean_s is not None and mean_ref is not None:
                worse = mean_s - mean_ref > TIE
                better = mean_ref - mean_s > TIE
        cells.append(SamplerCell(s, list(ms), [m.regret for m in ms.values()], aggs[s],
                                 lowest=s in lowest, reference=ref, n_pairs=n_pairs,
                                 p_value=p, significantly_worse=worse,
                                 significantly_better=better))
    waste = {a: {b: ratio(aggs[a].wasted_trials_mean, aggs[b].wasted_trials_mean)
                 for b in aggs if b != a} for a in aggs}
    seconds = {a: {b: ratio(aggs[a].wasted_seconds_mean, aggs[b].wasted_seconds_mean)
                   for b in aggs if b != a} for a in aggs}
    return CellStats(problem, budget, cells, lowest, waste, seconds, alpha)


# ---------------------------------------------------------------------------------- scoreboard
@dataclass(frozen=True)
class SamplerScore:
    """One sampler across every cell.

    Attributes:
        sampler: Sampler name.
        n_cells: Cells in which it has runs.
        cells_won: Cells where its mean regret is the lowest (ties count for every tied one).
        cells_won_share: ``cells_won / n_cells`` (``None`` without cells).
        cells_significantly_worse: Cells where it is significantly worse than the best other.
        regret_rank_mean: Mean over cells of its rank by mean regret (1 = lowest; ties
            averaged).
        wasted_seconds_rank_mean: Mean over cells of its rank by mean wasted simulated seconds.
        ttff_median: Median trials to first feasible over all its runs (a run without a
            feasible trial counts as its budget + 1).
        discovery_rate: Fraction of its runs that evaluated every family value that can be
            feasible (over runs on problems with families; ``None`` when there are none).
        waste_ratio: Other sampler -> its mean wasted trials / the other's, both over the cells
            both have runs in (ratio of means; ``None`` when the other wasted nothing there).
        seconds_ratio: Other sampler -> the same for wasted simulated seconds (dominated by
            the problems with expensive trials).
    """

    sampler: str
    n_cells: int
    cells_won: int
    cells_won_share: float | None
    cells_significantly_worse: int
    regret_rank_mean: float | None
    wasted_seconds_rank_mean: float | None
    ttff_median: float | None
    discovery_rate: float | None
    waste_ratio: dict[str, float | None]
    seconds_ratio: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"sampler": self.sampler, "n_cells": self.n_cells, "cells_won": self.cells_won,
                "cells_won_share": self.cells_won_share,
                "cells_significantly_worse": self.cells_significantly_worse,
                "regret_rank_mean": self.regret_rank_mean,
                "wasted_seconds_rank_mean": self.wasted_seconds_rank_mean,
                "ttff_median": self.ttff_median, "discovery_rate": self.discovery_rate,
                "waste_ratio": dict(self.waste_ratio),
                "seconds_ratio": dict(self.seconds_ratio)}


@dataclass(frozen=True)
class BenchStats:
    """Every cell of a bench, and the per-sampler scoreboard across them.

    Attributes:
        cells: One :class:`CellStats` per (problem, budget) with runs, problems outermost.
        scoreboard: One :class:`SamplerScore` per sampler, in sampler order.
        alpha: The significance level used.
    """

    cells: list[CellStats]
    scoreboard: list[SamplerScore]
    alpha: float = ALPHA

    def cell(self, problem: str, budget: int) -> CellStats | None:
        """The cell of (``problem``, ``budget``), or ``None``."""
        return next((c for c in self.cells if (c.problem, c.budget) == (problem, budget)), None)

    def score(self, sampler: str) -> SamplerScore | None:
        """The scoreboard entry of ``sampler``, or ``None``."""
        return next((s for s in self.scoreboard if s.sampler == sampler), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"alpha": self.alpha, "cells": [c.to_dict() for c in self.cells],
                "scoreboard": [s.to_dict() for s in self.scoreboard]}


def _mean(xs: Sequence[float]) -> float | None:
    return float(statistics.fmean(xs)) if xs else None


def bench_stats(runs: Sequence[Mapping[str, Any]], problems: Sequence[str] | None = None,
                samplers: Sequence[str] | None = None, budgets: Sequence[int] | None = None,
                alpha: float = ALPHA) -> BenchStats:
    """Compare the samplers in every (problem, budget) cell, and score them across cells.

    Args:
        runs: Run summaries (see :func:`cell_stats`); each needs ``budget``.
        problems: Problems in order (default: those in ``runs``, in order of appearance).
        samplers: Samplers in order (default: those in ``runs``, in order of appearance).
        budgets: Budgets in order (default: those in ``runs``, sorted).
        alpha: Significance level.

    Returns:
        The :class:`BenchStats`; cells without runs are left out.
    """
    problems = list(problems) if problems is not None else list(
        dict.fromkeys(r["problem"] for r in runs))
    samplers = list(samplers) if samplers is not None else list(
        dict.fromkeys(r["sampler"] for r in runs))
    budgets = list(budgets) if budgets is not None else sorted({int(r["budget"]) for r in runs})
    cells = [c for p in problems for b in budgets
             if (c := cell_stats(runs, p, b, samplers, alpha)).samplers]
    regret_ranks = [rank({e.sampler: e.aggregate.regret_mean for e in c.samplers})
                    for c in cells]
    seconds_ranks = [rank({e.sampler: e.aggregate.wasted_seconds_mean for e in c.samplers})
                     for c in cells]
    board: list[SamplerScore] = []
    for s in samplers:
        entries = [(i, e) for i, c in enumerate(cells) if (e := c.get(s)) is not None]
        n = len(entries)
        won = sum(e.lowest for _, e in entries)
        mine = [RunMetrics.from_dict(r["metrics"]) if not isinstance(r["metrics"], RunMetrics)
                else r["metrics"] for r in runs if r["sampler"] == s
                and any((r["problem"], r.get("budget")) == (cells[i].problem, cells[i].budget)
                        for i, _ in entries)]
        ttff = [float(m.trials_to_first_feasible if m.trials_to_first_feasible is not None
                      else m.n_trials + 1) for m in mine]
        waste: dict[str, float | None] = {}
        seconds: dict[str, float | None] = {}
        for o in samplers:
            if o == s:
                continue
            pairs = [(e.aggregate, other.aggregate) for i, e in entries
                     if (other := cells[i].get(o)) is not None]
            waste[o] = ratio(
                _mean([a.wasted_trials_mean or 0.0 for a, _ in pairs]) if pairs else None,
                _mean([b.wasted_trials_mean or 0.0 for _, b in pairs]) if pairs else None)
            seconds[o] = ratio(
                _mean([a.wasted_seconds_mean or 0.0 for a, _ in pairs]) if pairs else None,
                _mean([b.wasted_seconds_mean or 0.0 for _, b in pairs]) if pairs else None)
        board.append(SamplerScore(
            sampler=s, n_cells=n, cells_won=won, cells_won_share=won / n if n else None,
            cells_significantly_worse=sum(e.significantly_worse for _, e in entries),
            regret_rank_mean=_mean([regret_ranks[i][s] for i, _ in entries
                                    if s in regret_ranks[i]]),
            wasted_seconds_rank_mean=_mean([seconds_ranks[i][s] for i, _ in entries
                                            if s in seconds_ranks[i]]),
            ttff_median=float(statistics.median(ttff)) if ttff else None,
            discovery_rate=discovery_fraction(mine),
            waste_ratio=waste, seconds_ratio=seconds))
    return BenchStats(cells, board, alpha)
