"""Showing a study's history to an Optuna sampler through a transformation.

Optuna's samplers ignore ``FAIL`` trials, so on their own they learn nothing from crashes and
propose the same OOM configuration again (optuna#332, #566, #3472). A :class:`HistoryView`
keeps a private in-memory study that mirrors the finished trials of the real study after a
transformation (:class:`PlainTransform`: what a typical Optuna user shows TPE;
:class:`GradedTransform`: crashes become infeasible trials with a graded violation). An inner
Optuna sampler then draws a whole configuration on the mirror, define-by-run.

The inner sampler is rebuilt for every trial with a seed derived from (seed, trial number), so
the proposal depends only on the history and the seed.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from deploytune.history import TrialRecord, observation_of
from deploytune.outcome import CrashKind, Status
from deploytune.space import Config, Space

__all__ = [
    "CRASH_WEIGHTS",
    "GradedTransform",
    "HistoryTransform",
    "HistoryView",
    "PlainTransform",
    "aggregate_violation",
]

_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

CRASH_WEIGHTS: dict[CrashKind, float] = {
    CrashKind.TIMEOUT: 1.25,
    CrashKind.OOM: 1.5,
    CrashKind.RUNTIME_ERROR: 1.75,
    CrashKind.INVALID_CONFIG: 2.0,
}
"""Violation of a crash, in units of the largest violation seen among trials that ran.

Every crash ranks below every trial that ran; among crashes, a timeout (it ran, too slowly)
is the mildest and an invalid configuration (it can never run) the worst."""

VIOLATION_KEY = "violation"


def aggregate_violation(violations: dict[str, float]) -> float:
    """One signed number per trial: the sum of positive violations when any constraint is
    violated, otherwise the largest (least negative) signed value, i.e. minus the tightest
    normalised margin. 0 when there are no constraints."""
    if not violations:
        return 0.0
    positive = [v for v in violations.values() if v > 0]
    return sum(positive) if positive else max(violations.values())


class HistoryTransform(abc.ABC):
    """Turns finished trials of the real study into trials of the mirror."""

    @abc.abstractmethod
    def context(self, obs: Sequence[TrialRecord], sign: float) -> tuple[float, ...]:
        """Global quantities the per-trial transformation depends on (cache key)."""

    @abc.abstractmethod
    def transform(self, t: FrozenTrial, obs: TrialRecord, ctx: tuple[float, ...],
                  space: Space) -> FrozenTrial | None:
        """The mirror trial for ``t``, or ``None`` to leave it out."""


def _distributions(space: Space, params: dict[str, object]) -> dict[str, optuna.distributions
                                                                      .BaseDistribution]:
    return {k: space[k].distribution() for k in params if k in space}


class PlainTransform(HistoryTransform):
    """What a typical Optuna user shows TPE: objective values only, crashes as ``FAIL``."""

    def context(self, obs: Sequence[TrialRecord], sign: float) -> tuple[float, ...]:
        """No global context."""
        return ()

    def transform(self, t: FrozenTrial, obs: TrialRecord, ctx: tuple[float, ...],
                  space: Space) -> FrozenTrial | None:
        """Copy value and params; drop constraints; crashes stay ``FAIL``."""
        params = {k: v for k, v in t.params.items() if k in space}
        dists = _distributions(space, params)
        if t.state is TrialState.COMPLETE and obs.value is not None and math.isfinite(obs.value):
            return create_trial(params=params, distributions=dists, value=obs.value)
        if t.state is TrialState.PRUNED:
            return create_trial(state=TrialState.PRUNED, params=params, distributions=dists,
                                intermediate_values=dict(t.intermediate_values))
        return create_trial(state=TrialState.FAIL, params=params, distributions=dists)


@dataclass
class GradedTransform(HistoryTransform):
    """Constraints shown as one aggregated normalised violation; crashes as graded infeasible.

    A crash of kind ``k`` gets violation ``CRASH_WEIGHTS[k] * max(1, largest violation of a trial
    that ran)`` and the worst objective value seen (0 if none). Transient crashes are left out.
    Aborted trials keep their partial violation (at least a small positive one).

    Attributes:
        weights: Crash kind -> weight (see :data:`CRASH_WEIGHTS`).
    """

    weights: dict[CrashKind, float] | None = None

    def context(self, obs: Sequence[TrialRecord], sign: float) -> tuple[float, ...]:
        """(largest violation among runs, worst objective value among runs)."""
        ran = [o for o in obs if not o.crashed]
        worst_v = max([1.0] + [o.total_violation for o in ran])
        values = [o.value for o in ran if o.value is not None and math.isfinite(o.value)]
        worst_f = (min(values) if sign > 0 else max(values)) if values else 0.0
        return (worst_v, worst_f)

    def transform(self, t: FrozenTrial, obs: TrialRecord, ctx: tuple[float, ...],
                  space: Space) -> FrozenTrial | None:
        """Complete trials with one ``violation`` constraint; see the class docstring."""
        if obs.transient:
            return None
        worst_v, worst_f = ctx
        params = {k: v for k, v in t.params.items() if k in space}
        dists = _distributions(space, params)
        if obs.status is Status.CRASHED:
            w = (self.weights or CRASH_WEIGHTS).get(obs.crash_kind or CrashKind.RUNTIME_ERROR,
                                                    1.75)
            return create_trial(params=params, distributions=dists, value=worst_f,
                                constraints={VIOLATION_KEY: w * worst_v})
        value = obs.value if obs.value is not None and math.isfinite(obs.value) else worst_f
        v = aggregate_violation(obs.violations)
        if obs.status is Status.ABORTED:
            v = max(v, 1e-3)
            value = worst_f
        return create_trial(params=params, distributions=dists, value=value,
                            constraints={VIOLATION_KEY: v})


class HistoryView:
    """A cached in-memory mirror of a study's finished trials under a :class:`HistoryTransform`.

    Args:
        space: The search space (for distributions and define-by-run sampling).
        transform: How real trials appear on the mirror.
    """

    def __init__(self, space: Space, transform: HistoryTransform) -> None:
        self.space = space
        self.transform = transform
        self._mirror: optuna.Study | None = None
        self._numbers: list[int] = []
        self._ctx: tuple[float, ...] | None = None
        self._direction: str | None = None

    def sync(self, study: optuna.Study) -> optuna.Study:
        """Bring the mirror up to date with the finished trials of ``study`` and return it."""
        trials = study.get_trials(deepcopy=False, states=_FINISHED)
        pairs = [(t, o) for t in trials if (o := observation_of(t)) is not None
                 and self.space.fits(o.config)]
        pairs.sort(key=lambda p: p[0].number)
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        ctx = self.transform.context([o for _, o in pairs], sign)
        numbers = [t.number for t, _ in pairs]
        direction: Literal["maximize", "minimize"] = "maximize" if sign > 0 else "minimize"
        fresh = (self._mirror is None or ctx != self._ctx or direction != self._direction
                 or numbers[: len(self._numbers)] != self._numbers)
        if fresh:
            self._mirror = optuna.create_study(direction=direction)
            self._numbers = []
            self._ctx, self._direction = ctx, direction
        assert self._mirror is not None
        new = pairs[len(self._numbers):]
        mirrored = [m for t, o in new
                    if (m := self.transform.transform(t, o, ctx, self.space)) is not None]
        if mirrored:
            self._mirror.add_trials(mirrored)
        self._numbers = numbers
        return self._mirror

    def draw(self, study: optuna.Study, inner: BaseSampler,
             accept: Callable[[Config], bool] | None = None, tries: int = 1,
             fallback: np.random.Generator | None = None) -> Config:
        """Draw a configuration with ``inner`` on the mirror of ``study``.

        The draw is a throw-away trial of the mirror, finished as ``FAIL`` (Optuna's samplers
        ignore those). Forbidden combinations are always redrawn; with ``accept``, draws are
        repeated until one is accepted. After ``tries`` draws (at least 10 when the space
        declares forbidden combinations) a uniform sample from ``fallback`` that passes both
        tests is returned, if one is found; otherwise the last allowed draw.
        """
        mirror = self.sync(study)
        mirror.sampler = inner

        def ok(c: Config) -> bool:
            return not self.space.is_forbidden(c) and (accept is None or accept(c))

        last: Config | None = None
        for _ in range(max(tries, 10 if self.space.forbidden else 1)):
            trial = mirror.ask()
            config = self.space.suggest(trial)
            mirror.tell(trial, state=TrialState.FAIL)
            if ok(config):
                return config
            if not self.space.is_forbidden(config):
                last = config
        if fallback is not None:
            for _ in range(200):
                config = self.space.sample(fallback)
                if ok(config):
                    return config
        return last if last is not None else self.space.sample(
            fallback if fallback is not None else np.random.default_rng(0))
