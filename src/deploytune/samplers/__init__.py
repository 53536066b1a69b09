"""deploytune's samplers: all Optuna ``BaseSampler``s, registered by name.

``deploytune samplers`` lists them, one line each (:mod:`deploytune.samplers.catalogue`):
the default ``cabo`` (crash- and cost-aware constrained BO), Optuna's samplers as their users
run them (``tpe``, ``ctpe``, ``gp``), the real SMAC3 package (``smac3``), our baselines
(``random``, ``smac``, ``tba``, ``tba-tpe``), and with ``--all`` the experimental ablations.

**Adding a sampler** takes one new module and one line here: the module defines
``register_all(register)``, which calls :func:`register` with each name, its factory
``factory(space=..., seed=..., budget=..., **options)`` and its one-line description; the line
adds the module's name to :data:`BUILTIN_MODULES` (CONTRIBUTING.md shows an example). A name
registered without a description fails ``tests/samplers/test_registry.py``.

A name may carry options in brackets, ``name[key=value;key=value]`` (values read as YAML
scalars): ``cabo[coverage_until=0.5]`` is ``make_sampler("cabo", coverage_until=0.5)``. This
is how ``deploytune bench --samplers`` compares settings of one sampler without registering
each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optuna.samplers import BaseSampler

from deploytune.samplers._base import SpaceSampler, trial_rng
from deploytune.samplers.random import UniformSampler
from deploytune.space import Space

__all__ = [
    "BUILTIN_MODULES",
    "Registered",
    "SpaceSampler",
    "UniformSampler",
    "available",
    "is_known",
    "make_sampler",
    "parse_name",
    "register",
    "registered",
    "split_names",
    "trial_rng",
]

DEFAULT_SAMPLER = "cabo"

BUILTIN_MODULES = ("cabo", "baselines", "smac_rf", "smac3", "annealing", "hybrid")
"""The modules of :mod:`deploytune.samplers` whose ``register_all(register)`` registers their
samplers, in the order ``deploytune samplers`` lists them (after ``random``)."""

_Factory = Callable[..., BaseSampler]


@dataclass(frozen=True)
class Registered:
    """One registered sampler name."""

    factory: _Factory
    """``factory(space=..., seed=..., budget=..., **options)`` builds the sampler."""
    description: str
    """What it is for, one line of plain text (the extra it needs, if any)."""
    experimental: bool = False
    """An ablation or research variant: listed only by ``deploytune samplers --all``."""


_REGISTRY: dict[str, Registered] = {}


def register(name: str, factory: _Factory, description: str = "",
             experimental: bool = False) -> None:
    """Register ``factory(space=..., seed=..., budget=..., **options)`` under ``name``, with
    the one line ``deploytune samplers`` shows for it."""
    _REGISTRY[name] = Registered(factory, description, experimental)


def available() -> list[str]:
    """Registered sampler names (``default`` included)."""
    _load_builtin()
    return sorted([*_REGISTRY, "default"])


def registered() -> dict[str, Registered]:
    """Every registered name and its entry, in the order of registration."""
    _load_builtin()
    return dict(_REGISTRY)


def parse_name(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``name[key=value;...]`` into the registered name and its options.

    Raises:
        ValueError: for a malformed option list, naming the bad part and the expected form.
    """
    text = text.strip()
    if not text.endswith("]") or "[" not in text:
        if "[" in text or "]" in text:
            raise ValueError(f"sampler: {text!r} is malformed; write name[key=value;key=value]")
        return text, {}
    import yaml

    name, _, body = text[:-1].partition("[")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in body.split(";"))):
        key, eq, raw = part.partition("=")
        if not eq or not key.strip() or not raw.strip():
            raise ValueError(f"sampler {name.strip()!r}: option {part!r} is not key=value; "
                             "write name[key=value;key=value]")
        try:
            options[key.strip()] = yaml.safe_load(raw.strip())
        except yaml.YAMLError as exc:
            raise ValueError(f"sampler {name.strip()!r}: option {key.strip()!r} has an "
                             f"unreadable value {raw.strip()!r} ({exc})") from None
    return name.strip(), options


def split_names(text: str) -> list[str]:
    """Comma-separated sampler names, first occurrence kept; commas inside ``name[...]`` do not
    split (``"cabo,cabo[a=1;b=2]"`` is two names)."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    return list(dict.fromkeys(t.strip() for t in out if t.strip()))


def is_known(name: str) -> bool:
    """Whether ``name`` (options in brackets allowed) names a registered sampler."""
    try:
        base, _ = parse_name(name)
    except ValueError:
        return False
    return base in available()


def make_sampler(
    name: str | None = "default",
    *,
    space: Space,
    seed: int | None = None,
    budget: int | None = None,
    **options: Any,
) -> BaseSampler:
    """Build the sampler registered as ``name`` for ``space``; options given in the name
    (``cabo[coverage_until=0.5]``) are merged under the keyword ``options``.

    Raises:
        ValueError: for an unknown name (listing the known ones) or malformed options.
    """
    _load_builtin()
    base, named_options = parse_name(name) if name is not None else ("default", {})
    key = DEFAULT_SAMPLER if base == "default" else base
    if key not in _REGISTRY:
        raise ValueError(f"sampler: unknown name {name!r}; choose one of "
                         f"{', '.join(available())}")
    return _REGISTRY[key].factory(space=space, seed=seed, budget=budget,
                                  **{**named_options, **options})


def _load_builtin() -> None:
    if _REGISTRY:
        return
    import importlib

    register("random", lambda space, seed=None, budget=None, **kw: UniformSampler(space, seed),
             "uniform random search over the space; the reference to beat")
    for module in BUILTIN_MODULES:  # a peer's package is imported only when its sampler is built
        importlib.import_module(f"deploytune.samplers.{module}").register_all(register)
