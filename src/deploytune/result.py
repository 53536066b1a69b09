"""What :func:`deploytune.optimize` found: the :class:`Result` over a study's finished trials."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from deploytune.feasibility import DEFAULT_CONFIDENCE, Recommendation, assess, recommend
from deploytune.history import TrialRecord, is_interrupted, trial_records
from deploytune.outcome import Constraint, Objective, Status

__all__ = ["Result"]


@dataclass
class Result:
    """What :func:`~deploytune.optimize` found.

    Attributes:
        trials: Every finished evaluation, in trial order.
        objective: The objective that was optimised.
        constraints: The hard constraints.
        study: The Optuna study that holds the history.
        interrupted: Trials cut short by a stopped tuner (not evaluations; their
            configurations were queued again).
        confidence: The chance constraint's level (see :attr:`recommendation`).
    """

    trials: list[TrialRecord]
    objective: Objective
    constraints: list[Constraint] = field(default_factory=list)
    study: optuna.Study | None = None
    interrupted: int = 0
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def recommendation(self) -> Recommendation | None:
        """The configuration to deploy: every run of each configuration pooled, the best
        pessimistic objective bound among those that meet the chance constraint
        (:mod:`deploytune.feasibility`); ``None`` when nothing was feasible. Check its
        ``reliable``: ``False`` says no configuration met the chance constraint."""
        return recommend(assess(self.trials, self.objective, self.constraints, self.confidence),
                         self.objective, self.confidence)

    @property
    def best_trial(self) -> TrialRecord | None:
        """The best feasible *observed* run; ``None`` when nothing was feasible. One lucky
        run of a noisy configuration can be it: deploy :attr:`recommendation`."""
        best: TrialRecord | None = None
        for t in self.trials:
            if t.status is not Status.FEASIBLE or t.value is None or math.isnan(t.value):
                continue
            if best is None or self.objective.better(t.value, best.value):  # type: ignore[arg-type]
                best = t
        return best

    @property
    def best_config(self) -> dict[str, Any] | None:
        """Configuration of the best feasible trial, or ``None``."""
        b = self.best_trial
        return dict(b.config) if b else None

    @property
    def best_value(self) -> float | None:
        """Objective value of the best feasible trial, or ``None``."""
        b = self.best_trial
        return b.value if b else None

    @property
    def waste(self) -> float:
        """Fraction of trials that were not feasible (crashed, infeasible or aborted)."""
        if not self.trials:
            return 0.0
        return sum(t.status is not Status.FEASIBLE for t in self.trials) / len(self.trials)

    def count(self, status: Status) -> int:
        """Number of trials with ``status``."""
        return sum(t.status is status for t in self.trials)

    def margins(self) -> dict[str, float]:
        """For the best trial: constraint text -> headroom in the metric's unit (>= 0)."""
        b = self.best_trial
        if b is None:
            return {}
        return {str(c): c.margin(b.metrics[c.metric]) for c in self.constraints
                if c.metric in b.metrics}

    def summary(self) -> str:
        """A short human-readable summary."""
        lines = [f"{len(self.trials)} trials: {self.count(Status.FEASIBLE)} feasible, "
                 f"{self.count(Status.INFEASIBLE)} infeasible, {self.count(Status.CRASHED)} "
                 f"crashed, {self.count(Status.ABORTED)} aborted (waste {self.waste:.0%})"]
        b = self.best_trial
        if b is None:
            lines.append("no feasible configuration found")
        else:
            lines.append(f"best {self.objective.metric} = {b.value:g} (trial {b.number}): "
                         f"{b.config}")
            lines += [f"  {c}: margin {m:g}" for c, m in self.margins().items()]
        rec = self.recommendation
        if rec is not None:
            lines.append(f"recommended ({'' if rec.reliable else 'NOT '}reliably feasible: "
                         f"P(feasible) {rec.runs.p_feasible:.2f}, {rec.runs.runs} runs): "
                         f"{rec.config}")
        return "\n".join(lines)

    @classmethod
    def from_study(cls, study: optuna.Study, objective: Objective,
                   constraints: Sequence[Constraint],
                   confidence: float = DEFAULT_CONFIDENCE) -> Result:
        """Collect a result from every finished trial of ``study``."""
        trials = study.get_trials(deepcopy=False)
        records = trial_records(trials)
        interrupted = sum(t.state.is_finished() and is_interrupted(t) for t in trials)
        return cls(records, objective, list(constraints), study, interrupted, confidence)
