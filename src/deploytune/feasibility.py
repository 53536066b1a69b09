"""Noisy feasibility: how sure a configuration is to meet every constraint on a fresh run.

A measurement is one draw: the same configuration run again can land on the other side of a
latency limit (the seeds' Paper 2: 39 % of the runs of one INT8 configuration flipped). This
module reads every run of every configuration of a study and answers three questions:

* **How noisy is each metric, here?** For each constraint's metric and for the objective, the
  spread between runs of the same configuration, on a log scale (``log(value / limit)``, so a
  spread is a relative one: 0.05 = about 5 %). Configurations measured more than once give
  their within-configuration sums of squares; these are pooled three times, from the
  configuration itself to its *region* (configurations that share every unordered categorical
  value: INT8 on ONNX Runtime is one region, fp32 on torch another, as noise differs by
  runtime and precision on real CPUs) to the whole study, each level a conjugate
  scaled-inverse-chi-squared update of the one above with :data:`PRIOR_DOF` pseudo-degrees of
  freedom, the top one starting from :data:`PRIOR_SPREAD`. One run per configuration thus gets
  the region's noise, a configuration run five times mostly its own.
* **How likely does a fresh run meet the constraint?** ``P = Phi(-d / (s sqrt(1 + 1/n)))`` with
  ``d`` the mean log distance to the limit over the ``n`` runs that ran (positive = violated)
  and ``s`` the spread: the predictive probability of one more run. A limit of zero
  (``error_rate <= 0``, ``failed_requests <= 0``: met only by exactly zero, a count, not a
  measurement with a spread) is a rate instead: ``(met + k r) / (n + k)``, the
  configuration's runs that met it shrunk toward ``r``, with ``k`` = :data:`PRIOR_DOF`; ``r``
  is the share of runs that met it among the configurations that met it at least once (for a
  configuration that did), else among all (an ``n_ctx`` too short for the prompts fails every
  time; that says nothing about a configuration that never failed). P(feasible) multiplies
  the constraints' probabilities and the share of runs that did not crash or abort.
* **Which configuration to recommend?** Among those with at least one feasible run and
  ``P(feasible) >= confidence`` (the chance constraint), the one with the best pessimistic
  bound of its objective: the mean on a log scale minus (maximising) or plus (minimising)
  ``z s / sqrt(n)``, ``z = Phi^-1(confidence)``. When none meets the chance constraint, the one
  most likely to be feasible, marked not reliable.

The same ranking picks what to run again (:func:`next_to_validate`): the best-ranked finalist
that has not been run ``1 + repeats`` times yet, until the best-ranked one that has is reliably
feasible.

Runs are grouped by configuration (parameter values, floats to 10 significant digits), so
every run of a configuration counts, whether the tuner repeated it on purpose, a sampler
proposed it twice, or a resumed study queued it again. Transient failures say nothing about
the configuration and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Protocol

from deploytune.outcome import Constraint, CrashKind, Objective, Status, constraint_label

__all__ = [
    "DEFAULT_CONFIDENCE",
    "PRIOR_DOF",
    "PRIOR_SPREAD",
    "ConfigRuns",
    "ConstraintRuns",
    "PooledNoise",
    "Recommendation",
    "Run",
    "assess",
    "check_confidence",
    "config_key",
    "next_to_validate",
    "recommend",
]

DEFAULT_CONFIDENCE = 0.9
"""Default chance constraint: a configuration counts as feasible when a fresh run meets every
constraint with probability at least 0.9 (9 re-runs in 10)."""

PRIOR_SPREAD = 0.05
"""Relative run-to-run spread assumed before any configuration was measured twice (5 %: the
low end of what the peers report, vLLM 10-20 %, SGLang about 20 %, this CPU's fp32 runs a few
per cent). Its weight is :data:`PRIOR_DOF` runs' worth, so a few repeats override it."""

PRIOR_DOF = 2.0
"""Pseudo-degrees of freedom of each level's prior (study -> region -> configuration)."""

_NORMAL = NormalDist()
_FLOOR = 1e-9


class Run(Protocol):
    """What this module reads from one evaluation (a :class:`~deploytune.history.TrialRecord`
    has all of it)."""

    @property
    def number(self) -> int:
        """The trial number."""

    @property
    def config(self) -> dict[str, Any]:
        """The configuration."""

    @property
    def status(self) -> Status:
        """feasible, infeasible, crashed or aborted."""

    @property
    def crash_kind(self) -> CrashKind | None:
        """For crashed runs."""

    @property
    def metrics(self) -> dict[str, float]:
        """Reported metrics."""

    @property
    def value(self) -> float | None:
        """The objective value."""

    @property
    def violations(self) -> dict[str, float]:
        """Constraint label -> normalised signed violation."""


def check_confidence(confidence: Any) -> float:
    """``confidence`` as a float in (0, 1), or a one-line :class:`ValueError` naming the fix."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not (
            0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence: must be a probability strictly between 0 and 1, such as "
                         f"0.9 (got {confidence!r})")
    return float(confidence)


def config_key(config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable key of ``config``: its items sorted by name, floats to 10 significant
    digits (so a value read back from storage matches the one written)."""
    return tuple(sorted((k, float(f"{v:.10g}") if isinstance(v, float) else v)
                        for k, v in config.items()))


def _region(config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The unordered categorical values of ``config`` (strings, booleans, ``None``)."""
    return tuple(sorted((k, v) for k, v in config.items()
                        if v is None or isinstance(v, (str, bool))))


def _distance(c: Constraint, run: Run) -> float | None:
    """Signed distance of ``run`` to ``c``'s limit, > 0 violated: ``log(value / limit)`` (its
    negative for ``>=``) for positive values and limits, else the normalised violation."""
    value = run.metrics.get(c.metric)
    if value is not None and math.isfinite(value) and value > 0 and c.limit > 0:
        d = math.log(value / c.limit)
        return d if c.op == "<=" else -d
    v = run.violations.get(constraint_label(c))
    if v is None and value is not None and math.isfinite(value):
        v = c.signed_violation(value)
    return v if v is not None and math.isfinite(v) else None


def _met_rates(per_config: Iterable[Sequence[float]]) -> tuple[float, float]:
    """Share of the runs that met a constraint: over every configuration, and over the
    configurations that met it at least once (how dependable a configuration that can meet
    it is); 1 without runs."""
    groups = [list(values) for values in per_config if values]
    every = [d for values in groups for d in values]
    able = [d for values in groups if any(d <= 0 for d in values) for d in values]

    def rate(ds: list[float]) -> float:
        return sum(d <= 0 for d in ds) / len(ds) if ds else 1.0

    return rate(every), rate(able)


def _p_met(c: Constraint, ds: Sequence[float], spread: float, met_rates: tuple[float, float],
           ran: bool) -> float:
    """P(a fresh run meets ``c``) from one configuration's distances ``ds`` (module
    docstring): the predictive normal, or for a zero limit the shrunk rate."""
    if not ds:
        return 0.0 if ran else 1.0  # ran without the metric: cannot tell it met
    if c.limit == 0:
        met = sum(d <= 0 for d in ds)
        return (met + PRIOR_DOF * met_rates[met > 0]) / (len(ds) + PRIOR_DOF)
    return _NORMAL.cdf(-_mean(ds) / (spread * math.sqrt(1 + 1 / len(ds))))


def _objective_level(value: float | None, log_scale: bool) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if log_scale:
        return math.log(value) if value > 0 else None
    return value


@dataclass
class _Spread:
    """Sums of squares within configurations and their degrees of freedom."""

    ss: float = 0.0
    dof: float = 0.0

    def add(self, values: Sequence[float]) -> None:
        if len(values) >= 2:
            mean = sum(values) / len(values)
            self.ss += sum((v - mean) * (v - mean) for v in values)  # inf, never an error
            self.dof += len(values) - 1

    def posterior(self, prior_variance: float) -> float:
        """Scaled-inverse-chi-squared update of ``prior_variance`` with these data."""
        return (PRIOR_DOF * prior_variance + self.ss) / (PRIOR_DOF + self.dof)


def _exp(x: float) -> float:
    """``exp(x)``, infinite instead of an OverflowError (metrics near the float limit)."""
    return math.exp(x) if x < 709.0 else math.inf


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) * (x - m) for x in xs) / (len(xs) - 1))


@dataclass(frozen=True)
class ConstraintRuns:
    """One constraint over the runs of one configuration.

    Attributes:
        constraint: The constraint.
        values: The metric in each run that reported it.
        met: How many of the runs that ran met it.
        ran: How many runs ran (reported a value or a violation).
        p_met: Predictive probability that a fresh run meets it.
        spread: Relative run-to-run spread used (log scale).
    """

    constraint: Constraint
    values: tuple[float, ...]
    met: int
    ran: int
    p_met: float
    spread: float

    @property
    def mean(self) -> float | None:
        """Mean of the metric over the runs (``None`` without a value)."""
        return _mean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation of the metric over the runs (0 for one run)."""
        return _std(self.values) if self.values else None

    @property
    def margin(self) -> float | None:
        """Headroom of the mean to the limit, in the metric's unit (negative: overrun)."""
        m = self.mean
        return None if m is None else self.constraint.margin(m)

    def margin_interval(self, confidence: float) -> tuple[float, float] | None:
        """Two-sided ``confidence`` interval of the margin of a fresh run, from the spread
        model (``value * exp(+-z s sqrt(1 + 1/n))``), in the metric's unit."""
        m = self.mean
        if m is None or not self.values:
            return None
        z = _NORMAL.inv_cdf(0.5 + confidence / 2)
        if m > 0:
            width = z * self.spread * math.sqrt(1 + 1 / len(self.values))
            lo, hi = m * _exp(-width), m * _exp(width)
        else:
            half = z * max(self.std or 0.0, self.spread * abs(self.constraint.scale))
            lo, hi = m - half, m + half
        a, b = self.constraint.margin(lo), self.constraint.margin(hi)
        return (min(a, b), max(a, b))


@dataclass(frozen=True)
class ConfigRuns:
    """Every run of one configuration, and what they say about a fresh run.

    Attributes:
        config: The configuration.
        numbers: Trial numbers of its runs (transient failures left out).
        runs: How many runs.
        feasible_runs: How many runs met every constraint.
        ok_runs: How many runs ran to the end (neither crashed nor aborted).
        value: Mean objective (geometric on a log scale), or ``None`` without a value.
        bound: Pessimistic bound of the objective at the chosen confidence.
        objective_spread: Run-to-run spread of the objective (log scale when positive).
        p_feasible: Predictive probability that a fresh run is feasible.
        constraints: Per constraint, its :class:`ConstraintRuns`.
    """

    config: dict[str, Any]
    numbers: tuple[int, ...]
    runs: int
    feasible_runs: int
    ok_runs: int
    value: float | None
    bound: float | None
    objective_spread: float
    p_feasible: float
    constraints: tuple[ConstraintRuns, ...] = field(default=())

    def reliable(self, confidence: float) -> bool:
        """Whether it meets the chance constraint and was feasible at least once."""
        return self.feasible_runs > 0 and self.p_feasible >= confidence


def _group(runs: Iterable[Run]) -> dict[tuple[tuple[str, Any], ...], list[Run]]:
    groups: dict[tuple[tuple[str, Any], ...], list[Run]] = {}
    for r in sorted(runs, key=lambda r: r.number):
        if r.status is Status.CRASHED and r.crash_kind is CrashKind.TRANSIENT:
            continue
        groups.setdefault(config_key(r.config), []).append(r)
    return groups


class PooledNoise:
    """Run-to-run variance of one quantity, pooled configuration -> region -> study (see the
    module docstring).

    Args:
        per_config: Each configuration's key -> the quantity in each of its runs.
        regions: Each configuration's key -> its region's key.
        prior: The study level's prior variance (:data:`PRIOR_DOF` runs' worth).
    """

    def __init__(self, per_config: Mapping[Any, Sequence[float]], regions: Mapping[Any, Any],
                 prior: float):
        self._top = _Spread()
        self._regions: dict[Any, _Spread] = {}
        self._own: dict[Any, _Spread] = {}
        for key, values in per_config.items():
            own = _Spread()
            own.add(values)
            self._own[key] = own
            self._top.add(values)
            self._regions.setdefault(regions[key], _Spread()).add(values)
        self._study = self._top.posterior(prior)

    def variance(self, key: Any, region: Any) -> float:
        """The variance of one run of configuration ``key`` of ``region`` (either may be
        unseen: an unseen configuration gets its region's, an unseen region the study's)."""
        r = self._regions.get(region, _Spread()).posterior(self._study)
        return max(_FLOOR, self._own.get(key, _Spread()).posterior(r))


def assess(runs: Iterable[Run], objective: Objective, constraints: Sequence[Constraint],
           confidence: float = DEFAULT_CONFIDENCE) -> list[ConfigRuns]:
    """Every configuration of ``runs`` with its runs pooled (see the module docstring).

    Args:
        runs: Finished evaluations (interrupted ones must already be left out).
        objective: The objective (for the bound's direction).
        constraints: The hard constraints.
        confidence: The chance constraint's level (sets ``z`` of the objective's bound).

    Returns:
        One :class:`ConfigRuns` per configuration, in order of first run.
    """
    confidence = check_confidence(confidence)
    groups = _group(runs)
    regions = {k: _region(rs[0].config) for k, rs in groups.items()}
    ran = {k: [r for r in rs if r.status in (Status.FEASIBLE, Status.INFEASIBLE)]
           for k, rs in groups.items()}
    values = [r.value for rs in ran.values() for r in rs if r.value is not None]
    log_scale = bool(values) and all(math.isfinite(v) and v > 0 for v in values)
    obj_levels = {k: [x for x in (_objective_level(r.value, log_scale) for r in rs)
                      if x is not None] for k, rs in ran.items()}
    scale = PRIOR_SPREAD * (sum(abs(v) for v in values) / len(values) if values else 1.0)
    obj_prior = PRIOR_SPREAD * PRIOR_SPREAD if log_scale else scale * scale
    obj_noise = PooledNoise(obj_levels, regions, obj_prior)
    distances = {c: {k: [d for d in (_distance(c, r) for r in rs) if d is not None]
                     for k, rs in ran.items()} for c in constraints}
    noises = {c: PooledNoise(distances[c], regions, PRIOR_SPREAD ** 2) for c in constraints}
    met_rates = {c: _met_rates(distances[c].values()) for c in constraints}
    z = _NORMAL.inv_cdf(confidence)
    out = []
    for key, rs in groups.items():
        region = regions[key]
        per_constraint = []
        p = len(ran[key]) / len(rs)
        for c in constraints:
            ds = distances[c][key]
            spread = math.sqrt(noises[c].variance(key, region))
            p_met = _p_met(c, ds, spread, met_rates[c], ran=bool(ran[key]))
            p *= p_met
            vals = tuple(float(r.metrics[c.metric]) for r in ran[key]
                         if c.metric in r.metrics and math.isfinite(r.metrics[c.metric]))
            per_constraint.append(ConstraintRuns(
                c, vals, sum(d <= 0 for d in ds), len(ds), p_met, spread))
        levels = obj_levels[key]
        obj_spread = math.sqrt(obj_noise.variance(key, region))
        value = bound = None
        if levels:
            mean = _mean(levels)
            pessimistic = mean - objective.sign * z * obj_spread / math.sqrt(len(levels))
            value = _exp(mean) if log_scale else mean
            bound = _exp(pessimistic) if log_scale else pessimistic
        out.append(ConfigRuns(
            dict(rs[0].config), tuple(r.number for r in rs), len(rs),
            sum(r.status is Status.FEASIBLE for r in rs), len(ran[key]), value, bound,
            obj_spread, p, tuple(per_constraint)))
    return out


def _ranked(assessed: Sequence[ConfigRuns], objective: Objective) -> list[ConfigRuns]:
    """Configurations feasible at least once, best pessimistic bound first (ties: first run)."""
    candidates = [a for a in assessed if a.feasible_runs > 0 and a.bound is not None]
    return sorted(candidates, key=lambda a: (-objective.sign * a.bound,  # type: ignore[operator]
                                             a.numbers[0]))


@dataclass(frozen=True)
class Recommendation:
    """The configuration to deploy, and how sure the runs make it.

    Attributes:
        runs: The configuration and its pooled runs.
        reliable: Whether it meets the chance constraint; when ``False`` no configuration did,
            and this is the one most likely to be feasible.
        confidence: The chance constraint's level.
    """

    runs: ConfigRuns
    reliable: bool
    confidence: float

    @property
    def config(self) -> dict[str, Any]:
        """The recommended configuration."""
        return dict(self.runs.config)


def recommend(assessed: Sequence[ConfigRuns], objective: Objective,
              confidence: float = DEFAULT_CONFIDENCE) -> Recommendation | None:
    """The best pessimistic bound among the configurations that meet the chance constraint;
    else the one most likely feasible (not reliable); ``None`` when nothing was feasible.

    Args:
        assessed: :func:`assess`'s output.
        objective: The objective.
        confidence: The chance constraint's level.
    """
    confidence = check_confidence(confidence)
    ranked = _ranked(assessed, objective)
    for a in ranked:
        if a.reliable(confidence):
            return Recommendation(a, True, confidence)
    if not ranked:
        return None
    likeliest = max(ranked, key=lambda a: a.p_feasible)  # first among ties: the better bound
    return Recommendation(likeliest, False, confidence)


def next_to_validate(assessed: Sequence[ConfigRuns], objective: Objective,
                     confidence: float, finalists: int, repeats: int) -> dict[str, Any] | None:
    """The configuration to run again next, or ``None`` when validation is done.

    Walks the ``finalists`` best-ranked configurations (pessimistic bound, feasible at least
    once). The first one run fewer than ``1 + repeats`` times is returned; one run that often
    ends the walk when it meets the chance constraint (it is the recommendation, and nothing
    ranked above it is), and is passed over when it does not.

    Args:
        assessed: :func:`assess`'s output.
        objective: The objective.
        confidence: The chance constraint's level.
        finalists: How many of the best-ranked configurations may be run again.
        repeats: Runs each finalist gets beyond its first.
    """
    for a in _ranked(assessed, objective)[:max(0, finalists)]:
        if a.runs < 1 + repeats:
            return dict(a.config)
        if a.reliable(confidence):
            return None
    return None
