"""Crash classification: turning an error text into a :class:`~deploytune.outcome.CrashKind`.

Order of precedence, first match wins:

1. a timeout the evaluator enforced is always ``timeout``;
2. the user's :class:`Rule` list, in order (regular expressions over the error message and the
   log tail), e.g. ``"CUDA out of memory" -> oom``, ``"Address already in use" -> transient``;
3. the built-in rules (:data:`BUILTIN_RULES`): allocator failures, ``std::bad_alloc``,
   ``MemoryError`` and friends are ``oom``;
4. what the evaluator already knew (an exception class, a signal);
5. ``runtime_error``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploytune.evaluators.base import Evaluation
from deploytune.outcome import CrashKind

__all__ = ["BUILTIN_RULES", "Rule", "classify", "parse_rules"]


@dataclass(frozen=True)
class Rule:
    """Map error text matching ``pattern`` (a regular expression, searched) to ``kind``.

    Attributes:
        pattern: A Python regular expression, matched with ``re.search``.
        kind: The crash kind to assign.
        ignore_case: Match case-insensitively.
    """

    pattern: str
    kind: CrashKind
    ignore_case: bool = False

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"rule pattern {self.pattern!r} is not a valid regular expression: "
                             f"{exc}; escape special characters such as ( [ . * with a "
                             f"backslash") from None
        if not isinstance(self.kind, CrashKind):
            object.__setattr__(self, "kind", _kind(self.kind))

    def matches(self, text: str) -> bool:
        """Whether the pattern occurs in ``text``."""
        flags = re.IGNORECASE if self.ignore_case else 0
        return re.search(self.pattern, text, flags) is not None


def _kind(value: Any) -> CrashKind:
    try:
        return CrashKind(value)
    except ValueError:
        choices = ", ".join(k.value for k in CrashKind)
        raise ValueError(f"crash kind {value!r} is unknown; use one of {choices}") from None


BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(r"\bMemoryError\b", CrashKind.OOM),
    Rule(r"std::bad_alloc", CrashKind.OOM),
    Rule(r"[Oo]ut of memory|OutOfMemory", CrashKind.OOM),
    Rule(r"Cannot allocate memory|can't allocate memory|[Ff]ailed to allocate", CrashKind.OOM),
    Rule(r"memory allocation (of \d+ bytes )?failed|Killed by the kernel OOM", CrashKind.OOM),
)
"""Rules applied after the user's: the common ways a process reports running out of memory."""


def parse_rules(rules: Iterable[Rule | Mapping[str, Any]] | None) -> list[Rule]:
    """Rules from :class:`Rule` objects or ``{"pattern": ..., "kind": ...}`` mappings."""
    out: list[Rule] = []
    for i, r in enumerate(rules or ()):
        if isinstance(r, Rule):
            out.append(r)
            continue
        if not isinstance(r, Mapping) or "pattern" not in r or "kind" not in r:
            raise ValueError(f"rules[{i}]: expected a mapping with 'pattern' and 'kind', e.g. "
                             f"{{pattern: 'CUDA out of memory', kind: oom}}")
        out.append(Rule(str(r["pattern"]), _kind(r["kind"]), bool(r.get("ignore_case", False))))
    return out


def classify(evaluation: Evaluation, rules: Sequence[Rule] = ()) -> CrashKind | None:
    """The crash kind of ``evaluation``; ``None`` if it did not crash."""
    if evaluation.error is None:
        return None
    if evaluation.crash_kind is CrashKind.TIMEOUT:
        return CrashKind.TIMEOUT
    text = evaluation.error + "\n" + evaluation.log
    for rule in rules:
        if rule.matches(text):
            return rule.kind
    if evaluation.crash_kind is not None and evaluation.crash_kind is not CrashKind.RUNTIME_ERROR:
        return evaluation.crash_kind
    for rule in BUILTIN_RULES:
        if rule.matches(text):
            return rule.kind
    return evaluation.crash_kind or CrashKind.RUNTIME_ERROR
