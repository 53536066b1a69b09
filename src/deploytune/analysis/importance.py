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

:func:`write_importance_figure` draws the rankings as three horizontal bar panels (matplotlib
is imported only there); the command line prints them as rich tables
(:func:`deploytune.cli.render_analysis.render_importance`).

The work is shared among private modules: ``_features`` (configurations as a feature matrix:
the samplers' one-hot encoding, numbers in their own units), ``_rankings`` (fANOVA and the
forests) and ``_rules`` (the trees' rules); the result types live in
:mod:`deploytune.analysis.importance_report`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from deploytune.analysis._rankings import (
    FOREST_METHOD,
    MIN_CLASS_EXAMPLES,
    MIN_FEASIBLE,
    classifier_ranking,
    objective_ranking,
)
from deploytune.analysis._rules import MAX_RULES, RULES_PER_OUTCOME, rules
from deploytune.analysis.importance_figure import write_importance_figure
from deploytune.analysis.importance_report import ImportanceReport, Ranking, Rule
from deploytune.analysis.loading import load_result
from deploytune.history import ATTR_SETUP
from deploytune.outcome import Constraint, CrashKind, Objective, Status, constraint_label
from deploytune.space import Categorical, Float, Int, Param, Space
from deploytune.tuner import TrialRecord

if TYPE_CHECKING:
    import optuna

__all__ = [
    "MAX_RULES",
    "MIN_CLASS_EXAMPLES",
    "MIN_FEASIBLE",
    "RULES_PER_OUTCOME",
    "ImportanceReport",
    "Ranking",
    "Rule",
    "importance",
    "importance_of_study",
    "write_importance_figure",
]


class _Part(NamedTuple):
    """One target's share of a report: its ranking, those per outcome, its rules and (for
    infeasibility) the binding counts."""

    ranking: Ranking
    by_outcome: dict[str, Ranking]
    rules: list[Rule]
    binding: dict[str, int]


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
    crash = _crash_part(known, space, seed)
    infeasibility = _infeasibility_part(known, names, space, seed)
    return ImportanceReport(
        objective=objective_ranking(known, space, objective, seed),
        crash=crash.ranking, crash_kinds=crash.by_outcome, crash_rules=crash.rules,
        infeasibility=infeasibility.ranking, constraints=infeasibility.by_outcome,
        binding=infeasibility.binding, infeasibility_rules=infeasibility.rules,
        objective_metric=objective.metric, n_trials=len(known), seed=seed,
        params=space.names)


def _kind(rec: TrialRecord) -> str:
    """The crash kind of a crashed trial (``runtime_error`` when none was recorded)."""
    return (rec.crash_kind or CrashKind.RUNTIME_ERROR).value


def _crash_part(known: Sequence[TrialRecord], space: Space, seed: int) -> _Part:
    """Crashed vs not among every evaluation that says something about its configuration
    (transient failures do not), then each crash kind with enough examples vs not crashed."""
    judged = [t for t in known if t.crash_kind is not CrashKind.TRANSIENT]
    configs = [t.config for t in judged]
    crashed = [t.status is Status.CRASHED for t in judged]
    crash = classifier_ranking("crash", configs, crashed, space, seed, "crashed")
    kinds = Counter(_kind(t) for t in judged if t.status is Status.CRASHED)
    crash_kinds: dict[str, Ranking] = {}
    if crash.available and len(kinds) > 1:
        for kind in (k.value for k in CrashKind):
            if kinds.get(kind, 0) < MIN_CLASS_EXAMPLES:
                continue
            subset = [t for t in judged if t.status is not Status.CRASHED or _kind(t) == kind]
            crash_kinds[kind] = classifier_ranking(
                f"crash: {kind}", [t.config for t in subset],
                [t.status is Status.CRASHED for t in subset], space, seed, kind)
    crash_labels = [{_kind(t)} if t.status is Status.CRASHED else set() for t in judged]
    return _Part(crash, crash_kinds, rules(configs, crash_labels, space, seed), {})


def _infeasibility_part(known: Sequence[TrialRecord], names: Mapping[str, str], space: Space,
                        seed: int) -> _Part:
    """Violated vs feasible among the trials that ran (aborted ones only when a constraint
    stopped them), then each constraint with enough violations, and the binding counts."""
    ran = [t for t in known if t.status in (Status.FEASIBLE, Status.INFEASIBLE)
           or (t.status is Status.ABORTED and _violated(t))]
    ran_configs = [t.config for t in ran]
    infeasible = [t.status is not Status.FEASIBLE and bool(_violated(t)) for t in ran]
    if not any(t.violations for t in ran) and not names:
        infeasibility = Ranking("infeasibility", {}, len(ran), 0, FOREST_METHOD,
                                "the study has no constraints")
    else:
        infeasibility = classifier_ranking("infeasibility", ran_configs, infeasible, space,
                                           seed, "infeasible")
    labels_seen = sorted({k for t in ran for k in t.violations} | set(names))
    per_constraint: dict[str, Ranking] = {}
    if infeasibility.available and len(labels_seen) > 1:
        for label in labels_seen:
            text = names.get(label, label)
            violated = [label in _violated(t) for t in ran]
            if sum(violated) >= MIN_CLASS_EXAMPLES:
                per_constraint[text] = classifier_ranking(
                    f"violates {text}", ran_configs, violated, space, seed,
                    f"violating {text}")
    binding_counts = Counter(names.get(_binding(t), _binding(t))
                             for t, bad in zip(ran, infeasible, strict=True) if bad)
    binding = dict(sorted(binding_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    violation_labels = [{f"violates {names.get(k, k)}" for k in _violated(t)} for t in ran]
    return _Part(infeasibility, per_constraint, rules(ran_configs, violation_labels, space, seed),
                 binding)


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
    result = load_result(study)
    space = _space_of(study)
    return importance(result.trials, space, result.objective, constraints=result.constraints,
                      seed=seed)


