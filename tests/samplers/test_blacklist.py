"""Value-level and 2-way combination blacklisting (tba_spec.md 4.2)."""

from __future__ import annotations

import deploytune
from deploytune.samplers.blacklist import BlacklistTracker

SPACE = deploytune.Space.from_dict({
    "model": {"type": "categorical", "choices": ["a", "b", "c"]},
    "quant": {"type": "categorical", "choices": ["fp32", "int8"]},
    "backend": {"type": "categorical", "choices": ["eager", "ort"]},
    "batch": {"type": "int", "low": 1, "high": 8},
})


def cfg(model: str = "a", quant: str = "fp32", backend: str = "eager") -> dict[str, object]:
    return {"model": model, "quant": quant, "backend": backend, "batch": 1}


def test_value_blacklisted_after_three_consecutive_failures_not_two() -> None:
    tr = BlacklistTracker(SPACE, combos=False)
    tr.record(cfg(model="b"), True, 0)
    tr.record(cfg(model="b"), True, 1)
    assert "b" in tr.allowed_values(2)["model"]
    tr.record(cfg(model="b"), True, 2)
    assert "b" not in tr.allowed_values(3)["model"]
    assert ("model", "b") in tr.blacklisted_values(3)


def test_success_resets_counter_and_unblacklists_immediately() -> None:
    tr = BlacklistTracker(SPACE, combos=False)
    for t in range(3):
        tr.record(cfg(model="b"), True, t)
    assert "b" not in tr.allowed_values(3)["model"]
    tr.record(cfg(model="b"), False, 3)
    assert "b" in tr.allowed_values(4)["model"]
    tr.record(cfg(model="b"), True, 4)
    tr.record(cfg(model="b"), True, 5)
    assert "b" in tr.allowed_values(6)["model"]  # counter restarted from zero


def test_cooldown_releases_exactly_after_eight_trials() -> None:
    tr = BlacklistTracker(SPACE, combos=False, cooldown=8)
    for t in range(3):
        tr.record(cfg(model="c"), True, t)
    assert "c" not in tr.allowed_values(2 + 7)["model"]
    assert "c" in tr.allowed_values(2 + 8)["model"]


def test_failure_after_release_starts_a_new_streak() -> None:
    tr = BlacklistTracker(SPACE, combos=False, cooldown=8)
    for t in range(3):
        tr.record(cfg(model="c"), True, t)
    tr.record(cfg(model="c"), True, 20)  # released at 10: this is failure 1 of a new streak
    assert "c" in tr.allowed_values(21)["model"]


def test_safety_valve_allows_all_values_when_all_blacklisted() -> None:
    tr = BlacklistTracker(SPACE, combos=False)
    t = 0
    for q in ("fp32", "int8"):
        for _ in range(3):
            tr.record(cfg(quant=q), True, t)
            t += 1
    assert sorted(tr.allowed_values(t)["quant"]) == ["fp32", "int8"]


def test_every_value_of_a_failing_config_is_tracked_independently() -> None:
    tr = BlacklistTracker(SPACE, combos=False)
    for t in range(3):
        tr.record(cfg("b", "int8", "ort"), True, t)
    allowed = tr.allowed_values(3)
    assert "b" not in allowed["model"] and "int8" not in allowed["quant"]
    assert "ort" not in allowed["backend"]


def test_combination_blacklisting_blocks_only_the_pair() -> None:
    tr = BlacklistTracker(SPACE, values=False)
    t = 0
    for model in ("a", "b", "c"):  # int8+ort fails with every model
        tr.record(cfg(model, "int8", "ort"), True, t)
        t += 1
    assert tr.has_blocked_combos(t)
    assert tr.is_blocked(cfg("a", "int8", "ort"), t)
    assert not tr.is_blocked(cfg("a", "int8", "eager"), t)
    assert not tr.is_blocked(cfg("a", "fp32", "ort"), t)
    assert not tr.is_blocked(cfg("a", "int8", "ort"), t + 8)  # cooldown


def test_lookups_do_not_change_state() -> None:
    a, b = BlacklistTracker(SPACE), BlacklistTracker(SPACE)
    for t in range(3):
        a.record(cfg(model="b"), True, t)
        b.record(cfg(model="b"), True, t)
    for t in range(3, 30):
        a.allowed_values(t)
        a.is_blocked(cfg(model="b"), t)
    a.record(cfg(model="b"), True, 30)
    b.record(cfg(model="b"), True, 30)
    assert a.snapshot(31) == b.snapshot(31)
