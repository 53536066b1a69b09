"""Best-improvement local search from several starts in step: the acquisition maximiser that
``cabo`` (:mod:`deploytune.samplers.cabo`) and ``smac`` (:mod:`deploytune.samplers.smac_rf`)
run after scoring their random candidates.

Each step draws the neighbourhood of every start that moved in the previous step (all starts
at the first), scores all those neighbours in one call, and moves each start to its best
neighbour when the acceptance rule says that neighbour improves on it (the first of equally
good neighbours wins). The search stops after ``steps`` steps, or as soon as no start has a
neighbour left or no start moved. What differs between the samplers is a parameter: the
score, the neighbourhood, the step limit, which neighbours are admitted and the acceptance
rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deploytune.space import Config

__all__ = ["Neighbourhood", "Scorer", "higher", "local_search"]

Neighbourhood = Callable[[Config, np.random.Generator], list[Config]]
"""The moves from a configuration (may draw from the generator)."""

Scorer = Callable[[list[Config]], np.ndarray]
"""The score of each configuration (higher is better)."""


def higher(new: float, old: float) -> bool:
    """The default acceptance rule: a move improves when its score is strictly higher."""
    return bool(new > old)


def local_search(starts: list[Config], score: Scorer, neighbours: Neighbourhood,
                 rng: np.random.Generator, steps: int, *,
                 rate_starts: Scorer | None = None,
                 admit: Callable[[Config], bool] | None = None,
                 accept: Callable[[float, float], bool] = higher) -> list[Config]:
    """Best-improvement moves from every start, all starts in step (see the module).

    Args:
        starts: The starting configurations.
        score: Scores the neighbours drawn at each step (called once per step, with every
            admitted neighbour in order; it may record them).
        neighbours: The neighbourhood, called with ``rng`` for each start still moving,
            in the order of ``starts``.
        rng: The generator the neighbourhood draws from.
        steps: Moves of each start at most.
        rate_starts: Scores the starts (called once, before the first step, when there are
            starts); default ``score``.
        admit: Whether a neighbour is kept (called once per neighbour, in order; it may
            record what it admits); default: every neighbour.
        accept: ``accept(new, old)``: whether a neighbour scoring ``new`` improves on the
            current configuration scoring ``old``; default :func:`higher`.

    Returns:
        Every admitted neighbour, in the order they were scored.
    """
    found: list[Config] = []
    if not starts:
        return found
    current = list(starts)
    current_scores = (rate_starts or score)(current)
    active = list(range(len(current)))
    for _ in range(steps):
        candidates: list[Config] = []
        owner: list[int] = []
        for i in active:
            for neighbour in neighbours(current[i], rng):
                if admit is None or admit(neighbour):
                    candidates.append(neighbour)
                    owner.append(i)
        if not candidates:
            break
        found += candidates
        scores = score(candidates)
        best: dict[int, int] = {}
        for j, i in enumerate(owner):
            if i not in best or scores[j] > scores[best[i]]:
                best[i] = j
        moved = []
        for i, j in best.items():
            if accept(scores[j], current_scores[i]):
                current[i], current_scores[i] = candidates[j], scores[j]
                moved.append(i)
        if not moved:
            break
        active = moved
    return found
