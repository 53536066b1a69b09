"""Generated DeployBench problems: a seeded family of random deployment-like instances.

The hand-written problems (``crashy-branin``, ``deploy-sim-*``, ``llm-sim-*``, ...) are few, so a
sampler setting chosen on them can be overfitted to them. This module draws as many problems as
needed from one family, each determined by an integer ``instance`` (NumPy's PCG64 seeded with
``[17, instance]``; the same instance gives the same problem on every machine), and fixes two
splits: a development set (:data:`DEV_INSTANCES`, ``gen-dev-00`` .. ``gen-dev-19``) to choose
sampler settings on, and a test set (:data:`TEST_INSTANCES`, ``gen-test-00`` ..
``gen-test-19``) to report on, never to tune on.

The family (every draw is independent and uniform unless stated; "log-uniform" = uniform in
log space):

Search space
    ``n`` parameters, ``n`` uniform in 3..14. ``n_u`` = min(n - 1, uniform 0..3) unordered
    categoricals ``catK`` come first (2-5 string choices ``"a"``, ``"b"``, ...); of the rest,
    each is an ordered categorical ``ordK`` with probability 1/4 (3-6 numeric choices: powers
    of two from 1, 2, 4 or 8, or evenly spaced rounded floats), otherwise an ``intK`` or a
    ``realK`` (even odds), each on a log scale with probability 1/2 (ints) or 2/5 (reals).
    ``K`` is the parameter's position. With probability ``p_cond`` (per instance, uniform in
    [0, 0.5]) a parameter after an unordered categorical is conditional: active only when a
    random earlier unordered categorical takes one of a random non-empty proper subset of its
    choices (so categoricals can nest). Ordered parameters are positioned in ``u`` in [0, 1]
    (log scale for log parameters, choice index for ordered categoricals); an inactive
    parameter contributes nothing below.

Metrics (noise-free model; ``u_i`` the positions, ``v`` unordered choices)
    * Speed ``S = sum_i a_i u_i - b_i (u_i - c_i)^2 + sum_cat s[v] + sum_pairs g (u_i - 1/2)
      (u_j - 1/2)``, with ``c_i`` uniform in [0, 1], ``b_i`` 0 or uniform in [0, 2] (even
      odds), cat offsets ``s`` ~ N(0, 0.4), 0-2 pairwise terms with ``g`` ~ N(0, 1.5).
    * Memory ``memory_mb = M0 * prod_i (1 + r_i u_i)^(d_i e_i) * prod_cat m[v]``: each ordered
      parameter drives memory with probability ``p_mem`` (uniform in [0.2, 0.6]; at least one
      when there are ordered parameters), increasing (``d = +1``, odds 3/4) or decreasing
      (``d = -1``); ``r_i`` log-uniform in [1, 30], exponent ``e_i`` uniform in [0.3, 1.5],
      ``M0`` log-uniform in [200, 20000] MB, cat factors ``m = exp(N(0, 0.4))``. Each driver
      is declared (``memory: increasing|decreasing``) with probability 0.85; a declaration is
      always true (undeclared drivers model a user who did not know).
    * Latency ``latency_ms = L0 * exp(sum_i l_i u_i + sum_cat l[v])``: drivers grow in their
      memory direction (``l_i = d_i * U(0.2, 1.5)``: a bigger batch is slower per request),
      other parameters ``l_i = -rho a_i + N(0, 0.3)`` with ``rho`` uniform in [0, 1]; ``L0``
      log-uniform in [5, 500] ms, cat offsets N(0, 0.3).
    * Quality ``quality = q0 - sum_i q_i u_i^2 - sum_cat q[v]``: each ordered parameter trades
      quality for speed with probability 0.3 (``q_i`` uniform in [0.02, 0.2], ``a_i`` raised by
      uniform [0.3, 1]; at least one does); ``q0`` uniform in [0.8, 0.98], cat penalties
      uniform in [0, 0.08].
    * Drivers have ``a_i`` = U(0.3, 1.5) (increasing) or -U(0.1, 1) (decreasing); others
      ``a_i`` ~ N(0, 0.7).
    * Objective (even odds): maximise ``throughput = T0 * exp(S)`` (``T0`` log-uniform in
      [10, 1000]) or minimise ``time_per_item_ms = t0 * exp(-S)`` (``t0`` log-uniform in
      [1, 100]).
    * Measurement noise: every reported metric is multiplied by ``max(0.05, 1 + sigma z)``,
      ``z`` standard normal from the ``rng`` the Problem API passes in, ``sigma`` uniform in
      [0, 0.1] per instance (``sigma / 4`` for quality, which sits in a narrow band near its
      floor, as an accuracy measured on a fixed evaluation set would). Crashes are
      noise-free.

Crashes (checked in this order)
    * 1-4 rules, each a conjunction of 1-3 conditions on distinct parameters: an unordered
      categorical equal to one random choice, or an ordered parameter's ``u`` above ``1 - s``
      or below ``s`` (even odds), ``s = r^(1/m)`` for ``m`` ordered conditions and a rule share
      ``r`` uniform in [0.02, 0.12]. A condition on an inactive parameter is false. A rule
      of unordered conditions only raises :class:`~deploytune.InvalidConfig`; one with an
      ordered condition raises ``InvalidConfig`` (odds 0.3), else ``RuntimeError`` or
      ``TimeoutError`` (even odds). Invalid-config rules are checked first.
    * Out of memory: ``MemoryError`` when the noise-free memory exceeds the device memory,
      placed at the ``1 - o`` quantile of the memory of random configurations that passed the
      invalid-config rules, ``o`` uniform in [0.03, 0.25]; with probability 0.15 the device
      is big enough for everything (no OOM).
    * Then the runtime-error / timeout rules. Rules are dropped, last first, while more than
      60 % of the placement sample (below) crashes.

Constraints and placement
    1-3 (uniform) of ``latency_ms <= L``, ``memory_mb <= M``, ``quality >= Q``, chosen at
    random. The limits come from 2000 random configurations (``space.sample`` with the
    generator ``[17, instance, 1]``), evaluated noise-free: with weights ``w`` ~
    Dirichlet(1, ..., 1), limit ``c`` is the ``t^(w_c)`` quantile (``1 - t^(w_c)`` for
    quality) of the non-crashed values, and ``t`` is bisected so that a target share ``p``
    of all 2000 (crashed included) is feasible, ``p`` uniform in [0.01, 0.20] (ties in the
    metric values can leave the share a little off ``p``). Limits are rounded to 6
    significant digits.

Optimum and reference
    ``optimum`` is estimated: the best noise-free feasible objective among those 2000 samples,
    then improved by local search (8 starts from the best, 50 :meth:`Space.neighbor` moves
    each, accepting noise-free feasible improvements). A sampler may beat the estimate; its
    regret is then 0. ``reference`` is the mean noise-free objective of the feasible samples,
    so normalised regret is 1 at the mean feasible random configuration.

Cost model
    A full run costs ``F`` simulated seconds (log-uniform in [30, 300]), an infeasible run the
    same, an aborted one ``F / 4``. Crashes cost ``F`` times: invalid config log-uniform in
    [0.1, 1], oom and runtime error log-uniform in [0.1, 3], timeout log-uniform in [1, 10],
    transient 0.1; so crash costs range from 0.1x to 10x a full run.

Noisy variant (issue 18)
    Real CPUs are noisier in some regions (dynamic INT8 quantization measures far noisier than
    fp32), so each instance also has a variant whose noise depends on the configuration:
    ``gen-noisy-dev-NN`` / ``gen-noisy-test-NN`` (:func:`generate_noisy`; other instances
    ``gen-noisy-<instance>``) is instance ``gen-dev-NN`` / ``gen-test-NN`` with the same
    space, metric model, crash rules, constraint limits, optimum, reference and costs (all
    noise-free quantities, placed on the base instance), and only its noise changed. The
    changes are drawn from a separate generator seeded with ``[17, instance, 3]``, so the base
    instance is untouched, in this order: a base ``sigma`` uniform in [0.02, 0.08], a factor
    ``f`` uniform in [2, 5], then the noisy region (:class:`NoisyRegion`). With unordered
    categoricals, one of them (uniform among the unconditional ones, all of them if none is)
    and one of its choices (uniform): a configuration taking that choice is measured with
    ``sigma * f``, any other with ``sigma``. Without unordered categoricals, one ordered
    parameter (uniform): the noise grows along it, ``sigma * (1 + (f - 1) u)`` with ``u`` its
    position (``sigma`` when it is inactive). The config-dependent sigma
    (:meth:`GeneratedInstance.noise_of`) replaces the per-instance one in the noise model
    above (``max(0.05, 1 + sigma z)``, a quarter of it for quality); crashes stay noise-free
    and an evaluation depends only on the configuration and the ``rng`` passed in.

Generation takes 40-150 ms (most of it evaluating the placement sample), one evaluation
about 60 microseconds.

Example:
    >>> from deploybench.generated import generate
    >>> generate(3).name, generate(5000).name
    ('gen-dev-03', 'gen-5000')
    >>> generate_noisy(3).name, generate_noisy(1001).name
    ('gen-noisy-dev-03', 'gen-noisy-test-01')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploybench.problem import CostModel, Problem
from deploytune.outcome import (
    Constraint,
    CrashKind,
    InvalidConfig,
    Objective,
    crash_kind_of,
    parse_constraints,
)
from deploytune.space import Categorical, Config, Float, Int, Param, Space

__all__ = [
    "DEV_INSTANCES",
    "PLACEMENT_SAMPLES",
    "TEST_INSTANCES",
    "GeneratedInstance",
    "NoisyRegion",
    "build_instance",
    "build_noisy_instance",
    "generate",
    "generate_noisy",
    "generated_noisy_problems",
    "generated_problems",
]

DEV_INSTANCES: tuple[int, ...] = tuple(range(20))
"""Instances of the development set (``gen-dev-00`` .. ``gen-dev-19``): tune settings here."""

TEST_INSTANCES: tuple[int, ...] = tuple(range(1000, 1020))
"""Instances of the test set (``gen-test-00`` .. ``gen-test-19``): report here, never tune."""

PLACEMENT_SAMPLES = 2000
"""Random configurations used to place the constraint limits and the device memory."""

_SEED = 17  # the issue that asked for the family
_CRASH_CAP = 0.6
_LETTERS = "abcdefgh"


@dataclass
class _Knob:
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
class _Condition:
    name: str
    choice: Any = None  # unordered: equal to this choice
    above: float | None = None  # ordered: u > above
    below: float | None = None  # ordered: u < below

    def holds(self, config: Mapping[str, Any], knobs: Mapping[str, _Knob]) -> bool:
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
        if self.choice is not None:
            return f"{self.name} = {self.choice}"
        if self.above is not None:
            return f"{self.name} in the top {1 - self.above:.0%} of its range"
        return f"{self.name} in the bottom {self.below:.0%} of its range"


@dataclass(frozen=True)
class _Rule:
    conditions: tuple[_Condition, ...]
    kind: CrashKind

    def fires(self, config: Mapping[str, Any], knobs: Mapping[str, _Knob]) -> bool:
        return all(c.holds(config, knobs) for c in self.conditions)

    def error(self) -> Exception:
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
    knobs: list[_Knob]
    base: dict[str, float]
    pairs: list[tuple[str, str, float]]
    rules: list[_Rule]
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
        knobs = self._by_name
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
        u = min(1.0, max(0.0, self._by_name[region.param].position(value)))
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
        metrics = self.evaluate_noise_free(config)
        sigma = self.noise_of(config)
        z = rng.standard_normal(len(metrics))
        return {k: v * max(0.05, 1.0 + sigma * (0.25 if k == "quality" else 1.0)
                           * float(zi))
                for (k, v), zi in zip(metrics.items(), z, strict=True)}

    def feasible(self, metrics: Mapping[str, float]) -> bool:
        """Whether noise-free ``metrics`` meet every constraint."""
        return all(c.is_met(metrics[c.metric]) for c in self._constraints)

    @property
    def _by_name(self) -> dict[str, _Knob]:
        cached: dict[str, _Knob] | None = self.__dict__.get("_knob_map")
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
                       families=self.families, feasible_families=self.feasible_families)


# ------------------------------------------------------------------------------- generation
def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def instance_name(instance: int) -> str:
    """Registry name of ``instance``: ``gen-dev-NN``, ``gen-test-NN`` or ``gen-<instance>``."""
    if instance in DEV_INSTANCES:
        return f"gen-dev-{DEV_INSTANCES.index(instance):02d}"
    if instance in TEST_INSTANCES:
        return f"gen-test-{TEST_INSTANCES.index(instance):02d}"
    return f"gen-{instance}"


def noisy_instance_name(instance: int) -> str:
    """Registry name of the noisy variant: ``gen-noisy-dev-NN``, ``gen-noisy-test-NN`` or
    ``gen-noisy-<instance>``."""
    return "gen-noisy-" + instance_name(instance)[len("gen-"):]


def _draw_params(rng: np.random.Generator) -> list[_Knob]:
    n = int(rng.integers(3, 15))
    n_u = min(n - 1, int(rng.integers(0, 4)))
    p_cond = float(rng.uniform(0.0, 0.5))
    p_mem = float(rng.uniform(0.2, 0.6))
    rho = float(rng.uniform(0.0, 1.0))
    knobs: list[_Knob] = []
    unordered: list[_Knob] = []
    for i in range(n):
        when: dict[str, tuple[Any, ...]] = {}
        if unordered and rng.random() < p_cond:
            parent = unordered[int(rng.integers(len(unordered)))]
            assert isinstance(parent.param, Categorical)
            choices = list(parent.param.choices)
            size = int(rng.integers(1, len(choices)))
            picked = sorted(rng.choice(len(choices), size=size, replace=False).tolist())
            when = {parent.name: tuple(choices[j] for j in picked)}
        if i < n_u:
            k = int(rng.integers(2, 6))
            choices_u = tuple(_LETTERS[:k])
            name = f"cat{i}"
            knob = _Knob(name, "unordered", Categorical(name, when, choices=choices_u))
            for c in choices_u:
                knob.speed_by[c] = float(rng.normal(0.0, 0.4))
                knob.latency_by[c] = float(rng.normal(0.0, 0.3))
                knob.memory_by[c] = float(rng.normal(0.0, 0.4))
                knob.quality_by[c] = float(rng.uniform(0.0, 0.08))
            unordered.append(knob)
            knobs.append(knob)
            continue
        # an ordered parameter: its type, then its effects
        driver = rng.random() < p_mem
        mem_dir = (1 if rng.random() < 0.75 else -1) if driver else 0
        declare = driver and rng.random() < 0.85
        memory = ("increasing" if mem_dir > 0 else "decreasing") if declare else None
        r = rng.random()
        if r < 0.25:
            k = int(rng.integers(3, 7))
            if rng.random() < 0.6:
                start = int(2 ** int(rng.integers(0, 4)))
                choices_o: tuple[Any, ...] = tuple(start * 2**j for j in range(k))
            else:
                lo = round(float(rng.uniform(0.0, 1.0)), 2)
                step = round(float(rng.uniform(0.05, 0.5)), 2)
                choices_o = tuple(round(lo + step * j, 2) for j in range(k))
            name = f"ord{i}"
            knob = _Knob(name, "ordered", Categorical(name, when, choices=choices_o,
                                                      memory=memory),
                         index={c: j for j, c in enumerate(choices_o)})
        elif r < 0.625:
            log = rng.random() < 0.5
            if log:
                low_i = int(2 ** int(rng.integers(0, 3)))
                high_i = low_i * int(2 ** int(rng.integers(3, 9)))
            else:
                low_i = int(rng.integers(0, 4))
                high_i = low_i + int(rng.integers(3, 64))
            name = f"int{i}"
            knob = _Knob(name, "int", Int(name, when, low=low_i, high=high_i, log=log,
                                          memory=memory),
                         low=low_i, high=high_i, log=log)
        else:
            log = rng.random() < 0.4
            if log:
                low_f = _sig(10 ** rng.uniform(-4, -1))
                high_f = _sig(low_f * 10 ** rng.uniform(1, 3))
            else:
                low_f = round(float(rng.uniform(0.0, 1.0)), 3)
                high_f = round(low_f + float(rng.uniform(0.5, 10.0)), 3)
            name = f"real{i}"
            knob = _Knob(name, "float", Float(name, when, low=low_f, high=high_f, log=log,
                                              memory=memory),
                         low=low_f, high=high_f, log=log)
        knob.mem_dir = mem_dir
        if mem_dir:
            knob.mem_rate = _loguniform(rng, 1.0, 30.0)
            knob.mem_exp = float(rng.uniform(0.3, 1.5))
            knob.speed_a = float(rng.uniform(0.3, 1.5)) if mem_dir > 0 else \
                -float(rng.uniform(0.1, 1.0))
            knob.latency = mem_dir * float(rng.uniform(0.2, 1.5))
        else:
            knob.speed_a = float(rng.normal(0.0, 0.7))
            knob.latency = -rho * knob.speed_a + float(rng.normal(0.0, 0.3))
        if rng.random() < 0.5:
            knob.speed_b = float(rng.uniform(0.0, 2.0))
        knob.speed_c = float(rng.uniform(0.0, 1.0))
        if rng.random() < 0.3:
            knob.quality = float(rng.uniform(0.02, 0.2))
            knob.speed_a += float(rng.uniform(0.3, 1.0))
        knobs.append(knob)
    # at least one memory driver when there are ordered parameters
    ordered = [k for k in knobs if k.kind != "unordered"]
    if ordered and not any(k.mem_dir for k in ordered):
        forced = ordered[int(rng.integers(len(ordered)))]
        forced.mem_dir = 1
        forced.mem_rate = _loguniform(rng, 1.0, 30.0)
        forced.mem_exp = float(rng.uniform(0.3, 1.5))
        forced.latency = abs(forced.latency) + 0.2
        forced.speed_a = abs(forced.speed_a) + 0.3
        if rng.random() < 0.85:
            forced.param = _with_memory(forced.param, "increasing")
    # quality always has a continuous part (else a quality floor could not be placed)
    if ordered and not any(k.quality for k in ordered):
        forced = ordered[int(rng.integers(len(ordered)))]
        forced.quality = float(rng.uniform(0.02, 0.2))
        forced.speed_a += float(rng.uniform(0.3, 1.0))
    return knobs


def _with_memory(p: Param, memory: str) -> Param:
    if isinstance(p, Categorical):
        return Categorical(p.name, p.when, choices=p.choices, memory=memory)
    if isinstance(p, Int):
        return Int(p.name, p.when, low=p.low, high=p.high, log=p.log, memory=memory)
    assert isinstance(p, Float)
    return Float(p.name, p.when, low=p.low, high=p.high, log=p.log, memory=memory)


def _draw_rules(rng: np.random.Generator, knobs: list[_Knob]) -> list[_Rule]:
    rules: list[_Rule] = []
    for _ in range(int(rng.integers(1, 5))):
        m = min(len(knobs), int(rng.integers(1, 4)))
        picked = [knobs[j] for j in rng.choice(len(knobs), size=m, replace=False).tolist()]
        n_ordered = sum(1 for k in picked if k.kind != "unordered")
        share = float(rng.uniform(0.02, 0.12)) ** (1.0 / max(1, n_ordered))
        conditions = []
        for k in picked:
            if k.kind == "unordered":
                assert isinstance(k.param, Categorical)
                choice = k.param.choices[int(rng.integers(len(k.param.choices)))]
                conditions.append(_Condition(k.name, choice=choice))
            elif rng.random() < 0.5:
                conditions.append(_Condition(k.name, above=round(1.0 - share, 4)))
            else:
                conditions.append(_Condition(k.name, below=round(share, 4)))
        if n_ordered == 0 or rng.random() < 0.3:
            kind = CrashKind.INVALID_CONFIG
        else:
            kind = CrashKind.RUNTIME_ERROR if rng.random() < 0.5 else CrashKind.TIMEOUT
        rules.append(_Rule(tuple(sorted(conditions, key=lambda c: c.name)), kind))
    return rules


def build_instance(instance: int) -> GeneratedInstance:
    """Draw instance ``instance`` of the family (see the module docstring).

    Args:
        instance: A non-negative integer seed.

    Returns:
        The instance, with limits, optimum and reference placed.

    Raises:
        ValueError: For a negative instance.
    """
    if instance < 0:
        raise ValueError(f"instance must be >= 0, got {instance}")
    rng = np.random.default_rng([_SEED, instance])
    knobs = _draw_params(rng)
    space = Space([k.param for k in knobs])
    rules = _draw_rules(rng, knobs)
    maximize = rng.random() < 0.5
    base = {"q0": float(rng.uniform(0.8, 0.98)),
            "l0": _loguniform(rng, 5.0, 500.0),
            "m0": _loguniform(rng, 200.0, 20000.0),
            "scale": _loguniform(rng, 10.0, 1000.0) if maximize else
            _loguniform(rng, 1.0, 100.0)}
    ordered = [k.name for k in knobs if k.kind != "unordered"]
    pairs: list[tuple[str, str, float]] = []
    if len(ordered) >= 2:
        for _ in range(int(rng.integers(0, 3))):
            a, b = rng.choice(len(ordered), size=2, replace=False).tolist()
            pairs.append((ordered[a], ordered[b], float(rng.normal(0.0, 1.5))))
    noise = float(rng.uniform(0.0, 0.1))
    full = _loguniform(rng, 30.0, 300.0)
    cost = CostModel(
        feasible_s=_sig(full), infeasible_s=_sig(full), aborted_s=_sig(full / 4),
        crash_s={CrashKind.INVALID_CONFIG.value: _sig(full * _loguniform(rng, 0.1, 1.0)),
                 CrashKind.OOM.value: _sig(full * _loguniform(rng, 0.1, 3.0)),
                 CrashKind.RUNTIME_ERROR.value: _sig(full * _loguniform(rng, 0.1, 3.0)),
                 CrashKind.TIMEOUT.value: _sig(full * _loguniform(rng, 1.0, 10.0)),
                 CrashKind.TRANSIENT.value: _sig(full * 0.1)})
    oom_share = float(rng.uniform(0.03, 0.25)) if rng.random() >= 0.15 else 0.0
    n_con = int(rng.integers(1, 4))
    kinds = sorted(rng.choice(3, size=n_con, replace=False).tolist())
    weights = rng.dirichlet(np.ones(n_con))
    target = float(rng.uniform(0.01, 0.20))
    gen = GeneratedInstance(
        instance, instance_name(instance), space,
        "throughput" if maximize else "time_per_item_ms",
        "maximize" if maximize else "minimize", knobs, base, pairs, rules, noise, cost)
    _place(gen, np.random.default_rng([_SEED, instance, 1]), oom_share, kinds,
           [float(w) for w in weights], target)
    _estimate_optimum(gen, np.random.default_rng([_SEED, instance, 2]))
    return gen


def _place(gen: GeneratedInstance, rng: np.random.Generator, oom_share: float,
           kinds: list[int], weights: list[float], target: float) -> None:
    """Place the device memory and the constraint limits on a random sample."""
    configs = [gen.space.sample(rng) for _ in range(PLACEMENT_SAMPLES)]
    metrics = [gen.metrics(c) for c in configs]
    knobs = gen._by_name

    def invalid(c: Config) -> bool:
        return any(r.kind is CrashKind.INVALID_CONFIG and r.fires(c, knobs) for r in gen.rules)

    if oom_share > 0:
        valid_mem = [m["memory_mb"] for c, m in zip(configs, metrics, strict=True)
                     if not invalid(c)]
        if valid_mem:
            gen.device_memory_mb = _sig(float(np.quantile(valid_mem, 1.0 - oom_share)))
    # drop rules, last first, while too much crashes
    while True:
        crashes = [gen.crash(c, m) for c, m in zip(configs, metrics, strict=True)]
        n_crash = sum(e is not None for e in crashes)
        if n_crash <= _CRASH_CAP * len(configs) or len(gen.rules) <= 1:
            break
        gen.rules = gen.rules[:-1]
    ok = [m for m, e in zip(metrics, crashes, strict=True) if e is None]
    share: dict[str, float] = {}
    for e in crashes:
        if e is not None:
            kind = crash_kind_of(e).value
            share[kind] = share.get(kind, 0.0) + 1.0 / len(configs)
    gen.crash_share = dict(sorted(share.items()))
    specs = [("latency_ms", "<="), ("memory_mb", "<="), ("quality", ">=")]
    chosen = [specs[k] for k in kinds]
    columns = [np.array([m[name] for m in ok]) for name, _ in chosen]

    def limits(t: float) -> list[float]:
        out = []
        for (_, op), col, w in zip(chosen, columns, weights, strict=True):
            level = t ** w
            out.append(_sig(float(np.quantile(col, level if op == "<=" else 1.0 - level))))
        return out

    def count(lims: list[float]) -> int:
        mask = np.ones(len(ok), dtype=bool)
        for (_, op), col, lim in zip(chosen, columns, lims, strict=True):
            mask &= (col <= lim) if op == "<=" else (col >= lim)
        return int(mask.sum())

    want = target * len(configs)
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if count(limits(mid)) < want:
            lo = mid
        else:
            hi = mid
    lims = limits(hi)
    if abs(count(limits(lo)) - want) < abs(count(lims) - want) and count(limits(lo)) > 0:
        lims = limits(lo)
    gen.constraints = [f"{name} {op} {lim:.6g}" for (name, op), lim in
                       zip(chosen, lims, strict=True)]
    feasible = [(c, m) for c, m, e in zip(configs, metrics, crashes, strict=True)
                if e is None and gen.feasible(m)]
    gen.feasible_share = len(feasible) / len(configs)
    values = [m[gen.objective] for _, m in feasible]
    gen.reference = float(np.mean(values)) if values else 0.0
    sign = 1.0 if gen.direction == "maximize" else -1.0
    best = sorted(feasible, key=lambda cm: -sign * cm[1][gen.objective])
    gen.__dict__["_starts"] = [c for c, _ in best[:8]]
    top = [k for k in gen.knobs if k.kind == "unordered" and not k.param.when]
    if top:
        fam = top[0].name
        gen.families = (fam,)
        gen.feasible_families = {fam: tuple(v for v in top[0].speed_by
                                            if any(c.get(fam) == v for c, _ in feasible))}


def _estimate_optimum(gen: GeneratedInstance, rng: np.random.Generator) -> None:
    """Best feasible noise-free value: the best placement samples, then local search."""
    sign = 1.0 if gen.direction == "maximize" else -1.0
    starts: list[Config] = gen.__dict__.pop("_starts", [])
    best_value = -math.inf
    for start in starts:
        current = dict(start)
        value = sign * gen.metrics(current)[gen.objective]
        for step in range(50):
            temperature = 0.5 * (1.0 - step / 50) + 0.02
            cand = gen.space.neighbor(current, rng, temperature, 0.2)
            metrics = gen.metrics(cand)
            if gen.crash(cand, metrics) is not None or not gen.feasible(metrics):
                continue
            v = sign * metrics[gen.objective]
            if v > value:
                current, value = cand, v
        best_value = max(best_value, value)
    if math.isinf(best_value):  # nothing feasible: cannot happen with p >= 1 % of 2000
        raise RuntimeError(f"instance {gen.instance}: no feasible configuration found")
    gen.optimum = float(sign * best_value)
    if not sign * (gen.optimum - gen.reference) > 0:
        gen.optimum = gen.reference + sign * abs(gen.reference) * 1e-6


def generate(instance: int) -> Problem:
    """A random problem instance drawn deterministically from its integer seed.

    Args:
        instance: A non-negative integer; the same instance gives the identical problem on
            every machine.

    Returns:
        The :class:`~deploybench.problem.Problem` (named ``gen-dev-NN`` for
        :data:`DEV_INSTANCES`, ``gen-test-NN`` for :data:`TEST_INSTANCES`, ``gen-<instance>``
        otherwise).
    """
    return build_instance(instance).problem()


def generated_problems() -> dict[str, int]:
    """Registry names of the two splits -> their instances (development set first)."""
    return {instance_name(i): i for i in (*DEV_INSTANCES, *TEST_INSTANCES)}


def build_noisy_instance(instance: int) -> GeneratedInstance:
    """The noisy variant of instance ``instance`` (see "Noisy variant" in the module
    docstring): the base instance with a base sigma and a :class:`NoisyRegion` drawn from a
    separate generator.

    Args:
        instance: A non-negative integer seed.

    Returns:
        The instance, named ``gen-noisy-...``; everything but :attr:`~GeneratedInstance.name`,
        :attr:`~GeneratedInstance.noise` and :attr:`~GeneratedInstance.noisy_region` is the
        base instance's.

    Raises:
        ValueError: For a negative instance.
    """
    base = build_instance(instance)
    rng = np.random.default_rng([_SEED, instance, 3])
    sigma = float(rng.uniform(0.02, 0.08))
    factor = float(rng.uniform(2.0, 5.0))
    unordered = [k for k in base.knobs if k.kind == "unordered"]
    if unordered:
        top = [k for k in unordered if not k.param.when] or unordered
        knob = top[int(rng.integers(len(top)))]
        assert isinstance(knob.param, Categorical)
        choice = knob.param.choices[int(rng.integers(len(knob.param.choices)))]
        region = NoisyRegion(knob.name, factor, choice)
    else:
        knob = base.knobs[int(rng.integers(len(base.knobs)))]
        region = NoisyRegion(knob.name, factor)
    return dataclasses.replace(base, name=noisy_instance_name(instance), noise=sigma,
                               noisy_region=region)


def generate_noisy(instance: int) -> Problem:
    """The noisy variant of :func:`generate` ``(instance)``: same space, limits, optimum and
    reference, with noise that depends on the configuration (see the module docstring).

    Args:
        instance: A non-negative integer; the same instance gives the identical problem on
            every machine.

    Returns:
        The :class:`~deploybench.problem.Problem`, named ``gen-noisy-dev-NN``,
        ``gen-noisy-test-NN`` or ``gen-noisy-<instance>``.
    """
    return build_noisy_instance(instance).problem()


def generated_noisy_problems() -> dict[str, int]:
    """Registry names of the noisy variants of the two splits -> their instances."""
    return {noisy_instance_name(i): i for i in (*DEV_INSTANCES, *TEST_INSTANCES)}
