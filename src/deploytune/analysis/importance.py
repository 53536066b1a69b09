"""Parameter importance, separated by target: the objective, crashes and infeasibility.

A single importance ranking mixes three different questions. :func:`importance` answers each on
its own set of trials:

* **objective**: which parameters move the objective value among the *feasible* trials. A
  derived in-memory Optuna study holding only those trials and their values is handed to
  Optuna's :class:`~optuna.importance.FanovaImportanceEvaluator` (a random-forest functional
  ANOVA). Needs at least :data:`MIN_FEASIBLE` feasible trials.
* **crash**: which parameters decide whether an evaluation crashes, among every finished
  evaluation (transient failures say nothing about the configuration and are left out);
  then, for each crash kind with enough examples, that kind against the trials that did not
  crash. A shallow scikit-learn random forest classifies the one-hot encoded configurations
  and each parameter's importance is the grouped permutation importance (all of a parameter's
  columns shuffled together) of the forest's class-balanced Brier score. A shallow
  one-vs-rest decision tree per crash kind gives readable rules, such as
  ``mode = bad -> invalid_config (6/6)`` (a leaf where the kind is the majority, with the
  count of that kind among the trials in the leaf).
* **infeasibility**: the same for constraint violations among the trials that ran
  (feasible, infeasible, and aborted ones stopped for a violated constraint), with a ranking
  per constraint when there are several, the count of trials each constraint was the most
  violated (binding) one, and rules per violated constraint.

Inactive conditional parameters are encoded as their own value (a separate category, or a
number below the parameter's range), so "this parameter is unset" can matter too. Every ranking
holds every parameter of the space, as fractions summing to 1; everything is deterministic
given ``seed``.

Example:
    >>> report = importance_of_study(study, seed=0)
    >>> report.crash.top, report.objective.importances
    >>> for rule in report.crash_rules:
    ...     print(rule)

:func:`render_importance` prints the rankings as rich tables; :func:`write_importance_figure`
draws them as three horizontal bar panels (matplotlib is imported only there).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploytune.history import ATTR_SETUP
from deploytune.outcome import Constraint, CrashKind, Objective, Status, constraint_label
from deploytune.space import Categorical, Float, Int, Param, Space
from deploytune.tuner import TrialRecord

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

__all__ = [
    "MIN_CLASS_EXAMPLES",
    "MIN_FEASIBLE",
    "ImportanceReport",
    "Ranking",
    "Rule",
    "importance",
    "importance_of_study",
    "render_importance",
    "write_importance_figure",
]

MIN_FEASIBLE = 4
"""Fewest feasible trials (with a finite objective value) for an objective ranking."""
MIN_CLASS_EXAMPLES = 3
"""Fewest trials on each side (e.g. crashed and not crashed) for a classification ranking."""
MAX_RULES = 6
"""Most rules kept per target (crash, infeasibility)."""
RULES_PER_OUTCOME = 3
"""Most rules kept per outcome (a crash kind, a violated constraint)."""


_N_TREES = 100
_FOREST_DEPTH = 4
_RULE_DEPTH = 3
_RULE_PRUNING = 0.02
_MIN_LEAF = 2
_PERMUTATION_REPEATS = 10
_FOREST_METHOD = "random forest, permutation importance"


class _Inactive:
    """The value of a conditional parameter that is not active in a configuration."""

    def __repr__(self) -> str:
        return "(inactive)"


_INACTIVE: Any = _Inactive()
"""Stands for "not active" among a categorical parameter's values."""


# ------------------------------------------------------------------------------- result types


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


# ----------------------------------------------------------------------------------- encoding


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1``, like the space's choices."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _is_conditional(p: Param, configs: Sequence[Mapping[str, Any]]) -> bool:
    return bool(p.when) or any(p.name not in c for c in configs)


@dataclass(frozen=True)
class _Column:
    param: Param
    value: Any = None
    """For a one-hot column, the category (or ``_INACTIVE``); ``None`` for a number."""


def _sentinel(p: Int | Float) -> float:
    """The number that encodes "inactive": so far below the range that a tree's threshold
    between it and any active value (their midpoint) is below ``low`` too."""
    return float(p.low) - (float(p.high) - float(p.low)) - 1.0


class _Encoding:
    """One-hot categorical columns and raw numeric columns, inactive values encoded apart."""

    def __init__(self, space: Space, configs: Sequence[Mapping[str, Any]]):
        self.columns: list[_Column] = []
        self.groups: dict[str, list[int]] = {}
        self.conditional: dict[str, bool] = {}
        for p in space.params:
            cond = _is_conditional(p, configs)
            self.conditional[p.name] = cond
            start = len(self.columns)
            if isinstance(p, Categorical):
                self.columns += [_Column(p, v) for v in p.choices]
                if cond:
                    self.columns.append(_Column(p, _INACTIVE))
            else:
                self.columns.append(_Column(p))
            self.groups[p.name] = list(range(start, len(self.columns)))
        self.matrix = np.array([[self._cell(col, c) for col in self.columns] for c in configs],
                               dtype=float).reshape(len(configs), len(self.columns))

    @staticmethod
    def _cell(col: _Column, config: Mapping[str, Any]) -> float:
        p = col.param
        active = p.name in config
        if isinstance(p, Categorical):
            if col.value is _INACTIVE:
                return 0.0 if active else 1.0
            return 1.0 if active and _same(config[p.name], col.value) else 0.0
        assert isinstance(p, (Int, Float))
        return float(config[p.name]) if active else _sentinel(p)


# ------------------------------------------------------------------------------------ rankings


def _normalised(raw: Mapping[str, float], order: Sequence[str]) -> dict[str, float]:
    """Shares summing to 1, most important first (ties in space order); empty if all zero."""
    clean = {n: max(0.0, float(raw.get(n, 0.0))) for n in order}
    clean = {n: (v if math.isfinite(v) else 0.0) for n, v in clean.items()}
    total = sum(clean.values())
    if total <= 0:
        return {}
    rank = {n: i for i, n in enumerate(order)}
    return dict(sorted(((n, v / total) for n, v in clean.items()),
                       key=lambda nv: (-nv[1], rank[nv[0]])))


def _objective_ranking(trials: Sequence[TrialRecord], space: Space, objective: Objective,
                       seed: int) -> Ranking:
    """fANOVA (Optuna) on a derived in-memory study of the feasible trials."""
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
    )
    from optuna.importance import FanovaImportanceEvaluator

    method = "fANOVA (Optuna) on the feasible trials"
    target = f"objective: {objective.metric}"
    feasible = [t for t in trials if t.status is Status.FEASIBLE and t.value is not None
                and math.isfinite(t.value)]
    if len(feasible) < MIN_FEASIBLE:
        return Ranking(target, {}, len(feasible), None, method,
                       f"only {len(feasible)} feasible trial(s) with a finite "
                       f"{objective.metric}; an objective ranking needs at least {MIN_FEASIBLE}")
    configs = [t.config for t in feasible]
    dists: dict[str, BaseDistribution] = {}
    encoders: dict[str, Any] = {}
    token = "(inactive)"
    for p in space.params:
        if not any(p.name in c for c in configs):
            continue
        if not _is_conditional(p, configs):
            dist = p.distribution()
            encoders[p.name] = lambda v: v
        elif isinstance(p, Categorical):
            while any(_same(token, c) for c in p.choices):
                token = f"({token})"
            dist = CategoricalDistribution([*p.choices, token])
            encoders[p.name] = lambda v, t=token: t if v is _INACTIVE else v
        else:
            assert isinstance(p, (Int, Float))
            scale = math.log if p.log else float
            lo, hi = scale(p.low), scale(p.high)
            below = lo - max(hi - lo, 1.0)
            dist = FloatDistribution(below, hi)
            encoders[p.name] = lambda v, s=scale, b=below: b if v is _INACTIVE else float(s(v))
        if not dist.single():
            dists[p.name] = dist
    if not dists:
        return Ranking(target, {}, len(feasible), None, method,
                       "no parameter varies among the feasible trials")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        # the direction does not matter to fANOVA: it decomposes the variance
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    # the shares do not depend on the values' scale: values divided by the largest magnitude
    # keep fANOVA's variances finite when the values are huge (1e308 squared overflows)
    values = [float(t.value or 0.0) for t in feasible]  # all finite (filtered above)
    magnitude = max(abs(v) for v in values) or 1.0
    for t, value in zip(feasible, values, strict=True):
        params = {n: encoders[n](t.config.get(n, _INACTIVE)) for n in dists}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=value / magnitude))
    constant = (f"{objective.metric} does not vary with the parameters among the feasible "
                f"trials")
    if len(set(values)) < 2:
        return Ranking(target, {}, len(feasible), None, method, constant)
    try:
        raw = FanovaImportanceEvaluator(seed=seed).evaluate(study)
    except RuntimeError:  # every tree of the forest predicts a constant
        raw = {}
    except (AssertionError, ArithmeticError, ValueError) as exc:  # fANOVA's own checks
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Ranking(target, {}, len(feasible), None, method,
                       f"fANOVA failed on these values ({detail})")
    shares = _normalised(raw, space.names)
    return Ranking(target, shares, len(feasible), None, method, None if shares else constant)


def _brier(proba: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    """Class-balanced Brier score of the positive class's probability (lower is better)."""
    return float(np.average((proba - y) ** 2, weights=weight))


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    return np.where(y > 0, len(y) / (2 * n_pos), len(y) / (2 * n_neg))


def _classifier_ranking(target: str, configs: Sequence[Mapping[str, Any]], labels: Sequence[bool],
                        space: Space, seed: int, what: str) -> Ranking:
    """A shallow random forest on the encoded configurations; grouped permutation importance."""
    from sklearn.ensemble import RandomForestClassifier

    method = _FOREST_METHOD
    y = np.asarray(labels, dtype=float)
    n_pos = int(y.sum())
    n = len(y)
    if n_pos < MIN_CLASS_EXAMPLES or n - n_pos < MIN_CLASS_EXAMPLES:
        return Ranking(target, {}, n, n_pos, method,
                       f"{n_pos} {what} and {n - n_pos} other trial(s); a ranking needs at "
                       f"least {MIN_CLASS_EXAMPLES} of each")
    enc = _Encoding(space, configs)
    forest = RandomForestClassifier(n_estimators=_N_TREES, max_depth=_FOREST_DEPTH,
                                    min_samples_leaf=_MIN_LEAF, class_weight="balanced",
                                    random_state=seed, n_jobs=1)
    x = enc.matrix
    forest.fit(x, y)
    pos = list(forest.classes_).index(1.0)
    weight = _balanced_weights(y)
    rng = np.random.default_rng(seed)
    # every shuffled copy of the data in one matrix: one predict_proba call per ranking
    names = list(enc.groups)
    copies = [x]
    for name in names:
        cols = enc.groups[name]
        for _ in range(_PERMUTATION_REPEATS):
            shuffled = x.copy()
            shuffled[:, cols] = x[rng.permutation(n)][:, cols]
            copies.append(shuffled)
    proba = forest.predict_proba(np.vstack(copies))[:, pos].reshape(len(copies), n)
    base = _brier(proba[0], y, weight)
    raw: dict[str, float] = {}
    for i, name in enumerate(names):
        block = proba[1 + i * _PERMUTATION_REPEATS: 1 + (i + 1) * _PERMUTATION_REPEATS]
        raw[name] = float(np.mean([_brier(p, y, weight) for p in block])) - base
    shares = _normalised(raw, space.names)
    note = None if shares else "no parameter separates the classes"
    return Ranking(target, shares, n, n_pos, method, note)


# --------------------------------------------------------------------------------------- rules


def _fmt_value(v: Any) -> str:
    if v is _INACTIVE:
        return "(inactive)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _fmt_bound(p: Int | Float, t: float, upper: bool) -> str:
    """``p <= t`` (``upper``) or ``p > t`` in the parameter's own terms."""
    if isinstance(p, Int):
        return f"{p.name} <= {math.floor(t)}" if upper else f"{p.name} >= {math.floor(t) + 1}"
    return f"{p.name} <= {t:.4g}" if upper else f"{p.name} > {t:.4g}"


class _PathState:
    """What a root-to-leaf path of a tree says about each parameter."""

    def __init__(self, enc: _Encoding):
        self.enc = enc
        self.allowed: dict[str, list[Any]] = {}
        self.bounds: dict[str, tuple[float | None, float | None]] = {}

    def copy(self) -> _PathState:
        other = _PathState(self.enc)
        other.allowed = {k: list(v) for k, v in self.allowed.items()}
        other.bounds = dict(self.bounds)
        return other

    def split(self, col: _Column, threshold: float, left: bool) -> None:
        p = col.param
        if isinstance(p, Categorical):
            values = self.allowed.get(p.name)
            if values is None:
                values = list(p.choices) + ([_INACTIVE] if self.enc.conditional[p.name] else [])
            # one-hot <= 0.5 (left): any value but this one; > 0.5: this value
            self.allowed[p.name] = ([v for v in values if not _same(v, col.value)] if left
                                    else [col.value])
            return
        lo, hi = self.bounds.get(p.name, (None, None))
        if left:
            hi = threshold if hi is None else min(hi, threshold)
        else:
            lo = threshold if lo is None else max(lo, threshold)
        self.bounds[p.name] = (lo, hi)

    def conditions(self, space: Space) -> tuple[str, ...]:
        out: list[str] = []
        for p in space.params:
            if p.name in self.allowed:
                out += self._categorical(p, self.allowed[p.name])
            elif p.name in self.bounds:
                assert isinstance(p, (Int, Float))
                out += self._numeric(p, *self.bounds[p.name], self.enc.conditional[p.name])
        return tuple(out)

    def _categorical(self, p: Param, allowed: list[Any]) -> list[str]:
        assert isinstance(p, Categorical)
        every = list(p.choices) + ([_INACTIVE] if self.enc.conditional[p.name] else [])
        excluded = [v for v in every if not any(_same(v, a) for a in allowed)]
        if not excluded:
            return []
        if len(allowed) == 1:
            v = allowed[0]
            return [f"{p.name} inactive" if v is _INACTIVE else f"{p.name} = {_fmt_value(v)}"]
        if len(excluded) == 1:
            v = excluded[0]
            return [f"{p.name} active" if v is _INACTIVE else f"{p.name} != {_fmt_value(v)}"]
        if len(allowed) <= len(excluded):
            return [f"{p.name} in {{{', '.join(_fmt_value(v) for v in allowed)}}}"]
        return [f"{p.name} not in {{{', '.join(_fmt_value(v) for v in excluded)}}}"]

    @staticmethod
    def _numeric(p: Int | Float, lo: float | None, hi: float | None,
                 conditional: bool) -> list[str]:
        if hi is not None and hi < p.low:
            return [f"{p.name} inactive"]
        out: list[str] = []
        if lo is not None and lo >= p.low:
            out.append(_fmt_bound(p, lo, upper=False))
        if hi is not None:
            out.append(_fmt_bound(p, hi, upper=True))
        if not out and lo is not None:  # only "above the inactive sentinel"
            out.append(f"{p.name} active")
        elif conditional and lo is None and out:  # the range holds the inactive value too
            out = [f"({out[0]} or {p.name} inactive)"]
        return out


def _rules_for(configs: Sequence[Mapping[str, Any]], positive: Sequence[bool], outcome: str,
               space: Space, seed: int) -> list[Rule]:
    """Rules for one outcome: the leaves of a shallow one-vs-rest decision tree where it is
    the majority, siblings that agree merged into their parent."""
    from sklearn.tree import DecisionTreeClassifier

    y = np.asarray(positive, dtype=bool)
    if int(y.sum()) < _MIN_LEAF or int((~y).sum()) < 1:
        return []
    enc = _Encoding(space, configs)
    tree = DecisionTreeClassifier(max_depth=_RULE_DEPTH, ccp_alpha=_RULE_PRUNING,
                                  random_state=seed)
    tree.fit(enc.matrix, y)
    reach = tree.decision_path(enc.matrix).toarray().astype(bool)  # samples x nodes
    structure = tree.tree_
    left_of, right_of = structure.children_left, structure.children_right

    def counts(node: int) -> tuple[int, int]:
        inside = reach[:, node]
        return int(y[inside].sum()), int(inside.sum())

    def majority(node: int) -> bool:
        pos, total = counts(node)
        return 2 * pos > total

    def settled(node: int) -> bool:
        """A leaf, or a subtree whose leaves all agree with it."""
        left, right = int(left_of[node]), int(right_of[node])
        if left == right:
            return True
        return (settled(left) and settled(right)
                and majority(left) == majority(right) == majority(node))

    rules: list[Rule] = []
    stack: list[tuple[int, _PathState]] = [(0, _PathState(enc))]
    while stack:
        node, state = stack.pop()
        if settled(node):
            pos, total = counts(node)
            conditions = state.conditions(space)
            if majority(node) and pos >= _MIN_LEAF and conditions:
                rules.append(Rule(conditions, outcome, pos, total))
            continue
        col = enc.columns[int(structure.feature[node])]
        threshold = float(structure.threshold[node])
        for child, is_left in ((int(left_of[node]), True), (int(right_of[node]), False)):
            child_state = state.copy()
            child_state.split(col, threshold, is_left)
            stack.append((child, child_state))
    rules.sort(key=lambda r: (-r.support, -r.purity, str(r)))
    return rules[:RULES_PER_OUTCOME]


def _rules(configs: Sequence[Mapping[str, Any]], labels: Sequence[set[str]],
           space: Space, seed: int) -> list[Rule]:
    """Rules for every outcome in ``labels`` (each trial's set of outcomes), strongest first."""
    outcomes = sorted(set().union(*labels)) if labels else []
    rules = [r for o in outcomes
             for r in _rules_for(configs, [o in lab for lab in labels], o, space, seed)]
    rules.sort(key=lambda r: (-r.support, -r.purity, str(r)))
    return rules[:MAX_RULES]


# ------------------------------------------------------------------------------------ the API


def _constraint_names(constraints: Sequence[Constraint] | None) -> dict[str, str]:
    return {constraint_label(c): str(c) for c in constraints or ()}


def _violated(rec: TrialRecord) -> dict[str, float]:
    return {k: v for k, v in rec.violations.items() if math.isfinite(v) and v > 0}


def _binding(rec: TrialRecord) -> str:
    """The label of the most violated constraint of an infeasible trial."""
    bad = _violated(rec)
    return max(sorted(bad), key=lambda k: bad[k])


def importance(trials: Sequence[TrialRecord], space: Space, objective: Objective, *,
               constraints: Sequence[Constraint] | None = None,
               seed: int = 0) -> ImportanceReport:
    """Rank the parameters of ``space`` separately for the objective, crashes and infeasibility.

    Args:
        trials: Finished evaluations (e.g. ``result.trials`` or from
            :meth:`TrialRecord.from_trial`).
        space: The search space (configurations may hold only its active parameters; trials
            with a parameter outside the space are left out).
        objective: The objective; its metric names the objective ranking.
        constraints: The constraints, to name the per-constraint rankings in their own words
            (``"latency_ms <= 20"`` rather than the stored label ``"latency_ms_max"``).
        seed: Seeds every forest, tree and permutation: the same seed gives the same report.

    Returns:
        The three rankings, the per-kind and per-constraint ones, and the rules.
    """
    names = _constraint_names(constraints)
    known = [t for t in trials if all(k in space for k in t.config)]
    # ---- crashes: every evaluation that says something about its configuration
    judged = [t for t in known if t.crash_kind is not CrashKind.TRANSIENT]
    configs = [t.config for t in judged]
    crashed = [t.status is Status.CRASHED for t in judged]
    crash = _classifier_ranking("crash", configs, crashed, space, seed, "crashed")
    kinds = Counter((t.crash_kind or CrashKind.RUNTIME_ERROR).value for t in judged
                    if t.status is Status.CRASHED)
    crash_kinds: dict[str, Ranking] = {}
    if crash.available and len(kinds) > 1:
        for kind in (k.value for k in CrashKind):
            if kinds.get(kind, 0) < MIN_CLASS_EXAMPLES:
                continue
            subset = [t for t in judged if t.status is not Status.CRASHED or
                      (t.crash_kind or CrashKind.RUNTIME_ERROR).value == kind]
            crash_kinds[kind] = _classifier_ranking(
                f"crash: {kind}", [t.config for t in subset],
                [t.status is Status.CRASHED for t in subset], space, seed, kind)
    crash_labels = [{(t.crash_kind or CrashKind.RUNTIME_ERROR).value}
                    if t.status is Status.CRASHED else set() for t in judged]
    crash_rules = _rules(configs, crash_labels, space, seed)
    # ---- infeasibility: the trials that ran (aborted ones only when a constraint stopped them)
    ran = [t for t in known if t.status in (Status.FEASIBLE, Status.INFEASIBLE)
           or (t.status is Status.ABORTED and _violated(t))]
    ran_configs = [t.config for t in ran]
    infeasible = [t.status is not Status.FEASIBLE and bool(_violated(t)) for t in ran]
    if not any(t.violations for t in ran) and not names:
        infeasibility = Ranking("infeasibility", {}, len(ran), 0, _FOREST_METHOD,
                                "the study has no constraints")
    else:
        infeasibility = _classifier_ranking("infeasibility", ran_configs, infeasible, space,
                                            seed, "infeasible")
    labels_seen = sorted({k for t in ran for k in t.violations} | set(names))
    per_constraint: dict[str, Ranking] = {}
    if infeasibility.available and len(labels_seen) > 1:
        for label in labels_seen:
            text = names.get(label, label)
            violated = [label in _violated(t) for t in ran]
            if sum(violated) >= MIN_CLASS_EXAMPLES:
                per_constraint[text] = _classifier_ranking(
                    f"violates {text}", ran_configs, violated, space, seed,
                    f"violating {text}")
    binding_counts = Counter(names.get(_binding(t), _binding(t))
                             for t, bad in zip(ran, infeasible, strict=True) if bad)
    binding = dict(sorted(binding_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    violation_labels = [{f"violates {names.get(k, k)}" for k in _violated(t)} for t in ran]
    infeasibility_rules = _rules(ran_configs, violation_labels, space, seed)
    return ImportanceReport(
        objective=_objective_ranking(known, space, objective, seed),
        crash=crash, crash_kinds=crash_kinds, crash_rules=crash_rules,
        infeasibility=infeasibility, constraints=per_constraint, binding=binding,
        infeasibility_rules=infeasibility_rules, objective_metric=objective.metric,
        n_trials=len(known), seed=seed, params=space.names)


def _space_of(study: optuna.Study) -> Space:
    """The study's space from its ``dt.setup``, else from the trials' distributions."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    setup = study.user_attrs.get(ATTR_SETUP)
    if isinstance(setup, dict) and isinstance(setup.get("space"), dict):
        try:
            return Space.from_dict(setup["space"])
        except ValueError:
            pass
    params: dict[str, Param] = {}
    for t in study.get_trials(deepcopy=False):
        for name, d in t.distributions.items():
            if name in params:
                continue
            if isinstance(d, CategoricalDistribution):
                params[name] = Categorical(name, {}, tuple(d.choices))
            elif isinstance(d, IntDistribution):
                params[name] = Int(name, {}, int(d.low), int(d.high), d.log)
            elif isinstance(d, FloatDistribution):
                params[name] = Float(name, {}, float(d.low), float(d.high), d.log)
    if not params:
        raise ValueError(f"study {study.study_name!r} has no trial with parameters")
    return Space(list(params.values()))


def importance_of_study(study: optuna.Study, *, seed: int = 0) -> ImportanceReport:
    """:func:`importance` of a study written by :func:`deploytune.optimize`.

    The objective, constraints and space are read from the study's ``dt.setup`` attribute
    (the space falls back to the trials' distributions).

    Raises:
        ValueError: When the study was not written by deploytune (no objective recorded).
    """
    from deploytune.analysis.summary import load_result

    result = load_result(study)
    space = _space_of(study)
    return importance(result.trials, space, result.objective, constraints=result.constraints,
                      seed=seed)


# ----------------------------------------------------------------------------------- render


def _bar(share: float, width: int = 20) -> str:
    full = share * width
    return "█" * int(full) + ("▌" if full - int(full) >= 0.5 else "")


def _ranking_table(main: Ranking, subs: Sequence[Ranking], params: Sequence[str]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("parameter")
    table.add_column(Text(main.target.split(": ")[0] if subs else "share"), justify="right")
    table.add_column("")
    for s in subs:
        table.add_column(Text(s.target.removeprefix("crash: ")), justify="right")
    for name in [*main.importances, *(p for p in params if p not in main.importances)]:
        share = main.importances.get(name, 0.0)
        cells: list[Any] = [Text(name), f"{share:.1%}", _bar(share)]
        cells += [f"{s.importances[name]:.1%}" if name in s.importances else "-" for s in subs]
        table.add_row(*cells)
    return table


def render_importance(report: ImportanceReport, console: Console) -> None:
    """Print the three rankings as rich tables, with the rules and the binding constraints.

    Parameter, metric and constraint names are printed as they are, never read as markup.

    Args:
        report: What :func:`importance` returned.
        console: Where to print.
    """
    from rich.text import Text

    console.rule(f"parameter importance ({report.n_trials} evaluations, seed {report.seed})")
    sections: list[tuple[str, Ranking, list[Ranking], list[Rule], str]] = [
        (f"objective: {report.objective_metric} among feasible trials", report.objective, [],
         [], ""),
        ("crash: crashed vs not crashed", report.crash, list(report.crash_kinds.values()),
         report.crash_rules, "crash rules (shallow decision tree)"),
        ("infeasibility: violated vs feasible among trials that ran", report.infeasibility,
         list(report.constraints.values()), report.infeasibility_rules,
         "infeasibility rules (shallow decision tree)"),
    ]
    for title, main, subs, rules, rules_title in sections:
        console.print(Text.assemble((title, "bold"), f" ({main.counts_text}; {main.method})"))
        if not main.available:
            console.print(Text(f"  no ranking: {main.note}", style="yellow"))
        else:
            avail = [s for s in subs if s.available]
            console.print(_ranking_table(main, avail, report.params))
            for s in subs:
                if not s.available:
                    console.print(Text(f"  {s.target}: no ranking: {s.note}", style="yellow"))
        if rules:
            console.print(Text(rules_title, style="bold"))
            for rule in rules:
                console.print(Text(f"  {rule}"), highlight=False)
        if main is report.infeasibility and report.binding:
            console.print(Text("binding constraints (most violated in each infeasible trial): "
                               + ", ".join(f"{c} ({n})" for c, n in report.binding.items())),
                          highlight=False)


def write_importance_figure(report: ImportanceReport, path: Path) -> Path:
    """Draw the three rankings as horizontal bar panels into the PNG ``path``.

    A panel without a ranking shows why. The folder is created if needed; matplotlib is drawn
    through its Agg canvas, leaving the process's backend alone. Names are drawn as they are
    (a ``$`` in a parameter or metric name never starts mathtext).

    Returns:
        ``path``.
    """
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False}):
        return _draw_importance(report, path)


def _draw_importance(report: ImportanceReport, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deploytune.analysis.report import mpl_text

    rows = max(len(report.params), 3)
    fig = Figure(figsize=(13.0, 1.2 + 0.35 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    colors = ["#2ca02c", "#d62728", "#ff7f0e"]
    titles = [f"objective: {mpl_text(report.objective_metric)}\n(feasible trials)",
              "crash\n(crashed vs not)", "infeasibility\n(violated vs feasible)"]
    axes = fig.subplots(1, 3)
    for ax, ranking, color, title in zip(axes, report.rankings, colors, titles, strict=True):
        ax.set_title(f"{title}, {ranking.counts_text}", fontsize="medium")
        if not ranking.available:
            ax.text(0.5, 0.5, mpl_text("\n".join(_wrap(f"no ranking: {ranking.note}", 34))),
                    transform=ax.transAxes, ha="center", va="center", color="#555555")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        names = list(ranking.importances)[::-1]
        shares = [ranking.importances[n] for n in names]
        ax.barh(range(len(names)), shares, color=color)
        ax.set_yticks(range(len(names)), labels=[mpl_text(n) for n in names])
        ax.set_xlim(0, max(shares) * 1.25)
        ax.set_xlabel("share of importance")
        for y, share in enumerate(shares):
            ax.text(share, y, f" {share:.0%}", va="center", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
