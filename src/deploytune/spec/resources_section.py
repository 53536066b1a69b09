"""The spec's ``resources`` section: this machine's devices and how many a trial leases
(:mod:`deploytune.parallel.leases`)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from deploytune.parallel.leases import Resources
from deploytune.space import Space
from deploytune.spec.errors import Invalid

__all__ = ["parse_resources"]

_EXAMPLE = "resources: {kind: gpu, devices: 4, per_trial: '{tensor_parallel_size}'}"


def parse_resources(raw: Any, space: Space) -> Resources | None:
    """The ``resources`` section, or ``None`` when absent; a ``per_trial`` template may only
    name parameters of ``space``."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Invalid("resources", f"must be a mapping, e.g. {_EXAMPLE}")
    try:
        resources = Resources.from_dict(raw)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise Invalid(f"resources.{field}", message or str(exc)) from None
    if isinstance(resources.per_trial, str):
        try:
            names = [n for _, n, _, _ in string.Formatter().parse(resources.per_trial) if n]
        except ValueError as exc:
            raise Invalid("resources.per_trial", f"{resources.per_trial!r}: {exc}") from None
        for name in names:
            if name not in space:
                raise Invalid("resources.per_trial", f"{{{name}}} is not a parameter of the "
                              f"space; name one, e.g. {_EXAMPLE}")
    return resources
