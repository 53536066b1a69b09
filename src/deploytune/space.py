"""Hierarchical, mixed-variable search spaces.

A :class:`Space` is an ordered collection of parameters (:class:`Categorical`, :class:`Int`,
:class:`Float`). A parameter may be *conditional*: it is active only when its parents take given
values (``when={"backend": ["eager", "onnxruntime"]}``). Parents are declared before their
children, so walking the parameters in declaration order always resolves a configuration.
Known-bad combinations can be declared as *forbidden* and are never sampled.

A configuration is a plain ``dict`` holding the active parameters only.

Example:
    >>> space = Space.from_dict({
    ...     "backend": {"type": "categorical", "choices": ["eager", "compile"]},
    ...     "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
    ...     "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager"]}},
    ... })
    >>> config = space.sample(numpy.random.default_rng(0))
    >>> space.validate(config)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = [
    "MEMORY_DIRECTIONS",
    "Categorical",
    "Config",
    "Float",
    "Int",
    "Param",
    "Space",
    "all_numbers",
]

Config = dict[str, Any]
"""A configuration: active parameter name -> value."""

_CHOICE_TYPES = (str, int, float, bool, type(None))
_COMMON_KEYS = {"type", "when", "memory"}
MEMORY_DIRECTIONS = ("increasing", "decreasing")
"""Values of a parameter's ``memory`` declaration (see :attr:`Param.memory`)."""
_KEYS_BY_TYPE = {
    "categorical": _COMMON_KEYS | {"choices"},
    "int": _COMMON_KEYS | {"low", "high", "log", "step"},
    "float": _COMMON_KEYS | {"low", "high", "log", "step"},
}


@dataclass(frozen=True)
class Param:
    """Base of all parameters: a name and an optional activation condition.

    Attributes:
        name: The parameter's name (a key of configurations).
        when: Parent name -> allowed parent values. The parameter is active only when every
            parent is active and takes one of its allowed values. Empty means always active.
        memory: ``"increasing"`` declares that, all other parameters equal, a larger value
            never needs less memory (batch size, context length, max sequences, batched
            tokens); ``"decreasing"`` the opposite (tensor-parallel size: fewer bytes per
            GPU). ``None`` (the default): no such knowledge. Only numbers are ordered: ints,
            floats and categoricals whose choices are all numbers. Samplers may use it: an
            out-of-memory crash then rules out every configuration that needs at least as
            much memory (``cabo``'s dominance rule, :mod:`deploytune.samplers.memory`).
    """

    name: str
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    memory: str | None = field(default=None, kw_only=True)

    @property
    def is_structural(self) -> bool:
        """Whether changing this parameter changes the configuration's structure (categorical)."""
        return False

    def contains(self, value: Any) -> bool:
        """Return whether ``value`` is a legal value of this parameter."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw a value uniformly (log-uniformly for ``log`` parameters)."""
        raise NotImplementedError

    def distribution(self) -> BaseDistribution:
        """The matching Optuna distribution."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The dict form accepted by :meth:`Space.from_dict`."""
        raise NotImplementedError

    def _optional_keys(self) -> dict[str, Any]:
        out: dict[str, Any] = {"when": {k: list(v) for k, v in self.when.items()}} \
            if self.when else {}
        if self.memory is not None:
            out["memory"] = self.memory
        return out

    @property
    def is_ordered(self) -> bool:
        """Whether the values are numbers with a meaningful order (ints, floats, numeric
        categoricals)."""
        return True


@dataclass(frozen=True)
class Categorical(Param):
    """A categorical parameter; the order of ``choices`` carries no meaning."""

    choices: tuple[Any, ...] = ()

    @property
    def is_structural(self) -> bool:
        """Categorical parameters are the structural ones (model, backend, precision, ...)."""
        return True

    @property
    def is_ordered(self) -> bool:
        """Whether every choice is a number (booleans are not)."""
        return all_numbers(self.choices)

    def contains(self, value: Any) -> bool:
        """Return whether ``value`` is one of the choices."""
        return any(_same_value(value, c) for c in self.choices)

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw a choice uniformly."""
        return self.choices[int(rng.integers(len(self.choices)))]

    def distribution(self) -> BaseDistribution:
        """An Optuna ``CategoricalDistribution`` over the choices."""
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))

    def to_dict(self) -> dict[str, Any]:
        """The dict form accepted by :meth:`Space.from_dict`."""
        return {"type": "categorical", "choices": list(self.choices), **self._optional_keys()}


def _grid_point(value: float, low: float, step: float) -> float:
    """The point of the grid ``low + k * step`` nearest to ``value``."""
    return low + round((float(value) - low) / step) * step


@dataclass(frozen=True)
class Int(Param):
    """An integer parameter in ``[low, high]`` (both inclusive), optionally on a log scale, or
    on the grid ``low, low + step, ..., high`` (``step``, not with ``log``)."""

    low: int = 0
    high: int = 0
    log: bool = False
    step: int | None = None

    def contains(self, value: Any) -> bool:
        """Return whether ``value`` is an integer in ``[low, high]`` (on the grid)."""
        if isinstance(value, bool):
            return False
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return (isinstance(value, (int, np.integer)) and bool(self.low <= value <= self.high)
                and (self.step is None or (int(value) - self.low) % self.step == 0))

    def snap(self, value: float) -> int:
        """The legal value nearest to ``value`` (rounded, on the grid, within the bounds)."""
        v = float(value) if self.step is None else _grid_point(value, self.low, self.step)
        return int(min(self.high, max(self.low, round(v))))

    def sample(self, rng: np.random.Generator) -> int:
        """Draw uniformly; on a log scale every integer's share is its width in log space."""
        if self.step is not None:
            return self.low + self.step * int(rng.integers(0, (self.high - self.low)
                                                           // self.step + 1))
        if self.log:
            u = rng.uniform(math.log(self.low - 0.5 if self.low > 1 else self.low),
                            math.log(self.high + 0.5))
            return int(min(self.high, max(self.low, round(math.exp(u)))))
        return int(rng.integers(self.low, self.high + 1))

    def distribution(self) -> BaseDistribution:
        """An Optuna ``IntDistribution`` with the same bounds and scale."""
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)

    def to_dict(self) -> dict[str, Any]:
        """The dict form accepted by :meth:`Space.from_dict`."""
        step = {} if self.step is None else {"step": self.step}
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log, **step,
                **self._optional_keys()}


@dataclass(frozen=True)
class Float(Param):
    """A real parameter in ``[low, high]``, optionally on a log scale, or on the grid
    ``low, low + step, ..., high`` (``step``, not with ``log``)."""

    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def contains(self, value: Any) -> bool:
        """Return whether ``value`` is a finite real number in ``[low, high]`` (on the grid,
        to a relative tolerance of 1e-9 of the step)."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        if not (math.isfinite(value) and bool(self.low <= value <= self.high)):
            return False
        if self.step is None:
            return True
        k = (float(value) - self.low) / self.step
        return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))

    def snap(self, value: float) -> float:
        """The legal value nearest to ``value`` (on the grid, within the bounds)."""
        v = float(value) if self.step is None else _grid_point(value, self.low, self.step)
        return float(min(self.high, max(self.low, v)))

    def sample(self, rng: np.random.Generator) -> float:
        """Draw uniformly (log-uniformly when ``log``; uniformly over the grid with ``step``)."""
        if self.step is not None:
            n = round((self.high - self.low) / self.step)
            return self.snap(self.low + self.step * int(rng.integers(0, n + 1)))
        if self.log:
            return float(min(self.high, max(self.low, math.exp(
                rng.uniform(math.log(self.low), math.log(self.high))))))
        return float(rng.uniform(self.low, self.high))

    def distribution(self) -> BaseDistribution:
        """An Optuna ``FloatDistribution`` with the same bounds and scale."""
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        """The dict form accepted by :meth:`Space.from_dict`."""
        step = {} if self.step is None else {"step": self.step}
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log, **step,
                **self._optional_keys()}


def all_numbers(values: Sequence[Any]) -> bool:
    """Whether ``values`` is non-empty and every value is an int or float (not a bool): values
    with a natural order."""
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` (Optuna choices do the same)."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


class Space:
    """An ordered, hierarchical search space.

    Args:
        params: The parameters in declaration order; parents must come before children.
        forbidden: Known-bad combinations. Each is a mapping ``name -> allowed values``; a
            configuration is forbidden when, for every name in the mapping, the parameter is
            active and its value is among the listed ones.

    Raises:
        ValueError: On an invalid definition, naming the parameter and the problem.
    """

    def __init__(self, params: Sequence[Param],
                 forbidden: Sequence[Mapping[str, Any]] | None = ()):
        self._params: tuple[Param, ...] = tuple(params)
        self._by_name: dict[str, Param] = {}
        all_names = {p.name for p in self._params}
        for p in self._params:
            if p.name in self._by_name:
                raise ValueError(f"parameter {p.name!r}: declared twice; names must be unique")
            _check_param(p, self._by_name, all_names)
            self._by_name[p.name] = p
        if not self._params:
            raise ValueError("the search space has no parameters; declare at least one")
        self._conditional = any(p.when for p in self._params)
        if forbidden is None:
            forbidden = ()
        if not isinstance(forbidden, (list, tuple)):
            raise ValueError("forbidden: expected a list of mappings name -> [values], e.g. "
                             "[{'backend': ['compile'], 'precision': ['int8']}]")
        self._forbidden: tuple[dict[str, tuple[Any, ...]], ...] = tuple(
            self._check_forbidden(i, rule) for i, rule in enumerate(forbidden)
        )

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_dict(
        cls, spec: Mapping[str, Mapping[str, Any]],
        forbidden: Sequence[Mapping[str, Any]] | None = (),
    ) -> Space:
        """Build a space from its dict (or YAML) form; declaration order is dict order.

        Each entry maps a parameter name to ``{"type": "categorical", "choices": [...]}``,
        ``{"type": "int", "low": 1, "high": 64, "log": True}`` or ``{"type": "float", ...}``,
        with an optional ``"when": {parent: [allowed values]}``.
        """
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"search space: expected a mapping of parameter name -> definition, "
                f"got {type(spec).__name__}")
        return cls([_param_from_dict(name, d) for name, d in spec.items()], forbidden)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The dict form; ``Space.from_dict(space.to_dict())`` gives an equal space."""
        return {p.name: p.to_dict() for p in self._params}

    @property
    def forbidden(self) -> tuple[dict[str, tuple[Any, ...]], ...]:
        """The declared forbidden combinations."""
        return self._forbidden

    # ----------------------------------------------------------------------------------- access
    @property
    def params(self) -> tuple[Param, ...]:
        """The parameters in declaration order."""
        return self._params

    @property
    def names(self) -> list[str]:
        """Parameter names in declaration order."""
        return [p.name for p in self._params]

    def __getitem__(self, name: str) -> Param:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Param]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Space) and self.to_dict() == other.to_dict()
                and self._forbidden == other._forbidden)

    def __hash__(self) -> int:
        return hash(tuple(self.names))

    def __repr__(self) -> str:
        return f"Space({', '.join(self.names)})"

    @property
    def is_conditional(self) -> bool:
        """Whether any parameter has an activation condition."""
        return self._conditional

    # ------------------------------------------------------------------------------- semantics
    def is_active(self, param: Param | str, config: Mapping[str, Any]) -> bool:
        """Whether ``param`` is active given the (possibly partial) ``config``."""
        p = self._by_name[param] if isinstance(param, str) else param
        for parent, allowed in p.when.items():
            if parent not in config or not any(_same_value(config[parent], a) for a in allowed):
                return False
        return True

    def active_params(self, config: Mapping[str, Any]) -> list[Param]:
        """The parameters active in ``config``, in declaration order."""
        return [p for p in self._params if self.is_active(p, config)]

    def is_forbidden(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` matches a declared forbidden combination."""
        return any(
            all(name in config and any(_same_value(config[name], v) for v in values)
                for name, values in rule.items())
            for rule in self._forbidden
        )

    def problems(self, config: Mapping[str, Any]) -> list[str]:
        """Everything wrong with ``config``; empty when it is a valid configuration."""
        out = self._domain_problems(config)
        if not out and self.is_forbidden(config):
            out.append("the configuration matches a forbidden combination")
        return out

    def fits(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` is a configuration of this space: every name a parameter, every
        active parameter set and inside its domain, no inactive one set (forbidden
        combinations allowed). Samplers learn only from trials that fit: a trial recorded
        with a subset of the parameters, or a value outside the declared range, is skipped."""
        return not self._domain_problems(config)

    def _domain_problems(self, config: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        for name in config:
            if name not in self._by_name:
                out.append(f"{name!r} is not a parameter of the space")
        for p in self._params:
            active = self.is_active(p, config)
            if active and p.name not in config:
                out.append(f"{p.name!r} is active but missing")
            elif not active and p.name in config:
                out.append(f"{p.name!r} is set but inactive (its condition {dict(p.when)} fails)")
            elif active and not p.contains(config[p.name]):
                out.append(f"{p.name!r} = {config[p.name]!r} is outside its domain")
        return out

    def validate(self, config: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` listing every problem of ``config``."""
        issues = self.problems(config)
        if issues:
            raise ValueError("invalid configuration: " + "; ".join(issues))

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` is a valid, non-forbidden configuration."""
        return not self.problems(config)

    def key(self, config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """A hashable canonical key of ``config`` (declaration order, floats rounded)."""
        out = []
        for p in self._params:
            if p.name in config:
                v = config[p.name]
                if isinstance(p, Float):
                    v = float(f"{float(v):.10g}")
                elif isinstance(p, Int):
                    v = int(v)
                out.append((p.name, v))
        return tuple(out)

    # -------------------------------------------------------------------------------- sampling
    def complete(self, config: Mapping[str, Any], rng: np.random.Generator) -> Config:
        """Resolve the hierarchy: drop inactive values, fill active missing ones at random."""
        out: Config = {}
        for p in self._params:
            if not self.is_active(p, out):
                continue
            out[p.name] = config[p.name] if p.name in config else p.sample(rng)
        return out

    def sample(self, rng: np.random.Generator, max_tries: int = 1000) -> Config:
        """Draw a random valid configuration (rejecting forbidden combinations)."""
        config = self.complete({}, rng)
        for _ in range(max_tries):
            if not self.is_forbidden(config):
                return config
            config = self.complete({}, rng)
        raise ValueError("could not sample a configuration that is not forbidden; "
                         "the forbidden combinations may cover the whole space")

    def distributions(self) -> dict[str, BaseDistribution]:
        """Name -> Optuna distribution, for every parameter."""
        return {p.name: p.distribution() for p in self._params}

    def suggest(self, trial: optuna.trial.BaseTrial) -> Config:
        """Define-by-run: suggest the active parameters of ``trial`` in declaration order."""
        config: Config = {}
        for p in self._params:
            if not self.is_active(p, config):
                continue
            if isinstance(p, Categorical):
                config[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif isinstance(p, Int):
                config[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log,
                                                   step=p.step or 1)
            elif isinstance(p, Float):
                config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log,
                                                     step=p.step)
        return config

    def neighbor(
        self,
        config: Mapping[str, Any],
        rng: np.random.Generator,
        temperature: float,
        p_structural: float,
        allowed: Mapping[str, Iterable[Any]] | None = None,
    ) -> Config:
        """One annealing move: change exactly one active parameter, then resolve the hierarchy.

        With probability ``p_structural`` (or when no numeric parameter is active) a categorical
        parameter moves to another value, drawn from ``allowed[name]`` when given (the
        blacklist's allowed values). Otherwise a numeric parameter takes a Gaussian step of scale
        ``0.3 * temperature`` of its range, measured in log space for ``log`` parameters. Integer
        steps are at least 1 (in the parameter's own scale) so a move never stands still.
        """
        active = self.active_params(config)
        structural = [p for p in active if isinstance(p, Categorical) and len(p.choices) > 1]
        numeric = [p for p in active if isinstance(p, (Int, Float)) and p.low < p.high]
        new: Config = dict(config)
        if structural and (not numeric or rng.random() < p_structural):
            p = structural[int(rng.integers(len(structural)))]
            assert isinstance(p, Categorical)
            pool = list(allowed[p.name]) if allowed and p.name in allowed else list(p.choices)
            pool = [v for v in pool if not _same_value(v, config[p.name])]
            if pool:
                new[p.name] = pool[int(rng.integers(len(pool)))]
            return self.complete(new, rng)
        if not numeric:
            return self.complete(new, rng)
        q = numeric[int(rng.integers(len(numeric)))]
        new[q.name] = _numeric_step(q, config[q.name], temperature, rng)
        return self.complete(new, rng)

    # ------------------------------------------------------------------------------ validation
    def _check_forbidden(self, index: int, rule: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
        where = f"forbidden combination #{index}"
        if not isinstance(rule, Mapping) or not rule:
            raise ValueError(f"{where}: expected a non-empty mapping name -> [values]")
        out: dict[str, tuple[Any, ...]] = {}
        for name, values in rule.items():
            if name not in self._by_name:
                raise ValueError(f"{where}: unknown parameter {name!r}")
            vals = tuple(values) if isinstance(values, (list, tuple)) else (values,)
            bad = [v for v in vals if not self._by_name[name].contains(v)]
            if bad or not vals:
                raise ValueError(f"{where}: values {bad or vals!r} are not in the domain of "
                                 f"{name!r}")
            out[str(name)] = vals
        return out


def _check_step(p: Int | Float, where: str) -> None:
    """``step`` is positive, not on a log scale, and divides ``high - low``."""
    if not (math.isfinite(p.step or 0.0) and (p.step or 0) > 0):
        raise ValueError(f"{where}: 'step' must be a positive number (got {p.step!r})")
    if p.log:
        raise ValueError(f"{where}: 'step' and 'log' cannot be combined; remove one of them")
    assert p.step is not None
    k = (p.high - p.low) / p.step
    if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
        fixed = p.low + math.floor(k + 1e-9) * p.step
        raise ValueError(f"{where}: high - low ({p.high - p.low:g}) is not a multiple of step "
                         f"({p.step:g}); set high to {fixed:g}")


def _numeric_step(p: Int | Float, value: Any, temperature: float,
                  rng: np.random.Generator) -> int | float:
    """A Gaussian step of scale ``0.3 * T`` of the (log) range, clipped to the bounds."""
    lo, hi, v = float(p.low), float(p.high), float(value)
    if p.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, p.low))
    sigma = max(temperature, 1e-3) * (hi - lo) * 0.3
    step = float(rng.normal(0.0, sigma))
    if isinstance(p, Int):
        candidate = v + step
        out = p.snap(math.exp(candidate) if p.log else candidate)
        unit = p.step or 1
        if out == int(value):  # never stand still: one unit step in the drawn direction
            direction = unit if step > 0 or (step == 0 and rng.random() < 0.5) else -unit
            if not p.low <= out + direction <= p.high:
                direction = -direction
            out = p.snap(out + direction)
        return out
    out_f = v + step
    if out_f > hi or out_f < lo:  # reflect at the bounds so a move at a bound still moves
        out_f = v - step
    out_f = min(hi, max(lo, out_f))
    return float(min(p.high, max(p.low, math.exp(out_f)))) if p.log else p.snap(out_f)


def _param_from_dict(name: Any, d: Any) -> Param:
    if not isinstance(name, str) or not name:
        raise ValueError(f"parameter {name!r}: names must be non-empty strings")
    if not isinstance(d, Mapping):
        raise ValueError(f"parameter {name!r}: expected a mapping such as "
                         f"{{'type': 'int', 'low': 1, 'high': 8}}, got {type(d).__name__}")
    kind = d.get("type")
    if not isinstance(kind, str) or kind not in _KEYS_BY_TYPE:
        raise ValueError(f"parameter {name!r}: 'type' must be one of categorical, int, float "
                         f"(got {kind!r})")
    unknown = sorted(set(d) - _KEYS_BY_TYPE[kind], key=str)
    if unknown:
        raise ValueError(f"parameter {name!r}: unknown key(s) {unknown} for type {kind!r}; "
                         f"allowed keys are {sorted(_KEYS_BY_TYPE[kind])}")
    when = _parse_when(name, d.get("when", {}))
    memory = d.get("memory")
    if kind == "categorical":
        choices = d.get("choices")
        if not isinstance(choices, (list, tuple)):
            raise ValueError(f"parameter {name!r}: 'choices' must be a list of values")
        return Categorical(name, when, tuple(choices), memory=memory)
    for key in ("low", "high"):
        if key not in d:
            raise ValueError(f"parameter {name!r}: missing {key!r} for a {kind} parameter")
    log = d.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"parameter {name!r}: 'log' must be true or false (got {log!r})")
    low, high, step = d["low"], d["high"], d.get("step")
    if kind == "int":
        for key, v in (("low", low), ("high", high), ("step", step)):
            if key == "step" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"parameter {name!r}: {key!r} must be an integer (got {v!r})")
        return Int(name, when, int(low), int(high), log, step, memory=memory)
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))):
        raise ValueError(f"parameter {name!r}: 'step' must be a number (got {step!r})")
    bounds = []
    for key, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"parameter {name!r}: {key!r} must be a number (got {v!r})")
        try:
            bounds.append(float(v))
        except OverflowError:
            raise ValueError(f"parameter {name!r}: {key!r} = {v} is too large for a float; "
                             f"use a smaller bound") from None
    return Float(name, when, bounds[0], bounds[1], log, None if step is None else float(step),
                 memory=memory)


def _parse_when(name: str, when: Any) -> dict[str, tuple[Any, ...]]:
    if not isinstance(when, Mapping):
        raise ValueError(f"parameter {name!r}: 'when' must map parent names to allowed values, "
                         f"e.g. {{'backend': ['eager']}}")
    out: dict[str, tuple[Any, ...]] = {}
    for parent, allowed in when.items():
        values = tuple(allowed) if isinstance(allowed, (list, tuple)) else (allowed,)
        if not values:
            raise ValueError(f"parameter {name!r}: 'when' gives no allowed values for parent "
                             f"{parent!r}")
        out[str(parent)] = values
    return out


def _check_param(p: Param, declared: Mapping[str, Param], all_names: set[str]) -> None:
    where = f"parameter {p.name!r}"
    if p.memory is not None:
        if p.memory not in MEMORY_DIRECTIONS:
            raise ValueError(f"{where}: 'memory' must be 'increasing' (a larger value needs "
                             f"more memory) or 'decreasing' (got {p.memory!r}); leave it out "
                             f"when neither holds")
        if not p.is_ordered:
            raise ValueError(f"{where}: 'memory: {p.memory}' needs ordered values (int, float, "
                             f"or categorical choices that are all numbers); remove it or "
                             f"list numbers")
    if isinstance(p, Categorical):
        if not p.choices:
            raise ValueError(f"{where}: 'choices' is empty; give at least one value")
        bad = [c for c in p.choices if not isinstance(c, _CHOICE_TYPES)
               or (isinstance(c, float) and not math.isfinite(c))]
        if bad:
            raise ValueError(f"{where}: choices must be str, int, finite float, bool or None "
                             f"(got {bad[0]!r})")
        seen: set[tuple[bool, Any]] = set()
        for c in p.choices:
            key = (isinstance(c, bool), c)  # the equality of _same_value, hashed
            if key in seen:
                raise ValueError(f"{where}: choice {c!r} is listed twice")
            seen.add(key)
    elif isinstance(p, (Int, Float)):
        if isinstance(p, Float) and not (abs(p.low) < 1e300 and abs(p.high) < 1e300):
            raise ValueError(f"{where}: 'low' and 'high' must be finite numbers below 1e300")
        if p.low > p.high:
            raise ValueError(f"{where}: low ({p.low}) > high ({p.high}); swap them")
        if p.log and p.low <= 0:
            raise ValueError(f"{where}: log scale needs low > 0 (got low={p.low})")
        if p.step is not None:
            _check_step(p, where)
    for parent, allowed in p.when.items():
        if parent == p.name:
            raise ValueError(f"{where}: 'when' names the parameter itself")
        if parent not in declared:
            if parent in all_names:
                raise ValueError(f"{where}: its parent {parent!r} is declared after it; "
                                 f"declare {parent!r} before {p.name!r}")
            raise ValueError(f"{where}: 'when' names unknown parent {parent!r}; "
                             f"declare {parent!r} as a parameter or fix the name")
        bad = [v for v in allowed if not declared[parent].contains(v)]
        if bad:
            raise ValueError(f"{where}: 'when' allows {bad!r} for {parent!r}, which is outside "
                             f"{parent!r}'s domain")
