"""Readable rules from shallow one-vs-rest decision trees, such as
``mode = bad -> invalid_config (6/6)``: the leaves where an outcome (a crash kind, a violated
constraint) is the majority, each with the count of that outcome among the trials in it.

scikit-learn is imported inside :func:`rules`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deploytune.analysis._features import INACTIVE, Column, FeatureMatrix
from deploytune.analysis.importance_report import Rule
from deploytune.samplers._encoding import same_value
from deploytune.space import Categorical, Config, Float, Int, Param, Space

__all__ = ["MAX_RULES", "RULES_PER_OUTCOME", "rules"]

MAX_RULES = 6
"""Most rules kept per target (crash, infeasibility)."""
RULES_PER_OUTCOME = 3
"""Most rules kept per outcome (a crash kind, a violated constraint)."""

_RULE_DEPTH = 3
_RULE_PRUNING = 0.02
_MIN_LEAF = 2


def _fmt_value(v: Any) -> str:
    """A categorical value as a rule writes it (``true``, ``null``, ``0.125``)."""
    if v is INACTIVE:
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

    def __init__(self, features: FeatureMatrix) -> None:
        self.features = features
        self.allowed: dict[str, list[Any]] = {}
        self.bounds: dict[str, tuple[float | None, float | None]] = {}

    def copy(self) -> _PathState:
        """An independent copy (for one child of a split)."""
        other = _PathState(self.features)
        other.allowed = {k: list(v) for k, v in self.allowed.items()}
        other.bounds = dict(self.bounds)
        return other

    def split(self, col: Column, threshold: float, left: bool) -> None:
        """Follow the ``left`` (``<= threshold``) or right side of a split of ``col``."""
        p = col.param
        if isinstance(p, Categorical):
            values = self.allowed.get(p.name)
            if values is None:
                values = list(p.choices) + ([INACTIVE] if self.features.conditional[p.name]
                                            else [])
            # one-hot <= 0.5 (left): any value but this one; > 0.5: this value
            self.allowed[p.name] = ([v for v in values if not same_value(v, col.value)]
                                    if left else [col.value])
            return
        lo, hi = self.bounds.get(p.name, (None, None))
        if left:
            hi = threshold if hi is None else min(hi, threshold)
        else:
            lo = threshold if lo is None else max(lo, threshold)
        self.bounds[p.name] = (lo, hi)

    def conditions(self, space: Space) -> tuple[str, ...]:
        """The path as readable conditions, in space order."""
        out: list[str] = []
        for p in space.params:
            if p.name in self.allowed:
                out += self._categorical(p, self.allowed[p.name])
            elif p.name in self.bounds:
                assert isinstance(p, (Int, Float))
                out += self._numeric(p, *self.bounds[p.name], self.features.conditional[p.name])
        return tuple(out)

    def _categorical(self, p: Param, allowed: list[Any]) -> list[str]:
        assert isinstance(p, Categorical)
        every = list(p.choices) + ([INACTIVE] if self.features.conditional[p.name] else [])
        excluded = [v for v in every if not any(same_value(v, a) for a in allowed)]
        if not excluded:
            return []
        if len(allowed) == 1:
            v = allowed[0]
            return [f"{p.name} inactive" if v is INACTIVE else f"{p.name} = {_fmt_value(v)}"]
        if len(excluded) == 1:
            v = excluded[0]
            return [f"{p.name} active" if v is INACTIVE else f"{p.name} != {_fmt_value(v)}"]
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


def _sorted(found: list[Rule], most: int) -> list[Rule]:
    """The ``most`` strongest rules: most support, then purest."""
    found.sort(key=lambda r: (-r.support, -r.purity, str(r)))
    return found[:most]


def _rules_for(configs: Sequence[Config], positive: Sequence[bool], outcome: str,
               space: Space, seed: int) -> list[Rule]:
    """Rules for one outcome: the leaves of a shallow one-vs-rest decision tree where it is
    the majority, siblings that agree merged into their parent."""
    from sklearn.tree import DecisionTreeClassifier

    y = np.asarray(positive, dtype=bool)
    if int(y.sum()) < _MIN_LEAF or int((~y).sum()) < 1:
        return []
    features = FeatureMatrix(space, configs)
    tree = DecisionTreeClassifier(max_depth=_RULE_DEPTH, ccp_alpha=_RULE_PRUNING,
                                  random_state=seed)
    tree.fit(features.matrix, y)
    reach = tree.decision_path(features.matrix).toarray().astype(bool)  # samples x nodes
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

    found: list[Rule] = []
    stack: list[tuple[int, _PathState]] = [(0, _PathState(features))]
    while stack:
        node, state = stack.pop()
        if settled(node):
            pos, total = counts(node)
            conditions = state.conditions(space)
            if majority(node) and pos >= _MIN_LEAF and conditions:
                found.append(Rule(conditions, outcome, pos, total))
            continue
        col = features.columns[int(structure.feature[node])]
        threshold = float(structure.threshold[node])
        for child, is_left in ((int(left_of[node]), True), (int(right_of[node]), False)):
            child_state = state.copy()
            child_state.split(col, threshold, is_left)
            stack.append((child, child_state))
    return _sorted(found, RULES_PER_OUTCOME)


def rules(configs: Sequence[Config], labels: Sequence[set[str]],
          space: Space, seed: int) -> list[Rule]:
    """Rules for every outcome in ``labels`` (each trial's set of outcomes), strongest first.

    Args:
        configs: The configurations.
        labels: Each configuration's outcomes (a crash kind, ``"violates <constraint>"``).
        space: The search space.
        seed: Seeds the trees.

    Returns:
        At most :data:`MAX_RULES` rules, at most :data:`RULES_PER_OUTCOME` per outcome.
    """
    outcomes = sorted(set().union(*labels)) if labels else []
    found = [r for o in outcomes
             for r in _rules_for(configs, [o in lab for lab in labels], o, space, seed)]
    return _sorted(found, MAX_RULES)
