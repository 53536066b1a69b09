"""Hierarchical, mixed-variable search spaces.

A :class:`Space` is an ordered collection of parameters (:class:`Categorical`, :class:`Int`,
:class:`Float`, defined in :mod:`deploytune.parameters`). A parameter may be *conditional*: it
is active only when its parents take given values (``when={"backend": ["eager",
"onnxruntime"]}``). Parents are declared before their children, so walking the parameters in
declaration order always resolves a configuration. Known-bad combinations can be declared as
*forbidden* and are never sampled.

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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deploytune.parameters import (
    MEMORY_DIRECTIONS,
    Categorical,
    Float,
    Int,
    Param,
    all_numbers,
    param_error,
    param_from_dict,
    same_value,
)
from deploytune.setting_error import SettingError, kind_of, show, suggest

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

_SPACE_EXAMPLE = "space: {batch_size: {type: int, low: 1, high: 64}}"


class Space:
    """An ordered, hierarchical search space.

    Args:
        params: The parameters in declaration order; parents must come before children.
        forbidden: Known-bad combinations. Each is a mapping ``name -> allowed values``; a
            configuration is forbidden when, for every name in the mapping, the parameter is
            active and its value is among the listed ones.

    Raises:
        SettingError: On an invalid definition (a ``ValueError``), naming the parameter or the
            forbidden combination, the problem and its fix.
    """

    def __init__(self, params: Sequence[Param],
                 forbidden: Sequence[Mapping[str, Any]] | None = ()):
        self._params: tuple[Param, ...] = tuple(params)
        self._by_name: dict[str, Param] = {}
        all_names = {p.name for p in self._params}
        for p in self._params:
            if p.name in self._by_name:
                raise param_error(p.name, (), "declared twice; names must be unique")
            p.check()
            _check_conditions(p, self._by_name, all_names)
            self._by_name[p.name] = p
        if not self._params:
            raise SettingError(("space",), f"has no parameters; declare at least one, e.g. "
                               f"{_SPACE_EXAMPLE}")
        self._conditional = any(p.when for p in self._params)
        self._forbidden: tuple[dict[str, tuple[Any, ...]], ...] = _forbidden_rules(
            forbidden, self._by_name)

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

        Raises:
            SettingError: naming where the mistake is, as a spec file's path
                (``("space", name, key)``, ``("forbidden", index)``).
        """
        if not isinstance(spec, Mapping):
            raise SettingError(("space",), f"expected a mapping of parameter names to "
                               f"definitions, got {kind_of(spec)}; write e.g. {_SPACE_EXAMPLE}")
        return cls([param_from_dict(name, d) for name, d in spec.items()], forbidden)

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
            if parent not in config or not any(same_value(config[parent], a) for a in allowed):
                return False
        return True

    def active_params(self, config: Mapping[str, Any]) -> list[Param]:
        """The parameters active in ``config``, in declaration order."""
        return [p for p in self._params if self.is_active(p, config)]

    def is_forbidden(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` matches a declared forbidden combination."""
        return any(
            all(name in config and any(same_value(config[name], v) for v in values)
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
        """One annealing move: :func:`deploytune.moves.neighbor` in this space."""
        from deploytune.moves import neighbor

        return neighbor(self, config, rng, temperature, p_structural, allowed)


def _check_conditions(p: Param, declared: Mapping[str, Param], all_names: set[str]) -> None:
    """Each parent of ``p`` is declared before it and allows values of its own domain."""
    for parent, allowed in p.when.items():
        at = ("when", parent)
        if parent == p.name:
            raise param_error(p.name, at, "a parameter cannot depend on itself; remove this "
                              "entry")
        if parent not in declared:
            if parent in all_names:
                raise param_error(p.name, at, f"the parent {parent!r} is declared after it; "
                                  f"move {parent!r} above {p.name!r} in space")
            raise param_error(p.name, at, f"unknown parent {show(parent)}"
                              f"{suggest(parent, list(declared))}; 'when' must name a "
                              f"parameter declared above {p.name!r}")
        bad = [v for v in allowed if not declared[parent].contains(v)]
        if bad:
            raise param_error(p.name, ("when",), f"'when' allows {bad!r} for {parent!r}, which "
                              f"is outside {parent!r}'s domain")


def _forbidden_rules(forbidden: Any, by_name: Mapping[str, Param]
                     ) -> tuple[dict[str, tuple[Any, ...]], ...]:
    """The forbidden combinations, each checked against the parameters ``by_name``."""
    if forbidden is None:
        return ()
    if not isinstance(forbidden, (list, tuple)):
        raise SettingError(("forbidden",), f"expected a list of combinations, got "
                           f"{kind_of(forbidden)}; write e.g. forbidden: [{{backend: [onnx], "
                           f"threads: [8]}}]")
    return tuple(_forbidden_rule(i, rule, by_name) for i, rule in enumerate(forbidden))


def _forbidden_rule(index: int, rule: Any, by_name: Mapping[str, Param]
                    ) -> dict[str, tuple[Any, ...]]:
    """The forbidden combination ``rule`` (#``index``): parameter -> values of its domain."""
    def error(key_path: tuple[Any, ...], message: str) -> SettingError:
        return SettingError(("forbidden", index, *key_path), message,
                            f"forbidden combination #{index}")

    if not isinstance(rule, Mapping) or not rule:
        raise error((), f"expected a non-empty mapping parameter -> [values], got "
                    f"{kind_of(rule)}; write e.g. {{backend: [onnx], threads: [8]}}")
    out: dict[str, tuple[Any, ...]] = {}
    for name, values in rule.items():
        if name not in by_name:
            raise error((name,), f"unknown parameter {show(name)}{suggest(name, list(by_name))}"
                        f"; name a parameter of space")
        vals = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        if values is None or not vals:
            raise error((name,), f"gives no values; write e.g. {name}: [value]")
        bad = [v for v in vals if not by_name[name].contains(v)]
        if bad:
            raise error((), f"values {bad!r} are not in the domain of {name!r}")
        out[str(name)] = vals
    return out
