"""What a parameter importance analysis returns: :class:`Ranking`, :class:`Rule` and
:class:`ImportanceReport` (:mod:`deploytune.analysis.importance` computes them)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ImportanceReport", "Ranking", "Rule"]


@dataclass(frozen=True)
class Ranking:
    """The importance of each parameter for one target.

    Attributes:
        target: What is explained, e.g. ``"objective"``, ``"crash"``, ``"crash: oom"``,
            ``"infeasibility"``, ``"violates latency_ms <= 20"``.
        importances: Parameter -> share of the importance, most important first; the shares
            sum to 1. Empty when there is no ranking (see ``note``).
        n_trials: Trials the ranking was computed on.
        n_positive: For a classification target, how many of them had the outcome (crashed,
            violated); ``None`` for the objective.
        method: How the importances were computed.
        note: Why there is no ranking, or a caveat; ``None`` when there is nothing to say.
    """

    target: str
    importances: dict[str, float]
    n_trials: int
    n_positive: int | None
    method: str
    note: str | None = None

    @property
    def available(self) -> bool:
        """Whether the ranking could be computed."""
        return bool(self.importances)

    @property
    def top(self) -> str | None:
        """The most important parameter, or ``None`` without a ranking."""
        return next(iter(self.importances), None)

    @property
    def counts_text(self) -> str:
        """``"12 of 40 trials"`` for a classification target, ``"18 trials"`` otherwise."""
        if self.n_positive is None:
            return f"{self.n_trials} trials"
        return f"{self.n_positive} of {self.n_trials} trials"


@dataclass(frozen=True)
class Rule:
    """One leaf of a shallow decision tree: conditions on parameters and the outcome they lead to.

    Attributes:
        conditions: Human-readable conditions, all of which hold (e.g. ``"batch_size >= 33"``,
            ``"kv_type in {q8_0, q4_0}"``).
        outcome: The leaf's majority outcome (a crash kind, or ``"violates <constraint>"``).
        support: Trials in the leaf with that outcome.
        total: Trials in the leaf.
    """

    conditions: tuple[str, ...]
    outcome: str
    support: int
    total: int

    @property
    def purity(self) -> float:
        """``support / total``."""
        return self.support / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{' and '.join(self.conditions)} -> {self.outcome} ({self.support}/{self.total})"


@dataclass(frozen=True)
class ImportanceReport:
    """Parameter importance separated by target (see the module docstring).

    Attributes:
        objective: Importance for the objective value among the feasible trials.
        crash: Importance for crashed vs not crashed.
        crash_kinds: Crash kind -> importance for that kind vs not crashed (kinds with enough
            examples only).
        crash_rules: Rules of shallow one-vs-rest trees, one per crash kind, strongest first.
        infeasibility: Importance for infeasible vs feasible among the trials that ran.
        constraints: Constraint text -> importance for violating it (with two or more
            constraints only).
        binding: Constraint text -> number of infeasible trials it was the most violated one in.
        infeasibility_rules: Rules of shallow one-vs-rest trees, one per violated constraint.
        objective_metric: The objective's metric name.
        n_trials: Finished evaluations analysed.
        seed: The seed everything was computed with.
        params: The space's parameter names, in declaration order.
    """

    objective: Ranking
    crash: Ranking
    crash_kinds: dict[str, Ranking]
    crash_rules: list[Rule]
    infeasibility: Ranking
    constraints: dict[str, Ranking]
    binding: dict[str, int]
    infeasibility_rules: list[Rule]
    objective_metric: str
    n_trials: int
    seed: int
    params: list[str] = field(default_factory=list)

    @property
    def rankings(self) -> list[Ranking]:
        """The three main rankings: objective, crash, infeasibility."""
        return [self.objective, self.crash, self.infeasibility]

    @property
    def any_available(self) -> bool:
        """Whether at least one of the three main rankings could be computed."""
        return any(r.available for r in self.rankings)

    def text(self) -> str:
        """A plain-text rendering (for logs and tests)."""
        lines = [f"parameter importance over {self.n_trials} evaluations (seed {self.seed})"]
        sections: list[tuple[Ranking, list[Ranking], list[Rule], str]] = [
            (self.objective, [], [], ""),
            (self.crash, list(self.crash_kinds.values()), self.crash_rules, "crash rules"),
            (self.infeasibility, list(self.constraints.values()), self.infeasibility_rules,
             "infeasibility rules"),
        ]
        for main, subs, rules, rules_title in sections:
            for r in [main, *subs]:
                lines.append(f"{r.target} ({r.counts_text}, {r.method}):")
                if r.note:
                    lines.append(f"  {r.note}")
                lines += [f"  {name:<20} {share:6.1%}" for name, share in r.importances.items()]
            if rules:
                lines.append(f"{rules_title}:")
                lines += [f"  {rule}" for rule in rules]
        if self.binding:
            lines.append("binding constraints: " + ", ".join(
                f"{c} ({n})" for c, n in self.binding.items()))
        return "\n".join(lines)
