"""The model of a generated DeployBench instance (:mod:`deploybench.generated`): its knobs and
their effects on the metrics, its crash rules, its noise, and :class:`GeneratedInstance`, which
evaluates a configuration and turns into a :class:`~deploybench.problem.Problem`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploybench.problem import CostModel, Problem
from deploytune.outcome import (
    Constraint,
    CrashKind,
    InvalidConfig,
    Objective,
    parse_constraints,
)
from deploytune.space import Config, Param, Space

__all__ = [
    "PLACEMENT_SAMPLES",
    "Condition",
    "CrashRule",
    "GeneratedInstance",
    "Knob",
    "NoisyRegion",
    "significant",
]

PLACEMENT_SAMPLES = 2000
"""Random configurations used to place the constraint limits and the device memory."""


def significant(x: float) -> float:
    """``x`` rounded to 6 significant digits (how the family writes its drawn numbers)."""
    return float(f"{x:.6g}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass
class Knob:
    """One parameter of an instance with its effects on the metrics."""

    name: str
    kind: str  # "unordered" | "ordered" | "int" | "float"
    param: Param
    # ordered parameters: value -> position u in [0, 1]
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    index: dict[Any, int] = field(default_factory=dict)
    speed_a: float = 0.0
    speed_b: float = 0.0
    speed_c: float = 0.5
    latency: float = 0.0
    mem_dir: int = 0
    mem_rate: float = 0.0
    mem_exp: float = 0.0
    quality: float = 0.0
    # unordered categoricals: choice -> effect
    speed_by: dict[Any, float] = field(default_factory=dict)
    latency_by: dict[Any, float] = field(default_factory=dict)
    memory_by: dict[Any, float] = field(default_factory=dict)
    quality_by: dict[Any, float] = field(default_factory=dict)

    def position(self, value: Any) -> float:
        """The ordered parameter's position of ``value`` in [0, 1]."""
        if self.kind == "ordered":
            return self.index[value] / max(1, len(self.index) - 1)
        v = float(value)
        if self.high <= self.low:
            return 0.0
        if self.log:
            return math.log(v / self.low) / math.log(self.high / self.low)
        return (v - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Condition:
    """One condition of a crash rule: an unordered categorical equal to ``choice``, or an
    ordered parameter's position above ``above`` or below ``below`` (false when inactive)."""

    name: str
    choice: Any = None  # unordered: equal to this choice
    above: float | None = None  # ordered: u > above
    below: float | None = None  # ordered: u < below

    def holds(self, config: Mapping[str, Any], knobs: Mapping[str, Knob]) -> bool:
        """Whether ``config`` meets the condition (``knobs`` by name give the positions)."""
        if self.name not in config:
            return False
        value = config[self.name]
        if self.choice is not None:
            return bool(value == self.choice)
        u = knobs[self.name].position(value)
        if self.above is not None:
            return u > self.above
        assert self.below is not None
        return u < self.below

    def text(self) -> str:
        """The condition in words, for the crash message."""
        if self.choice is not None:
            return f"{self.name} = {self.choice}"
        if self.above is not None:
            return f"{self.name} in the top {1 - self.above:.0%} of its range"
        return f"{self.name} in the bottom {self.below:.0%} of its range"


@dataclass(frozen=True)
class CrashRule:
    """A crash rule: when every condition holds, an evaluation raises the error of ``kind``."""

    conditions: tuple[Condition, ...]
    kind: CrashKind

    def fires(self, config: Mapping[str, Any], knobs: Mapping[str, Knob]) -> bool:
        """Whether every condition holds for ``config``."""
        return all(c.holds(config, knobs) for c in self.conditions)

    def error(self) -> Exception:
        """The exception an evaluation raises when the rule fires."""
        what = " and ".join(c.text() for c in self.conditions)
        if self.kind is CrashKind.INVALID_CONFIG:
            return InvalidConfig(f"unsupported combination: {what}")
        if self.kind is CrashKind.TIMEOUT:
            return TimeoutError(f"evaluation exceeded its time limit ({what})")
        return RuntimeError(f"backend failed at run time ({what})")


@dataclass(frozen=True)
class NoisyRegion:
    """Where the noisy variant of an instance measures noisier (see the module docstring).

    Attributes:
        param: The parameter that drives the extra noise.
        factor: The noise multiplier ``f`` (in [2, 5]).
        choice: For an unordered categorical, the choice measured with ``sigma * f``;
            ``None`` for an ordered parameter, along which the noise grows from ``sigma``
            (position 0) to ``sigma * f`` (position 1).
    """

    param: str
    factor: float
    choice: Any = None

    def text(self) -> str:
        """``x3.21 when cat0 = b`` or ``growing to x3.21 along int4``."""
        if self.choice is not None:
            return f"x{self.factor:.2f} when {self.param} = {self.choice}"
        return f"growing to x{self.factor:.2f} along {self.param}"


@dataclass
class GeneratedInstance:
    """One drawn instance: its space, metric model, crash rules, limits and costs.

    Build one with :func:`build_instance`; :meth:`problem` turns it into a
    :class:`~deploybench.problem.Problem`.

    Attributes:
        instance: The integer seed.
        name: The registry name (``gen-dev-07``, ``gen-test-03``, or ``gen-<instance>``).
        space: The search space.
        objective: ``throughput`` (maximise) or ``time_per_item_ms`` (minimise).
        direction: ``maximize`` or ``minimize``.
        constraints: Constraint texts, e.g. ``latency_ms <= 41.2``.
        device_memory_mb: Memory above which an evaluation raises ``MemoryError`` (``inf``:
            never).
        noise: Standard deviation of the multiplicative measurement noise (the base sigma
            of the noisy variant; :meth:`noise_of` gives the one that applies to a config).
        rules: Crash rules (conditions and crash kind), in checking order.
        cost: The cost model.
        feasible_share: Noise-free feasible share of the placement sample.
        crash_share: Crash share of the placement sample, by crash kind.
        optimum: Estimated best feasible objective (noise-free).
        reference: Mean noise-free objective of the feasible placement samples.
        noisy_region: ``None`` (the same noise everywhere), or, in the noisy variant, where
            the noise is larger.
    """

    instance: int
    name: str
    space: Space
    objective: str
    direction: str
    knobs: list[Knob]
    base: dict[str, float]
    pairs: list[tuple[str, str, float]]
    rules: list[CrashRule]
    noise: float
    cost: CostModel
    device_memory_mb: float = math.inf
    constraints: list[str] = field(default_factory=list)
    feasible_share: float = 0.0
    crash_share: dict[str, float] = field(default_factory=dict)
    optimum: float = 0.0
    reference: float = 0.0
    families: tuple[str, ...] = ()
    feasible_families: dict[str, tuple[Any, ...]] | None = None
    noisy_region: NoisyRegion | None = None

    # ------------------------------------------------------------------------- the model
    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        """Noise-free metrics of ``config``, ignoring crashes.

        Args:
            config: A configuration of :attr:`space`.

        Returns:
            The objective, ``latency_ms``, ``memory_mb`` and ``quality``.
        """
        speed = 0.0
        log_latency = 0.0
        log_memory = 0.0
        quality = self.base["q0"]
        positions: dict[str, float] = {}
        for k in self.knobs:
            if k.name not in config:
                continue
            value = config[k.name]
            if k.kind == "unordered":
                speed += k.speed_by[value]
                log_latency += k.latency_by[value]
                log_memory += k.memory_by[value]
                quality -= k.quality_by[value]
                continue
            u = k.position(value)
            positions[k.name] = u
            speed += k.speed_a * u - k.speed_b * (u - k.speed_c) ** 2
            log_latency += k.latency * u
            if k.mem_dir:
                log_memory += k.mem_dir * k.mem_exp * math.log1p(k.mem_rate * u)
            quality -= k.quality * u * u
        for a, b, g in self.pairs:
            if a in positions and b in positions:
                speed += g * (positions[a] - 0.5) * (positions[b] - 0.5)
        if self.direction == "maximize":
            value = self.base["scale"] * math.exp(speed)
        else:
            value = self.base["scale"] * math.exp(-speed)
        return {self.objective: value,
                "latency_ms": self.base["l0"] * math.exp(log_latency),
                "memory_mb": self.base["m0"] * math.exp(log_memory),
                "quality": quality}

    def memory(self, config: Mapping[str, Any]) -> float:
        """Noise-free memory (MB) of ``config``; above :attr:`device_memory_mb` it is OOM."""
        return self.metrics(config)["memory_mb"]

    def crash(self, config: Mapping[str, Any],
              metrics: Mapping[str, float] | None = None) -> Exception | None:
        """The exception an evaluation of ``config`` raises, or ``None`` when it runs."""
        knobs = self.knobs_by_name
        for rule in self.rules:
            if rule.kind is CrashKind.INVALID_CONFIG and rule.fires(config, knobs):
                return rule.error()
        mem = (metrics or self.metrics(config))["memory_mb"]
        if mem > self.device_memory_mb:
            return MemoryError(f"out of memory: needs {mem:.0f} MB, the device has "
                               f"{self.device_memory_mb:.0f} MB")
        for rule in self.rules:
            if rule.kind is not CrashKind.INVALID_CONFIG and rule.fires(config, knobs):
                return rule.error()
        return None

    def evaluate_noise_free(self, config: Mapping[str, Any]) -> dict[str, float]:
        """Noise-free metrics of ``config``; raises as :meth:`simulate` does."""
        metrics = self.metrics(config)
        exc = self.crash(config, metrics)
        if exc is not None:
            raise exc
        return metrics

    def noise_of(self, config: Mapping[str, Any]) -> float:
        """The noise sigma that applies to ``config`` (a quarter of it for quality).

        :attr:`noise` everywhere, except in the :attr:`noisy_region` of a noisy variant.
        """
        region = self.noisy_region
        if region is None or region.param not in config:
            return self.noise
        value = config[region.param]
        if region.choice is not None:
            return self.noise * region.factor if value == region.choice else self.noise
        u = min(1.0, max(0.0, self.knobs_by_name[region.param].position(value)))
        return self.noise * (1.0 + (region.factor - 1.0) * u)

    def simulate(self, config: Config, rng: np.random.Generator) -> dict[str, float]:
        """One measured evaluation: the noise-free metrics times multiplicative noise.

        Args:
            config: A configuration of :attr:`space`.
            rng: The noise generator the Problem API passes in.

        Returns:
            The objective, ``latency_ms``, ``memory_mb`` and ``quality``.

        Raises:
            InvalidConfig: An unsupported combination.
            MemoryError: The configuration needs more than the device memory.
            RuntimeError: A run-time failure rule fired.
            TimeoutError: A timeout rule fired.
        """
        return _noisy(self.evaluate_noise_free(config), self.noise_of(config), rng)

    def staged(self, config: Config, rng: np.random.Generator,
               report: Callable[..., None]) -> dict[str, float]:
        """:meth:`simulate`, passing the fidelity rung ``short`` on its way: a measurement over
        a quarter of the timed windows, so twice the noise, drawn from a child of ``rng`` that
        leaves its stream as it was (the final metrics equal :meth:`simulate`'s). A crash
        comes before the rung. A run stopped there costs the cost model's ``aborted_s``."""
        metrics = self.evaluate_noise_free(config)
        sigma = self.noise_of(config)
        report(_noisy(metrics, 2.0 * sigma, rng.spawn(1)[0]), step=1, rung="short")
        return _noisy(metrics, sigma, rng)

    def feasible(self, metrics: Mapping[str, float]) -> bool:
        """Whether noise-free ``metrics`` meet every constraint."""
        return all(c.is_met(metrics[c.metric]) for c in self._constraints)

    @property
    def knobs_by_name(self) -> dict[str, Knob]:
        """The knobs by parameter name (built once)."""
        cached: dict[str, Knob] | None = self.__dict__.get("_knob_map")
        if cached is None:
            cached = {k.name: k for k in self.knobs}
            self.__dict__["_knob_map"] = cached
        return cached

    @property
    def _constraints(self) -> list[Constraint]:
        key = tuple(self.constraints)
        cached = self.__dict__.get("_parsed")
        if cached is None or cached[0] != key:
            cached = (key, parse_constraints(self.constraints))
            self.__dict__["_parsed"] = cached
        parsed: list[Constraint] = cached[1]
        return parsed

    def description(self) -> str:
        """A short description: size, crash rules, constraints, noise and measured rates."""
        n_cond = sum(1 for p in self.space if p.when)
        kinds = {"unordered": 0, "ordered": 0}
        for k in self.knobs:
            if k.kind in kinds:
                kinds[k.kind] += 1
        declared = [p.name for p in self.space if p.memory]
        crash = sum(self.crash_share.values())
        crash_parts = ", ".join(f"{v:.1%} {k}" for k, v in self.crash_share.items() if v > 0)
        oom = "no OOM" if math.isinf(self.device_memory_mb) else \
            f"{self.device_memory_mb:.0f} MB device"
        region = self.noisy_region
        variant = "" if region is None else \
            f", noisy variant (base noise {self.noise:.1%}, {region.text()})"
        noise = f"{self.noise:.1%}" if region is None else \
            f"{self.noise:.1%} base, {region.text()}"
        return (f"Generated instance {self.instance}{variant}: {len(self.space)} parameters "
                f"({kinds['unordered']} unordered, {kinds['ordered']} ordered categorical, "
                f"{n_cond} conditional), {_count(len(self.rules), 'crash rule')}, {oom}, "
                f"{_count(len(self.constraints), 'constraint')}, "
                f"{self.feasible_share:.1%} of random configurations feasible. "
                f"{'Maximise' if self.direction == 'maximize' else 'Minimise'} "
                f"{self.objective} subject to {', '.join(self.constraints)}; noise "
                f"{noise}; memory declared on {', '.join(declared) or 'nothing'}. "
                f"Random sampling (noise-free, {PLACEMENT_SAMPLES} configurations): "
                f"{crash:.1%} crash ({crash_parts or 'none'}), {self.feasible_share:.1%} "
                f"feasible. Optimum (estimated) {self.optimum:.6g}, reference (mean feasible "
                f"random) {self.reference:.6g}.")

    def problem(self) -> Problem:
        """This instance as a DeployBench :class:`~deploybench.problem.Problem`."""
        return Problem(self.name, self.space, Objective(self.objective, self.direction),
                       parse_constraints(self.constraints), self.simulate, self.optimum,
                       self.reference, cost=self.cost, description=self.description(),
                       families=self.families, feasible_families=self.feasible_families,
                       staged=self.staged)


def _noisy(metrics: Mapping[str, float], sigma: float,
           rng: np.random.Generator) -> dict[str, float]:
    """``metrics`` times multiplicative noise ``max(0.05, 1 + sigma z)`` (a quarter of
    ``sigma`` for quality), one standard normal ``z`` per metric from ``rng``."""
    z = rng.standard_normal(len(metrics))
    return {k: v * max(0.05, 1.0 + sigma * (0.25 if k == "quality" else 1.0) * float(zi))
            for (k, v), zi in zip(metrics.items(), z, strict=True)}
