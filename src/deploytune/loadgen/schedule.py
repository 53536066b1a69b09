"""Which prompt each request sends and, in an open loop, when it arrives (both seeded)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["poisson_arrivals", "poisson_offsets", "prompt_order"]

_PROMPT_STREAM = 0
_ARRIVAL_STREAM = 1


def prompt_order(n_prompts: int, seed: int) -> list[int]:
    """A seeded permutation of ``range(n_prompts)``: request ``i`` sends prompt
    ``order[i % n_prompts]``."""
    rng = np.random.default_rng([seed, _PROMPT_STREAM])
    return [int(i) for i in rng.permutation(n_prompts)]


def poisson_arrivals(rate: float, seed: int) -> Iterator[float]:
    """Arrival times in seconds of a Poisson process of ``rate`` per second, the first at 0
    (so a run always issues at least one request); the same ``seed`` gives the same times."""
    if rate <= 0:
        raise ValueError(f"rate: expected > 0 requests per second, got {rate!r}")
    rng = np.random.default_rng([seed, _ARRIVAL_STREAM])
    t = 0.0
    while True:
        yield t
        t += float(rng.exponential(1.0 / rate))


def poisson_offsets(rate: float, n: int, seed: int) -> list[float]:
    """The first ``n`` times of :func:`poisson_arrivals`."""
    gen = poisson_arrivals(rate, seed)
    return [next(gen) for _ in range(n)]
