"""The parameters of a search space: :class:`Categorical`, :class:`Int` and :class:`Float`.

A parameter knows its domain (:meth:`~Param.contains`, :meth:`~Param.sample`), its Optuna
distribution, its dict form (:meth:`~Param.to_dict`, :func:`param_from_dict`) and the rules of
its own definition (:meth:`~Param.check`, raising
:class:`~deploytune.setting_error.SettingError`). How parameters relate to each other
(conditions, forbidden combinations) is :class:`~deploytune.space.Space`'s part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from deploytune.setting_error import SettingError, format_path, kind_of, show, suggest

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "MAX_FLOAT",
    "MAX_INT_BOUND",
    "MEMORY_DIRECTIONS",
    "PARAM_TYPES",
    "Categorical",
    "Float",
    "Int",
    "Param",
    "all_numbers",
    "dict_keys",
    "param_error",
    "param_from_dict",
    "same_value",
]

MEMORY_DIRECTIONS = ("increasing", "decreasing")
"""Values of a parameter's ``memory`` declaration (see :attr:`Param.memory`)."""
MAX_INT_BOUND = 2**62
"""The largest magnitude of an integer parameter's bounds in the dict form."""
MAX_FLOAT = 1e300
"""Real bounds and all steps must be smaller in magnitude than this."""
_CHOICE_TYPES = (str, int, float, bool, type(None))


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

    def check(self) -> None:
        """Raise :class:`~deploytune.setting_error.SettingError` if the definition breaks a
        rule of its own (bounds, choices, step, memory); the conditions (``when``) are checked
        by the :class:`~deploytune.space.Space` against the parameters declared before."""
        if self.memory is None:
            return
        if self.memory not in MEMORY_DIRECTIONS:
            raise param_error(self.name, ("memory",), _memory_message(self.memory))
        if not self.is_ordered:
            raise param_error(self.name, ("memory",), "needs ordered values: every choice must "
                              "be a number (e.g. choices: [1024, 4096, 16384]); remove memory "
                              "or use type: int")

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
        return any(same_value(value, c) for c in self.choices)

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

    def check(self) -> None:
        """At least one choice; each a str, int, finite float, bool or None, listed once."""
        if not self.choices:
            raise param_error(self.name, ("choices",), "expected a non-empty list of values, "
                              "got an empty list; write e.g. choices: [eager, onnx]")
        seen: set[tuple[bool, Any]] = set()
        for i, c in enumerate(self.choices):
            if not isinstance(c, _CHOICE_TYPES) or (isinstance(c, float)
                                                    and not math.isfinite(c)):
                raise param_error(self.name, ("choices", i), f"choices must be str, int, finite "
                                  f"float, bool or None, got {kind_of(c)}; quote it to make "
                                  f"it a string")
            key = (isinstance(c, bool), c)  # the equality of same_value, hashed
            if key in seen:
                raise param_error(self.name, ("choices", i), f"choice {show(c)} is listed "
                                  f"twice; remove the duplicate")
            seen.add(key)
        super().check()


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

    def check(self) -> None:
        """``low <= high``, ``low > 0`` on a log scale, and a step that fits."""
        _check_range(self)
        super().check()


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

    def check(self) -> None:
        """Finite bounds below 1e300, ``low <= high``, ``low > 0`` on a log scale, and a step
        that fits."""
        for key in ("low", "high"):
            value = getattr(self, key)
            if not abs(value) < MAX_FLOAT:
                raise param_error(self.name, (key,), _not_finite_message(value))
        _check_range(self)
        super().check()


PARAM_TYPES: dict[str, type[Categorical] | type[Int] | type[Float]] = {
    "categorical": Categorical, "int": Int, "float": Float}
"""The ``type`` of the dict form -> the parameter class."""


def all_numbers(values: Sequence[Any]) -> bool:
    """Whether ``values`` is non-empty and every value is an int or float (not a bool): values
    with a natural order."""
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` (Optuna choices do the same)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def param_error(name: Any, key_path: Sequence[Any], message: str) -> SettingError:
    """The :class:`~deploytune.setting_error.SettingError` of the parameter ``name`` at
    ``key_path`` inside its definition: its path is ``("space", name, *key_path)``, and
    ``str()`` names it ``parameter 'name', key``."""
    tail = format_path(key_path)
    subject = f"parameter {show(name)}" + (f", {tail}" if tail else "")
    return SettingError(("space", name, *key_path), message, subject)


# ------------------------------------------------------------------------------ the rules
def _check_range(p: Int | Float) -> None:
    """``low <= high``, ``low > 0`` on a log scale, and the step's rules."""
    if p.low > p.high:
        raise param_error(p.name, ("low",), f"low ({p.low}) > high ({p.high}); swap them")
    if p.log and p.low <= 0:
        raise param_error(p.name, ("low",), f"log scale needs low > 0 (got {p.low}); raise low "
                          f"or remove log: true")
    if p.step is not None:
        _check_step(p, p.step)


def _check_step(p: Int | Float, step: float) -> None:
    """``step`` is positive, not on a log scale, and divides ``high - low``."""
    if not 0 < step < MAX_FLOAT:
        raise param_error(p.name, ("step",), _step_message(isinstance(p, Int), step))
    if p.log:
        raise param_error(p.name, ("step",), "cannot be combined with log: true; remove one "
                          "of them")
    k = (p.high - p.low) / step
    if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
        fixed = p.low + math.floor(k + 1e-9) * step
        raise param_error(p.name, ("high",), f"high - low ({p.high - p.low:g}) is not a "
                          f"multiple of step ({step:g}); set high to {fixed:g}")


def _step_message(is_int: bool, step: Any) -> str:
    """What is wrong with a ``step`` that is not a positive number (a whole one for ints)."""
    if is_int:
        return f"expected a whole number >= 1, got {show(step)}; write e.g. step: 8"
    return f"expected a positive number, got {show(step)}; write e.g. step: 0.05"


def _not_finite_message(value: Any) -> str:
    """What is wrong with a real bound that is not finite (or too large)."""
    return f"must be a finite number below 1e300 (got {show(value)})"


def _memory_message(memory: Any) -> str:
    """What is wrong with a ``memory`` declaration that is neither direction."""
    return (f"must be increasing (a larger value needs more memory) or decreasing, got "
            f"{show(memory)}; remove it when neither holds")


# ---------------------------------------------------------------------------- dict form
def dict_keys(cls: type[Param]) -> tuple[str, ...]:
    """The keys of ``cls``'s dict form, read from its fields: ``type``, its own fields, then
    the common ones (``when``, ``memory``)."""
    common = [f.name for f in fields(Param) if f.name != "name"]
    own = [f.name for f in fields(cls) if f.name not in common and f.name != "name"]
    return ("type", *own, *common)


def param_from_dict(name: Any, d: Any) -> Param:
    """The parameter ``name`` of its dict form, e.g. ``{"type": "int", "low": 1, "high": 8}``.

    The keys and the types of their values are checked here; :meth:`Param.check` checks the
    values.

    Raises:
        SettingError: at ``("space", name, key, ...)``.
    """
    if not isinstance(name, str) or not name.strip():
        raise param_error(name, (), f"parameter names must be non-empty strings, got "
                          f"{kind_of(name)}; quote the name")
    if not isinstance(d, Mapping):
        raise param_error(name, (), f"expected a mapping, got {kind_of(d)}; write e.g. "
                          f"{name}: {{type: int, low: 1, high: 8}}")
    kind = d.get("type")
    if kind is None:
        raise param_error(name, ("type",), "missing; add type: categorical, int or float")
    if not isinstance(kind, str) or kind not in PARAM_TYPES:
        raise param_error(name, ("type",), f"must be categorical, int or float, got "
                          f"{kind_of(kind)}{suggest(kind, list(PARAM_TYPES))}")
    cls = PARAM_TYPES[kind]
    _check_keys(name, d, dict_keys(cls))
    if cls is Categorical:
        choices = d.get("choices")
        if not isinstance(choices, (list, tuple)):
            raise param_error(name, ("choices",), f"expected a non-empty list of values, got "
                              f"{kind_of(choices)}; write e.g. choices: [eager, onnx]")
        own: dict[str, Any] = {"choices": tuple(choices)}
    else:
        own = _number_from_dict(cls is Int, name, d)
    if "memory" in d and d["memory"] is None:
        raise param_error(name, ("memory",), _memory_message(None))
    return cls(name, _when_from_dict(name, d), memory=d.get("memory"), **own)


def _check_keys(name: str, d: Mapping[Any, Any], allowed: Sequence[str]) -> None:
    """Reject a key that is not one of ``allowed``, suggesting the closest."""
    for key in d:
        if isinstance(key, str) and key in allowed:
            continue
        if not isinstance(key, str):
            raise param_error(name, (key,), f"keys must be strings, got {kind_of(key)}; valid "
                              f"keys here are {', '.join(allowed)}")
        raise param_error(name, (key,), f"unknown key {key!r}{suggest(key, allowed)}; valid "
                          f"keys here are {', '.join(allowed)}")


def _number_from_dict(is_int: bool, name: str, d: Mapping[Any, Any]) -> dict[str, Any]:
    """``low``, ``high``, ``log`` and ``step`` of an int or float parameter's dict form."""
    kind = "int" if is_int else "float"
    out: dict[str, Any] = {}
    for key in ("low", "high"):
        if d.get(key) is None:
            raise param_error(name, (key,), f"missing; an {kind} parameter needs low and high, "
                              f"e.g. {{type: {kind}, low: 1, high: 8}}")
        out[key] = _int_bound(name, key, d[key]) if is_int else _float_bound(name, key, d[key])
    out["log"] = d.get("log", False)
    if not isinstance(out["log"], bool):
        raise param_error(name, ("log",), f"expected true or false, got {kind_of(out['log'])}")
    step = out["step"] = d.get("step")
    if step is None:
        return out
    if isinstance(step, bool) or not isinstance(step, int if is_int else (int, float)):
        raise param_error(name, ("step",), _step_message(is_int, step))
    if not is_int:
        try:
            out["step"] = float(step)
        except OverflowError:
            raise param_error(name, ("step",), _step_message(is_int, step)) from None
    return out


def _int_bound(name: str, key: str, v: Any) -> int:
    """``low`` / ``high`` of an int parameter: a whole number of magnitude at most 2**62."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise param_error(name, (key,), f"expected a whole number, got {kind_of(v)}; write e.g. "
                          f"{key}: 8 (use type: float for fractional bounds)")
    if abs(v) > MAX_INT_BOUND:
        raise param_error(name, (key,), f"is too large (|{key}| must be at most 2**62); use a "
                          f"smaller bound")
    return int(v)


def _float_bound(name: str, key: str, v: Any) -> float:
    """``low`` / ``high`` of a float parameter: a number (:meth:`Float.check` checks that it
    is finite)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise param_error(name, (key,), f"expected a number, got {kind_of(v)}; write e.g. "
                          f"{key}: 0.5")
    try:
        return float(v)
    except OverflowError:
        raise param_error(name, (key,), _not_finite_message(v)) from None


def _when_from_dict(name: str, d: Mapping[Any, Any]) -> dict[Any, tuple[Any, ...]]:
    """The ``when`` of the dict form: parent -> allowed values (a single value becomes a
    one-tuple). Whether the parents exist is the space's check."""
    if "when" not in d:
        return {}
    when = d["when"]
    if when is None:
        raise param_error(name, ("when",), "is empty; remove it or write e.g. when: "
                          "{backend: [eager]}")
    if not isinstance(when, Mapping):
        raise param_error(name, ("when",), f"expected a mapping, got {kind_of(when)}; write "
                          f"e.g. when: {{backend: [eager]}}")
    out: dict[Any, tuple[Any, ...]] = {}
    for parent, allowed in when.items():
        values = tuple(allowed) if isinstance(allowed, (list, tuple)) else (allowed,)
        if allowed is None or not values:
            raise param_error(name, ("when", parent), f"gives no allowed values for parent "
                              f"{show(parent)}; write e.g. {parent}: [value]")
        out[parent] = values
    return out
