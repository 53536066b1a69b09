"""The forest-based samplers' moves (``smac``, ``cabo``), now in :mod:`deploytune.moves` with the
annealing move; kept so that ``from deploytune.samplers._moves import ...`` goes on working."""

from __future__ import annotations

from deploytune.moves import draw_unseen, one_exchange_neighbours

__all__ = ["draw_unseen", "one_exchange_neighbours"]
