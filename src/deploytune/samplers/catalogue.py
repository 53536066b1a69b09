"""What each registered sampler is for, in one line, and which ones are experimental.

``deploytune samplers`` prints this catalogue: by default the samplers a user would choose (the
default ``cabo``, the peers users know, our stable baselines); with ``--all`` the experimental
ones too (``cabo``'s ablations and research variants kept for ``deploytune bench``). Every
registered name stays usable everywhere (``bench --samplers``, specs, ``optimize``) whether
listed by default or not.

Each line is the description its module gave :func:`deploytune.samplers.register`; a name
registered without one is listed with ``(no description)``, and
``tests/samplers/test_registry.py`` fails until it has one.
"""

from __future__ import annotations

from deploytune.samplers import DEFAULT_SAMPLER, available, registered

__all__ = ["NO_DESCRIPTION", "describe", "is_experimental", "listed"]

NO_DESCRIPTION = "(no description)"
"""The description of a registered name that has no description."""

_DEFAULT_LINE = "the sampler used when none is named"


def describe(name: str) -> str:
    """One line on what the registered sampler ``name`` is for (``(no description)`` when it
    was registered without one, or is not registered)."""
    if name == "default":
        return f"= {DEFAULT_SAMPLER}: {_DEFAULT_LINE}"
    entry = registered().get(name)
    return entry.description if entry is not None and entry.description else NO_DESCRIPTION


def is_experimental(name: str) -> bool:
    """Whether ``name`` is an ablation or research variant (unknown names are not)."""
    entry = registered().get(name)
    return entry is not None and entry.experimental


def listed(include_experimental: bool = False) -> list[str]:
    """The sampler names in the order ``deploytune samplers`` lists them: the default, then
    ``default``, then the others in their order of registration (experimental ones last and
    only with ``include_experimental``); names :func:`available` knows but that were not
    registered (none, unless a test adds one) at the end."""
    entries = registered()
    order = [DEFAULT_SAMPLER, "default", *[n for n in entries if n != DEFAULT_SAMPLER]]
    rank = {n: i for i, n in enumerate(order)}

    def experimental(name: str) -> bool:
        return name in entries and entries[name].experimental

    names = sorted(available(), key=lambda n: (experimental(n), rank.get(n, len(rank)), n))
    return [n for n in names if include_experimental or not experimental(n)]
