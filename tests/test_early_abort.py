"""Tests of the early-abort rule (the paper's trial timeout on streamed measurements)."""

from __future__ import annotations

import pytest

from deploytune.early_abort import EarlyAbort, parse_early_abort
from deploytune.outcome import Constraint
from deploytune.setting_error import SettingError

CAP = [Constraint.parse("p95_ms <= 20"), Constraint.parse("throughput >= 100")]


def test_k_is_5_before_a_feasible_trial_and_3_after() -> None:
    rule = EarlyAbort()
    assert rule.reason({"p95_ms": 99.0}, CAP, any_feasible=False) is None
    assert rule.reason({"p95_ms": 101.0}, CAP, any_feasible=False) is not None
    assert rule.reason({"p95_ms": 59.0}, CAP, any_feasible=True) is None
    reason = rule.reason({"p95_ms": 61.0}, CAP, any_feasible=True)
    assert reason is not None and "p95_ms" in reason and "3 x" in reason


def test_floors_and_missing_metrics_never_abort() -> None:
    rule = EarlyAbort()
    assert rule.reason({"throughput": 0.001}, CAP, any_feasible=True) is None
    assert rule.reason({"other": 1e9}, CAP, any_feasible=True) is None


def test_switched_off() -> None:
    assert parse_early_abort(False).reason({"p95_ms": 1e9}, CAP, True) is None


def test_parse_forms_and_errors() -> None:
    assert parse_early_abort(None) == EarlyAbort()
    assert parse_early_abort(True) == EarlyAbort()
    assert parse_early_abort({"after_feasible": 2}).after_feasible == 2
    assert parse_early_abort({"promote_below": 0.2}).promote_below == 0.2
    with pytest.raises(ValueError, match="early_abort: unknown key"):
        parse_early_abort({"k": 2})
    with pytest.raises(ValueError, match="before_feasible"):
        parse_early_abort({"before_feasible": 0.5})
    with pytest.raises(ValueError, match="expected true, false"):
        parse_early_abort("yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(("settings", "path"), [
    ({"before_feasible": 0.5}, ("before_feasible",)),
    ({"after_feasible": float("nan")}, ("after_feasible",)),
    ({"after_feasible": 10 ** 400}, ("after_feasible",)),  # no OverflowError
    ({"before_feasible": True}, ("before_feasible",)),
    ({"enabled": "no"}, ("enabled",)),
    ({"promote_below": 1.0}, ("promote_below",)),
    ({"promote_below": "often"}, ("promote_below",)),
    ({"min_pairs": 1}, ("min_pairs",)),
    ({"min_pairs": 2.5}, ("min_pairs",)),
])
def test_settings_are_checked_by_the_rule_itself(settings: dict[str, object],
                                                 path: tuple[str, ...]) -> None:
    with pytest.raises(SettingError) as info:
        EarlyAbort(**settings)  # type: ignore[arg-type]
    assert info.value.path == path
    assert str(info.value).startswith(f"{path[0]}: ") and "early_abort" not in str(info.value)
