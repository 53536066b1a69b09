"""The YAML spec file: one validated, immutable description of a tuning study.

A spec file names the search space, the objective and the constraints, how to evaluate a
configuration, and the budget. :func:`load_spec` reads it and validates *everything* up front:
the space, the constraints, the sampler and its options (by building the sampler once), the
evaluator (by importing the Python target or finding the command's executable, and checking
the command's ``{placeholders}`` against the space). A mistake raises :class:`SpecError`,
whose message names the field (``evaluator.command.argv[2]``, ``space.threads.low``,
``constraints[1]``) and says how to fix it; loading never raises anything else.

Example:
    .. code-block:: yaml

        study: resnet-serving
        space:
          backend: {type: categorical, choices: [eager, onnx]}
          batch_size: {type: int, low: 1, high: 64, log: true}
          threads: {type: int, low: 1, high: 8, when: {backend: [eager]}}
        forbidden:
          - {backend: [onnx], batch_size: [64]}
        objective: {maximize: throughput}
        constraints: ["p95_ms <= 20", "memory_mb <= 512"]
        evaluator:
          python: bench.serve:evaluate
          timeout_s: 60
          rules: [{pattern: "CUDA out of memory", kind: oom}]
        budget: 25
        sampler: tba-tpe
        seed: 0

    >>> spec = load_spec("study.yaml")
    >>> evaluator = spec.build_evaluator()
"""

from __future__ import annotations

# The constants are public too, but (as before the split) not listed in ``__all__``: the
# ``X as X`` form re-exports them.
from deploytune.spec.errors import STRING_SOURCE as STRING_SOURCE
from deploytune.spec.errors import SpecError
from deploytune.spec.loading import load_spec, parse_spec_text
from deploytune.spec.model import EvaluatorSpec, Spec
from deploytune.spec.parser import parse_spec
from deploytune.spec.schema import DEFAULT_STUDY_NAME as DEFAULT_STUDY_NAME
from deploytune.spec.schema import PRUNERS as PRUNERS

__all__ = [
    "EvaluatorSpec",
    "Spec",
    "SpecError",
    "load_spec",
    "parse_spec",
    "parse_spec_text",
]
