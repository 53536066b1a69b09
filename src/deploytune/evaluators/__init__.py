"""Evaluators: run one configuration and report what happened.

* :class:`FunctionEvaluator`: a Python function in this process (fast, not isolated);
* :class:`~deploytune.evaluators.isolated.IsolatedEvaluator`: a Python function in a fresh child
  process with a wall-clock limit, a memory cap and process-group kill;
* :class:`~deploytune.evaluators.command.CommandEvaluator`: an external command from an argv
  template, metrics read as JSON.

Classification of crashes (:mod:`deploytune.evaluators.classify`) and the judging of metrics
happen in the tuner, the same for every evaluator.
"""

from __future__ import annotations

from deploytune.evaluators.base import (
    AbortTrial,
    Evaluation,
    Evaluator,
    FunctionEvaluator,
    Monitor,
)
from deploytune.evaluators.classify import BUILTIN_RULES, Rule, classify, parse_rules

__all__ = [
    "BUILTIN_RULES",
    "AbortTrial",
    "Evaluation",
    "Evaluator",
    "FunctionEvaluator",
    "Monitor",
    "Rule",
    "classify",
    "parse_rules",
]
