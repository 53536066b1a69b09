"""The spec's schema as data: the keys of each section, limits and patterns of values.

The keys of a section that a class takes as its settings are that class's fields
(:func:`dataclasses.fields`), never a copy of them.
"""

from __future__ import annotations

import re
from dataclasses import fields

from deploytune.early_abort import EarlyAbort
from deploytune.evaluators.classify import Rule
from deploytune.validation import Validation

DEFAULT_STUDY_NAME = "deploytune"
"""The study name (and storage file stem) of a spec not read from a file."""
PRUNERS = ("none", "median", "successive_halving", "hyperband")
"""Accepted values of ``pruner``."""

TOP_KEYS = ("study", "space", "forbidden", "objective", "constraints", "evaluator",
            "early_abort", "pruner", "budget", "sampler", "seed", "storage", "confidence",
            "validation", "resources")
REQUIRED = ("space", "objective", "evaluator", "budget")
REQUIRED_EXAMPLES = {
    "space": "e.g. space: {batch_size: {type: int, low: 1, high: 64}}",
    "objective": "e.g. objective: {metric: accuracy, direction: maximize}",
    "evaluator": "e.g. evaluator: {python: my_package.bench:evaluate}",
    "budget": "e.g. budget: 25 (trials) or budget: {trials: 25, seconds: 3600}",
}
EVALUATOR_KEYS = ("python", "command", "server", "load", "isolate", "cwd", "env", "timeout_s",
                  "memory_mb", "retries", "rules", "estimate")
COMMAND_KEYS = ("argv", "env", "metrics_file")
RULE_KEYS = tuple(f.name for f in fields(Rule))
BUDGET_KEYS = ("trials", "seconds")
SAMPLER_KEYS = ("name", "options")
OBJECTIVE_KEYS = ("metric", "direction", "maximize", "minimize")
EARLY_ABORT_KEYS = tuple(f.name for f in fields(EarlyAbort))
VALIDATION_KEYS = tuple(f.name for f in fields(Validation))
MISPLACED = {
    "": {"python": "evaluator", "command": "evaluator", "isolate": "evaluator",
         "cwd": "evaluator", "env": "evaluator", "timeout_s": "evaluator",
         "memory_mb": "evaluator", "retries": "evaluator", "rules": "evaluator",
         "argv": "evaluator.command", "metrics_file": "evaluator.command",
         "trials": "budget", "seconds": "budget", "metric": "objective",
         "direction": "objective", "maximize": "objective", "minimize": "objective",
         "options": "sampler", "before_feasible": "early_abort",
         "after_feasible": "early_abort", "finalists": "validation",
         "repeats": "validation", "during_search": "validation"},
    "evaluator": {"argv": "evaluator.command", "metrics_file": "evaluator.command",
                  "pattern": "an entry of evaluator.rules",
                  "kind": "an entry of evaluator.rules",
                  "early_abort": "the top level", "budget": "the top level",
                  "sampler": "the top level", "seed": "the top level"},
}
"""Where a key that is unknown in a section (``""``: the top level) belongs instead."""
MAX_TRIALS = 1_000_000
MAX_SEED = 2**32 - 1
MAX_DEPTH = 50
MAX_STUDY_NAME = 128
TARGET_RE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.DOTALL)
