"""The ``space`` and ``forbidden`` sections: the search space, checked by the space itself.

:meth:`Space.from_dict <deploytune.space.Space.from_dict>` reads the very dict form of these
two sections and names each mistake by its path in them (``("space", "threads", "low")``,
``("forbidden", 0)``); this module only turns that into the spec's error.
"""

from __future__ import annotations

from typing import Any

from deploytune.setting_error import SettingError
from deploytune.space import Space
from deploytune.spec.errors import invalid_at


def parse_space(raw: Any, forbidden: Any) -> Space:
    """The search space of ``space``, with the ``forbidden`` combinations."""
    try:
        return Space.from_dict(raw, forbidden)
    except SettingError as exc:
        raise invalid_at("", exc) from None

