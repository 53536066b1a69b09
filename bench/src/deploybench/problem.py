"""A DeployBench problem: space, objective, constraints, evaluator, known optimum, cost model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploytune.evaluators.base import Evaluation, Evaluator, FunctionEvaluator, Monitor
from deploytune.execution import outcome_of
from deploytune.outcome import (
    Constraint,
    CrashKind,
    Objective,
    Status,
    parse_constraints,
)
from deploytune.space import Config, Space

__all__ = ["TRUTH_DRAWS", "CostModel", "Problem", "SimulatedEvaluator", "Truth"]

SimEvaluate = Callable[[Config, np.random.Generator], Mapping[str, float]]
StagedSimulate = Callable[[Config, np.random.Generator, Callable[..., None]], Mapping[str, float]]
"""``(config, rng, report) -> metrics``: a simulation that passes fidelity rungs, calling
``report(metrics, step=..., rung=...)`` at the end of each, and whose final metrics equal
``simulate``'s for the same generator."""
"""A problem's evaluation: (config, rng) -> metrics; raising = crash (see ``crash_kind_of``)."""


TRUTH_DRAWS = 400
"""Fresh measurements behind :meth:`Problem.truth` (P(feasible) to within about 2.5 %)."""

_TRUTH_SEED = 18  # the issue that asked for it


@dataclass(frozen=True)
class Truth:
    """What deploying a configuration gives, over fresh measurements.

    Attributes:
        p_feasible: Share of the measurements that ran and met every constraint.
        value: Mean objective over the measurements that ran (``None``: none ran).
    """

    p_feasible: float
    value: float | None


@dataclass(frozen=True)
class CostModel:
    """Simulated seconds one evaluation costs, by outcome.

    Attributes:
        feasible_s: A full evaluation that ran (feasible).
        infeasible_s: A full evaluation that ran but violated a constraint.
        aborted_s: An evaluation stopped early by the tuner.
        crash_s: Crash kind -> seconds until the crash was detected.
        scale: Optional ``config -> factor`` that scales every cost (bigger models cost more).
    """

    feasible_s: float = 60.0
    infeasible_s: float = 60.0
    aborted_s: float = 15.0
    crash_s: Mapping[str, float] = field(default_factory=lambda: {
        CrashKind.INVALID_CONFIG.value: 5.0, CrashKind.OOM.value: 20.0,
        CrashKind.TIMEOUT.value: 120.0, CrashKind.RUNTIME_ERROR.value: 10.0,
        CrashKind.TRANSIENT.value: 5.0})
    scale: Callable[[Config], float] | None = None

    def seconds(self, config: Config, status: Status, crash_kind: CrashKind | None,
                rung: str | None = None) -> float:
        """Simulated cost of an evaluation of ``config`` that ended with ``status`` (an
        aborted one after the fidelity ``rung``, when it passed one: not used here)."""
        if status is Status.CRASHED:
            base = self.crash_s.get(crash_kind.value if crash_kind else "runtime_error", 10.0)
        elif status is Status.ABORTED:
            base = self.aborted_s
        elif status is Status.INFEASIBLE:
            base = self.infeasible_s
        else:
            base = self.feasible_s
        return float(base * (self.scale(config) if self.scale else 1.0))


@dataclass
class Problem:
    """A benchmark problem of DeployBench.

    Attributes:
        name: Registry name (``crashy-branin``, ``deploy-sim-edge``, ...).
        space: The search space.
        objective: Metric and direction.
        constraints: Hard constraints.
        simulate: ``(config, rng) -> metrics``; raises to crash (``MemoryError`` -> oom, ...).
        optimum: The best feasible objective value (noise-free), for regret.
        reference: A poor feasible value (regret is normalised so that ``reference`` -> 1 and
            ``optimum`` -> 0); by convention the median value of random feasible samples.
        cost: Simulated seconds per evaluation, by outcome.
        description: One paragraph: what it models and its measured crash / infeasible /
            feasible rates under random sampling.
    """

    name: str
    space: Space
    objective: Objective
    constraints: list[Constraint]
    simulate: SimEvaluate
    optimum: float
    reference: float
    cost: CostModel = field(default_factory=CostModel)
    description: str = ""
    families: tuple[str, ...] = ()
    """Top-level categorical parameters whose values count for "discovery" (e.g. model)."""
    feasible_families: dict[str, tuple[Any, ...]] | None = None
    """Family parameter -> the values that have at least one feasible configuration, for the
    "discovery" rate (a run discovered everything when it evaluated each of them). ``None``:
    unknown, and every choice of each ``families`` parameter counts."""
    live: Callable[[], Any] | None = None
    """For a problem whose evaluations really run: makes the
    :class:`~deploytune.evaluators.base.Evaluator` the runner uses instead of ``simulate``."""
    staged: StagedSimulate | None = None
    """``simulate`` passing fidelity rungs (:data:`StagedSimulate`); ``None``: no rungs."""
    estimate: Callable[[Config], Mapping[str, float]] | None = None
    """A cheap, biased estimator of the metrics (the rung ``estimate``,
    :class:`~deploytune.evaluators.estimated.EstimatedEvaluator`); ``None``: none."""
    estimate_cost_s: float = 0.0
    """Simulated seconds one call of :attr:`estimate` costs."""

    def __post_init__(self) -> None:
        if not self.objective.sign * (self.optimum - self.reference) > 0:
            raise ValueError(
                f"problem {self.name!r}: the optimum ({self.optimum}) must be strictly better "
                f"than the reference ({self.reference}) for regret to be defined")

    @classmethod
    def build(cls, name: str, space: Space | Mapping[str, Any], objective: str, direction: str,
              constraints: list[str], simulate: SimEvaluate, optimum: float, reference: float,
              **kw: Any) -> Problem:
        """Convenience constructor from plain values."""
        sp = space if isinstance(space, Space) else Space.from_dict(space)
        return cls(name, sp, Objective(objective, direction), parse_constraints(constraints),
                   simulate, optimum, reference, **kw)

    def evaluator(self, seed: int, rungs: bool = False) -> Callable[..., Mapping[str, float]]:
        """An evaluate function for ``optimize()`` with noise seeded by ``seed``.

        Noise depends on (seed, configuration, how often that configuration was evaluated),
        never on the order in which a sampler visits configurations. With ``rungs`` (a problem
        with :attr:`staged`), the function takes ``report`` and passes the fidelity rungs; its
        final metrics are the same as without.
        """
        counts: dict[tuple[tuple[str, Any], ...], int] = {}

        def generator(config: Config) -> np.random.Generator:
            key = self.space.key(config)
            n = counts.get(key, 0)
            counts[key] = n + 1
            return np.random.default_rng([seed, _stable_hash(repr(key)), n])

        if rungs:
            staged = self.staged
            if staged is None:
                raise ValueError(f"problem {self.name!r} has no fidelity rungs")

            def evaluate_rungs(config: Config, report: Callable[..., None]
                               ) -> Mapping[str, float]:
                return staged(dict(config), generator(config), report)

            return evaluate_rungs

        def evaluate(config: Config) -> Mapping[str, float]:
            return self.simulate(dict(config), generator(config))

        return evaluate

    def sim_evaluator(self, seed: int, rungs: bool = False) -> SimulatedEvaluator:
        """An :class:`~deploytune.evaluators.base.Evaluator` for ``optimize()`` that evaluates
        like :meth:`evaluator` (the same noise, seeded by ``seed``) and reports the cost
        model's simulated seconds as each evaluation's ``cost_s``.

        Args:
            seed: Seed of the noise.
            rungs: Pass the fidelity rungs (:attr:`staged`).

        Returns:
            A :class:`SimulatedEvaluator`.
        """
        return SimulatedEvaluator(self, seed, rungs)

    def trial_seconds(self, config: Config, status: Status, crash_kind: CrashKind | None,
                      measured_s: float) -> float:
        """Seconds one trial cost: the measured wall seconds for a live problem (its
        evaluations really ran), the cost model's simulated seconds otherwise."""
        if self.live is not None:
            return float(measured_s)
        return self.cost.seconds(config, status, crash_kind)

    def truth(self, config: Config, draws: int = TRUTH_DRAWS) -> Truth:
        """What a user deploying ``config`` gets: its probability of a feasible run and its
        mean objective, estimated over ``draws`` fresh measurements (generators seeded by the
        configuration and the draw, never by a run's seed, so every run's recommendation is
        scored on the same draws).

        Args:
            config: A configuration of :attr:`space`.
            draws: Measurements to average.

        Returns:
            The :class:`Truth`; ``value`` is ``None`` when no draw ran.
        """
        digest = _stable_hash(repr(self.space.key(config)))
        feasible = 0
        values: list[float] = []
        for i in range(draws):
            rng = np.random.default_rng([_TRUTH_SEED, digest, i])
            try:
                metrics = self.simulate(dict(config), rng)
            except Exception:  # a crash: not feasible
                continue
            value = metrics.get(self.objective.metric)
            if value is not None and np.isfinite(value):
                values.append(float(value))
            feasible += all(c.metric in metrics and c.is_met(float(metrics[c.metric]))
                            for c in self.constraints) and value is not None
        return Truth(feasible / draws if draws else 0.0,
                     float(np.mean(values)) if values else None)

    def regret(self, best_value: float | None) -> float:
        """Normalised regret of a run's best feasible value; 1.0 when nothing was feasible
        (capped at 1 from above: a run that found nothing is as bad as the reference)."""
        if best_value is None:
            return 1.0
        gap = self.objective.sign * (self.optimum - best_value)
        span = self.objective.sign * (self.optimum - self.reference)
        return float(min(1.0, max(0.0, gap / span))) if span > 0 else float(gap > 0)


class SimulatedEvaluator(Evaluator):
    """Evaluates a simulated :class:`Problem` in this process and reports, as each evaluation's
    ``cost_s``, what it would have cost: :meth:`CostModel.seconds` of its outcome.

    The tuner records ``cost_s`` on the trial (``TrialRecord.cost_s``), so cost-aware samplers
    see simulated seconds (a crash detected after 5 s, a full run of 60 s, ...) instead of the
    microseconds the Python call took. The outcome is judged the way the tuner judges it
    without user rules (:func:`~deploytune.execution.outcome_of`): a crash keeps the kind the
    tuner will give it (exception class, then the built-in rules on the error text), a run is
    feasible, infeasible, or crashed when a needed metric is missing. The evaluation itself is
    :class:`~deploytune.evaluators.base.FunctionEvaluator`'s (same error text, crash kind and
    ``info``), with its wall seconds replaced by the simulated ones. A trial whose transient
    failures were retried costs every attempt, as with any evaluator.

    Args:
        problem: The problem.
        seed: Seed of the noise (as :meth:`Problem.evaluator`).
        rungs: Pass the problem's fidelity rungs (:attr:`Problem.staged`); an evaluation
            stopped at a rung costs what the cost model says for that rung.

    Attributes:
        problem: The problem.
        seed: The seed.
    """

    def __init__(self, problem: Problem, seed: int, rungs: bool = False):
        self.problem = problem
        self.seed = seed
        self.rungs = rungs
        self._function = FunctionEvaluator(problem.evaluator(seed, rungs))

    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Simulate ``config``; crashes become a crashed :class:`Evaluation`, never raised."""
        evaluation = self._function.evaluate(config, monitor)
        evaluation.cost_s = self.simulated_seconds(config, evaluation, monitor.rung)
        return evaluation

    def simulated_seconds(self, config: Config, evaluation: Evaluation,
                          rung: str | None = None) -> float:
        """The cost model's seconds for ``evaluation`` of ``config``, judged as the tuner
        judges it (no user rules).

        Args:
            config: The evaluated configuration.
            evaluation: Its raw evaluation.
            rung: The last fidelity rung it passed, if any.

        Returns:
            :meth:`CostModel.seconds` of the outcome's status and crash kind.
        """
        outcome = outcome_of(evaluation, self.problem.objective, self.problem.constraints)
        return self.problem.cost.seconds(config, outcome.status, outcome.crash_kind, rung)

    def describe(self) -> str:
        """``simulated {problem} (seed {seed})``."""
        rungs = ", with rungs" if self.rungs else ""
        return f"simulated {self.problem.name} (seed {self.seed}{rungs})"


def _stable_hash(text: str) -> int:
    """A process-independent 63-bit hash (Python's ``hash`` is salted per process)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1
