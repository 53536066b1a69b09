"""deploytune's samplers: all Optuna ``BaseSampler``s, registered by name.

=============  ==========================================================================
``random``     uniform random search (:class:`UniformSampler`)
``tpe``        Optuna's TPE with defaults; crashes are FAIL and ignored, constraints unseen
``ctpe``       Optuna's TPE told about constraints; crashes become graded infeasible trials
``gp``         Optuna's GP sampler with constraints (needs the ``gp`` extra: PyTorch)
``tba``        Thermal Budget Annealing: feasible-first, crash-aware simulated annealing
``tba-tpe``    TBA, then a handoff of the whole history to TPE (:class:`TBATPESampler`)
``tba-tpe-paper``  ``tba-tpe`` with the original research code's settings
``smac``       SMAC-style BO: random-forest surrogate, log EI, crashes get the worst cost
``smac3``      the real SMAC3 package's HPO facade as a peer (needs the ``peers`` extra)
``tba-tpe-gate``   experimental: ``tba-tpe`` whose proposals pass a crash-model gate (0.5)
``tba-tpe-gate2``  experimental: the gate at 0.7, in the TPE phase only
``cabo``       crash- and cost-aware constrained BO (:mod:`deploytune.samplers.cabo`)
``cabo-no-*``  ablations of ``cabo``, one component off each (docs/benchmarks.md)
``default``    the best sampler we have (currently ``cabo``; docs/algorithm.md)
=============  ==========================================================================

``deploytune samplers`` prints each with one line from :mod:`deploytune.samplers.catalogue`.

A name may carry options in brackets, ``name[key=value;key=value]`` (values read as YAML
scalars): ``cabo[coverage_until=0.5]`` is ``make_sampler("cabo", coverage_until=0.5)``. This
is how ``deploytune bench --samplers`` compares settings of one sampler without registering
each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.samplers import BaseSampler

from deploytune.samplers._base import SpaceSampler, trial_rng
from deploytune.samplers.random import UniformSampler
from deploytune.space import Space

__all__ = [
    "SpaceSampler",
    "UniformSampler",
    "available",
    "is_known",
    "make_sampler",
    "parse_name",
    "register",
    "split_names",
    "trial_rng",
]

DEFAULT_SAMPLER = "cabo"

_Factory = Callable[..., BaseSampler]
_REGISTRY: dict[str, _Factory] = {}


def register(name: str, factory: _Factory) -> None:
    """Register ``factory(space=..., seed=..., budget=..., **options)`` under ``name``."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Registered sampler names (``default`` included)."""
    _load_builtin()
    return sorted([*_REGISTRY, "default"])


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
    return _REGISTRY[key](space=space, seed=seed, budget=budget, **{**named_options, **options})


def _load_builtin() -> None:
    if _REGISTRY:
        return
    register("random", lambda space, seed=None, budget=None, **kw: UniformSampler(space, seed))
    try:
        from deploytune.samplers import baselines
    except ImportError:  # pragma: no cover - during bootstrap
        return
    baselines.register_all(register)
    from deploytune.samplers import annealing, cabo, hybrid, smac_rf

    annealing.register_all(register)
    cabo.register_all(register)
    hybrid.register_all(register)
    smac_rf.register_all(register)
    from deploytune.samplers import smac3  # needs the peers extra only when built

    smac3.register_all(register)
