"""Metrics of one benchmark run, and their aggregation over seeds.

A *run* is one ``optimize()`` call of a sampler on a :class:`~deploybench.problem.Problem`
with one seed. :func:`run_metrics` turns its trials into a :class:`RunMetrics`;
:func:`aggregate` summarises the runs of one (problem, sampler) pair over seeds into an
:class:`Aggregate`.

Definitions:

* *best feasible value*: the best objective value among feasible trials (NaN values ignored).
* *regret*: :meth:`Problem.regret` of the best feasible value (0 = optimum, 1 = reference or
  nothing feasible).
* *waste*: the fraction of trials that were not feasible (crashed, infeasible or aborted).
* *trials to first feasible*: the 1-based index of the first feasible trial.
* *wasted seconds*: simulated seconds (:meth:`CostModel.seconds`) spent on non-feasible trials.
* *discovery*: how many distinct values of the problem's ``families`` parameters (e.g. the
  model) the run evaluated, and how many of them it found feasible.
* *discovered all*: whether the run evaluated, at least once, every family value that can be
  feasible (:func:`discoverable_families`); the *discovery rate* of a set of runs is the
  fraction of them that did.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from deploybench.problem import Problem
from deploytune.outcome import CrashKind, Status
from deploytune.tuner import TrialRecord

__all__ = [
    "Aggregate",
    "RunMetrics",
    "aggregate",
    "best_so_far",
    "discoverable_families",
    "run_metrics",
]


@dataclass(frozen=True)
class RunMetrics:
    """The metrics of one run.

    Attributes:
        n_trials: Number of finished trials.
        best_value: Best feasible objective value, ``None`` when nothing was feasible.
        regret: Normalised regret of ``best_value`` (1.0 when nothing was feasible).
        best_so_far: Per trial (in trial order), the best feasible value up to and including
            that trial; ``None`` until the first feasible trial.
        regret_curve: Per trial, the normalised regret of ``best_so_far`` (1.0 before the first
            feasible trial).
        status_counts: Status value -> number of trials (every status is present).
        crash_counts: Crash kind value -> number of crashed trials (every kind is present).
        waste: Fraction of trials that were not feasible (0 for a run without trials).
        trials_to_first_feasible: 1-based index of the first feasible trial, or ``None``.
        wasted_seconds: Seconds spent on trials that were not feasible (simulated by the
            cost model; measured wall seconds for a live problem).
        total_seconds: Simulated seconds spent on all trials.
        families_evaluated: Family parameter -> sorted distinct values among evaluated configs.
        families_feasible: Family parameter -> sorted distinct values among feasible configs.
        families_discoverable: Family parameter -> the values that can be feasible
            (:func:`discoverable_families`); empty for a problem without families (and for
            runs recorded before this field existed).
    """

    n_trials: int
    best_value: float | None
    regret: float
    best_so_far: list[float | None]
    regret_curve: list[float]
    status_counts: dict[str, int]
    crash_counts: dict[str, int]
    waste: float
    trials_to_first_feasible: int | None
    wasted_seconds: float
    total_seconds: float
    families_evaluated: dict[str, list[Any]] = field(default_factory=dict)
    families_feasible: dict[str, list[Any]] = field(default_factory=dict)
    families_discoverable: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def found_feasible(self) -> bool:
        """Whether the run found at least one feasible configuration."""
        return self.best_value is not None

    @property
    def discovery(self) -> int:
        """Number of distinct (family parameter, value) pairs among evaluated configs."""
        return sum(len(v) for v in self.families_evaluated.values())

    @property
    def discovery_feasible(self) -> int:
        """Number of distinct (family parameter, value) pairs among feasible configs."""
        return sum(len(v) for v in self.families_feasible.values())

    @property
    def discovered_all(self) -> bool | None:
        """Whether every family value that can be feasible was evaluated at least once;
        ``None`` when the problem has no families (or the run predates the field)."""
        if not self.families_discoverable:
            return None
        return all(v in self.families_evaluated.get(fam, [])
                   for fam, values in self.families_discoverable.items() for v in values)

    def fraction(self, status: Status | str) -> float:
        """Fraction of the run's trials that ended with ``status`` (0 without trials)."""
        if not self.n_trials:
            return 0.0
        return self.status_counts.get(Status(status).value, 0) / self.n_trials

    def to_dict(self) -> dict[str, Any]:
        """A plain-data form (lists and dicts only), with the derived properties included."""
        d = asdict(self)
        d["found_feasible"] = self.found_feasible
        d["discovery"] = self.discovery
        d["discovery_feasible"] = self.discovery_feasible
        d["discovered_all"] = self.discovered_all
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunMetrics:
        """Rebuild from :meth:`to_dict` output (derived keys are ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def _finite(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(value)


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


def _distinct(configs: Sequence[Mapping[str, Any]],
              families: Sequence[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for fam in families:
        seen: dict[tuple[str, str], Any] = {}
        for c in configs:
            if fam in c:
                seen.setdefault(_sort_key(c[fam]), c[fam])
        out[fam] = [seen[k] for k in sorted(seen)]
    return out


def discoverable_families(problem: Problem) -> dict[str, list[Any]]:
    """The family values a run should discover: for each of ``problem.families``, the values
    that have a feasible configuration (:attr:`Problem.feasible_families`), or, when the
    problem does not know them, every choice of that parameter.

    Args:
        problem: The problem.

    Returns:
        Family parameter -> sorted values (a family that is not a choice parameter and has no
        known feasible values is left out).
    """
    out: dict[str, list[Any]] = {}
    known = problem.feasible_families or {}
    for fam in problem.families:
        if fam in known:
            values = list(known[fam])
        else:
            param = next((p for p in problem.space if p.name == fam), None)
            values = list(getattr(param, "choices", ()) or ())
        if values:
            seen = {_sort_key(v): v for v in values}
            out[fam] = [seen[k] for k in sorted(seen)]
    return out


def best_so_far(trials: Sequence[TrialRecord], problem: Problem) -> list[float | None]:
    """Per trial (in the given order), the best feasible objective value so far.

    Args:
        trials: The run's trials, in trial order.
        problem: The problem (for the objective's direction).

    Returns:
        One entry per trial; ``None`` until the first feasible trial with a value.
    """
    best: float | None = None
    out: list[float | None] = []
    for t in trials:
        v = _finite(t.value)
        if t.status is Status.FEASIBLE and v is not None and (
                best is None or problem.objective.better(v, best)):
            best = v
        out.append(best)
    return out


def run_metrics(trials: Sequence[TrialRecord], problem: Problem) -> RunMetrics:
    """Compute the metrics of one run.

    Args:
        trials: The run's finished trials (sorted by trial number here).
        problem: The problem the run was on (direction, regret, cost model, families).

    Returns:
        The run's :class:`RunMetrics`.
    """
    ordered = sorted(trials, key=lambda t: t.number)
    curve = best_so_far(ordered, problem)
    best = curve[-1] if curve else None
    status_counts = {s.value: 0 for s in Status}
    crash_counts = {k.value: 0 for k in CrashKind}
    wasted = total = 0.0
    first: int | None = None
    for i, t in enumerate(ordered, start=1):
        status_counts[t.status.value] += 1
        if t.status is Status.CRASHED:
            kind = t.crash_kind or CrashKind.RUNTIME_ERROR
            crash_counts[kind.value] += 1
        seconds = problem.trial_seconds(t.config, t.status, t.crash_kind, t.cost_s)
        total += seconds
        if t.status is Status.FEASIBLE:
            if first is None and _finite(t.value) is not None:
                first = i
        else:
            wasted += seconds
    n = len(ordered)
    waste = (n - status_counts[Status.FEASIBLE.value]) / n if n else 0.0
    families = tuple(problem.families)
    return RunMetrics(
        n_trials=n,
        best_value=best,
        regret=problem.regret(best),
        best_so_far=curve,
        regret_curve=[problem.regret(b) for b in curve],
        status_counts=status_counts,
        crash_counts=crash_counts,
        waste=waste,
        trials_to_first_feasible=first,
        wasted_seconds=wasted,
        total_seconds=total,
        families_evaluated=_distinct([t.config for t in ordered], families),
        families_feasible=_distinct(
            [t.config for t in ordered if t.status is Status.FEASIBLE], families),
        families_discoverable=discoverable_families(problem),
    )


@dataclass(frozen=True)
class Aggregate:
    """The runs of one (problem, sampler) pair over seeds, summarised.

    Means and standard deviations are over runs; standard deviations are population ones
    (``ddof=0``). ``None`` stands for "no run to average".

    Attributes:
        n_runs: Number of runs aggregated.
        n_found: Runs that found at least one feasible configuration.
        best_value_mean: Mean best feasible value over the runs that found one.
        best_value_std: Its standard deviation.
        regret_mean: Mean normalised regret over all runs (1.0 for runs without a feasible).
        regret_std: Its standard deviation.
        regret_median: Median normalised regret over all runs.
        waste_mean: Mean fraction of non-feasible trials.
        waste_std: Its standard deviation.
        ttff_mean: Mean trials to first feasible, over the runs that found one.
        ttff_median: Median trials to first feasible over all runs, a run that found nothing
            feasible counting as ``n_trials + 1`` (so it is ``> n_trials`` when most runs
            found nothing).
        wasted_seconds_mean: Mean simulated seconds spent on non-feasible trials.
        total_seconds_mean: Mean simulated seconds spent on all trials.
        discovery_mean: Mean number of distinct family values evaluated.
        discovery_feasible_mean: Mean number of distinct family values found feasible.
        discovery_rate: Fraction of runs that evaluated every family value that can be feasible
            (``None`` for a problem without families).
        wasted_trials_mean: Mean number of trials that were not feasible.
        status_fractions: Status value -> mean fraction of trials with that status.
        crash_counts_mean: Crash kind value -> mean number of crashes of that kind per run.
    """

    n_runs: int
    n_found: int
    best_value_mean: float | None
    best_value_std: float | None
    regret_mean: float | None
    regret_std: float | None
    regret_median: float | None
    waste_mean: float | None
    waste_std: float | None
    ttff_mean: float | None
    wasted_seconds_mean: float | None
    total_seconds_mean: float | None
    discovery_mean: float | None
    discovery_feasible_mean: float | None
    status_fractions: dict[str, float]
    crash_counts_mean: dict[str, float]
    ttff_median: float | None = None
    discovery_rate: float | None = None
    wasted_trials_mean: float | None = None

    @property
    def n_nothing_feasible(self) -> int:
        """Runs that found nothing feasible."""
        return self.n_runs - self.n_found

    def to_dict(self) -> dict[str, Any]:
        """A plain-data form, with ``n_nothing_feasible`` included."""
        d = asdict(self)
        d["n_nothing_feasible"] = self.n_nothing_feasible
        return d


def _mean(xs: Sequence[float]) -> float | None:
    return float(statistics.fmean(xs)) if xs else None


def _std(xs: Sequence[float]) -> float | None:
    return float(statistics.pstdev(xs)) if xs else None


def aggregate(runs: Sequence[RunMetrics]) -> Aggregate:
    """Summarise the runs of one (problem, sampler) pair over seeds.

    Args:
        runs: One :class:`RunMetrics` per seed.

    Returns:
        The :class:`Aggregate`; every mean is ``None`` when ``runs`` is empty.
    """
    found = [r.best_value for r in runs if r.best_value is not None]
    regrets = [r.regret for r in runs]
    wastes = [r.waste for r in runs]
    ttffs = [float(r.trials_to_first_feasible) for r in runs
             if r.trials_to_first_feasible is not None]
    censored = [float(r.trials_to_first_feasible if r.trials_to_first_feasible is not None
                      else r.n_trials + 1) for r in runs]
    discovered = [r.discovered_all for r in runs if r.discovered_all is not None]
    feasible = Status.FEASIBLE.value
    return Aggregate(
        n_runs=len(runs),
        n_found=len(found),
        best_value_mean=_mean(found),
        best_value_std=_std(found),
        regret_mean=_mean(regrets),
        regret_std=_std(regrets),
        regret_median=float(statistics.median(regrets)) if regrets else None,
        waste_mean=_mean(wastes),
        waste_std=_std(wastes),
        ttff_mean=_mean(ttffs),
        wasted_seconds_mean=_mean([r.wasted_seconds for r in runs]),
        total_seconds_mean=_mean([r.total_seconds for r in runs]),
        discovery_mean=_mean([float(r.discovery) for r in runs]),
        discovery_feasible_mean=_mean([float(r.discovery_feasible) for r in runs]),
        status_fractions={s.value: (_mean([r.fraction(s) for r in runs]) or 0.0)
                          for s in Status},
        crash_counts_mean={k.value: (_mean([float(r.crash_counts.get(k.value, 0))
                                            for r in runs]) or 0.0) for k in CrashKind},
        ttff_median=float(statistics.median(censored)) if censored else None,
        discovery_rate=_mean([float(d) for d in discovered]),
        wasted_trials_mean=_mean([float(r.n_trials - r.status_counts.get(feasible, 0))
                                  for r in runs]),
    )
