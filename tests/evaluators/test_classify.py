"""Tests of crash classification: precedence of timeout, user rules, evaluator kinds, builtins."""

from __future__ import annotations

import pytest

from deploytune.evaluators.base import Evaluation
from deploytune.evaluators.classify import BUILTIN_RULES, Rule, classify, parse_rules
from deploytune.outcome import CrashKind

PORT = Rule("Address already in use", CrashKind.TRANSIENT)


def crash(error: str, kind: CrashKind | None = None, log: str = "") -> Evaluation:
    return Evaluation(error=error, crash_kind=kind, log=log)


def test_no_error_is_no_crash() -> None:
    assert classify(Evaluation({"x": 1.0})) is None
    assert classify(Evaluation({}, aborted="too slow")) is None


def test_timeout_wins_over_everything() -> None:
    ev = crash("timed out after 2 s (process group killed)", CrashKind.TIMEOUT,
               log="MemoryError\nAddress already in use")
    assert classify(ev, [PORT, Rule(".*", CrashKind.INVALID_CONFIG)]) is CrashKind.TIMEOUT


def test_user_rules_come_before_builtin_rules_and_in_order() -> None:
    ev = crash("MemoryError: Address already in use")
    assert classify(ev) is CrashKind.OOM
    assert classify(ev, [PORT]) is CrashKind.TRANSIENT
    rules = [Rule("MemoryError", CrashKind.INVALID_CONFIG), PORT]
    assert classify(ev, rules) is CrashKind.INVALID_CONFIG


def test_user_rules_see_the_log_tail() -> None:
    ev = crash("exited with code 1", log="--- stderr (tail) ---\nbind: Address already in use\n")
    assert classify(ev, [PORT]) is CrashKind.TRANSIENT
    assert classify(ev) is CrashKind.RUNTIME_ERROR


def test_user_rules_come_before_what_the_evaluator_knew() -> None:
    ev = crash("InvalidConfig: port taken", CrashKind.INVALID_CONFIG)
    assert classify(ev) is CrashKind.INVALID_CONFIG
    assert classify(ev, [Rule("port taken", CrashKind.TRANSIENT)]) is CrashKind.TRANSIENT


def test_evaluator_kind_comes_before_builtin_rules() -> None:
    ev = crash("InvalidConfig: out of memory would follow", CrashKind.INVALID_CONFIG)
    assert classify(ev) is CrashKind.INVALID_CONFIG
    ev = crash("killed by SIGKILL, not sent by deploytune", CrashKind.OOM)
    assert classify(ev) is CrashKind.OOM


@pytest.mark.parametrize("text", [
    "MemoryError",
    "terminate called after throwing an instance of 'std::bad_alloc'",
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "torch.OutOfMemoryError: ...",
    "mmap: Cannot allocate memory",
    "memory allocation of 1024 bytes failed",
])
def test_builtin_rules_find_oom(text: str) -> None:
    assert classify(crash("killed by signal SIGABRT (aborted)", CrashKind.RUNTIME_ERROR,
                          log=text)) is CrashKind.OOM
    assert any(rule.matches(text) for rule in BUILTIN_RULES)


def test_default_is_runtime_error() -> None:
    assert classify(crash("exited with code 3")) is CrashKind.RUNTIME_ERROR
    assert classify(crash("killed by signal SIGSEGV", CrashKind.RUNTIME_ERROR)) \
        is CrashKind.RUNTIME_ERROR


def test_ignore_case_and_kind_given_as_text() -> None:
    rule = Rule("address ALREADY in use", "transient", ignore_case=True)  # type: ignore[arg-type]
    assert rule.kind is CrashKind.TRANSIENT
    assert classify(crash("Address already in use"), [rule]) is CrashKind.TRANSIENT
    assert not Rule("address ALREADY in use", CrashKind.TRANSIENT).matches(
        "Address already in use")


def test_invalid_regex_names_the_pattern_and_the_fix() -> None:
    with pytest.raises(ValueError) as info:
        Rule("CUDA error (", CrashKind.RUNTIME_ERROR)
    text = str(info.value)
    assert "'CUDA error ('" in text and "not a valid regular expression" in text
    assert "backslash" in text


def test_parse_rules() -> None:
    rules = parse_rules([{"pattern": "CUDA out of memory", "kind": "oom"},
                         {"pattern": "port", "kind": "transient", "ignore_case": True},
                         PORT])
    assert rules == [Rule("CUDA out of memory", CrashKind.OOM),
                     Rule("port", CrashKind.TRANSIENT, True), PORT]
    assert parse_rules(None) == []


@pytest.mark.parametrize(("rules", "message"), [
    ([{"pattern": "x"}], r"rules\[0\]: expected a mapping with 'pattern' and 'kind'"),
    ([PORT, "oom"], r"rules\[1\]: expected a mapping"),
    ([{"pattern": "x", "kind": "segfault"}], r"crash kind 'segfault' is unknown; use one of "
                                              r"invalid_config, oom, timeout"),
    ([{"pattern": "(", "kind": "oom"}], "not a valid regular expression"),
])
def test_parse_rules_errors(rules: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules(rules)  # type: ignore[arg-type]
