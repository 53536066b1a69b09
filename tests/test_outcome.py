"""Tests of deploytune.outcome: constraints, statuses, crash kinds and judge()."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from deploytune import (
    Constraint,
    CrashKind,
    InvalidConfig,
    Objective,
    Outcome,
    Status,
    TransientError,
)
from deploytune.outcome import crash_kind_of, judge, parse_constraints

# ------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(("text", "metric", "op", "limit"), [
    ("latency_p95_ms <= 20", "latency_p95_ms", "<=", 20.0),
    ("throughput >= 100", "throughput", ">=", 100.0),
    ("latency_p95_ms<=20", "latency_p95_ms", "<=", 20.0),
    ("   mem_mb   <=   1.5e3   ", "mem_mb", "<=", 1500.0),
    ("error_rate <= 1E-3", "error_rate", "<=", 1e-3),
    ("x >= 2.5e+2", "x", ">=", 250.0),
    ("temp_c >= -10", "temp_c", ">=", -10.0),
    ("delta <= -2.5e-3", "delta", "<=", -2.5e-3),
    ("x <= +7", "x", "<=", 7.0),
    ("x <= .5", "x", "<=", 0.5),
    ("x <= 5.", "x", "<=", 5.0),
    ("x <= 0", "x", "<=", 0.0),
    ("x =< 3", "x", "<=", 3.0),
    ("x => 3", "x", ">=", 3.0),
    ("gpu.mem-mb <= 8000", "gpu.mem-mb", "<=", 8000.0),
    ("_private>=1", "_private", ">=", 1.0),
    ("\tlatency\t<=\t20\n", "latency", "<=", 20.0),
])
def test_parse_valid_constraints(text: str, metric: str, op: str, limit: float) -> None:
    c = Constraint.parse(text)
    assert (c.metric, c.op, c.limit) == (metric, op, limit)
    assert isinstance(c.limit, float)
    assert Constraint.parse(str(c)) == c  # str() is parseable


def test_str_of_constraint() -> None:
    assert str(Constraint.parse("latency_p95_ms <= 20")) == "latency_p95_ms <= 20"
    assert str(Constraint.parse("throughput >= 1e2")) == "throughput >= 100"


def test_parse_returns_constraint_objects_unchanged() -> None:
    c = Constraint("lat", "<=", 20.0)
    assert Constraint.parse(c) is c  # type: ignore[arg-type]
    assert parse_constraints([c, "tp >= 1"]) == [c, Constraint("tp", ">=", 1.0)]


CANNOT_PARSE = "write '<metric> <= <number>'"


@pytest.mark.parametrize(("text", "fix"), [
    ("latency_p95_ms < 20", "use <="),
    ("throughput > 100", "use >="),
    ("latency == 20", "use <= or >="),
    ("latency = 20", "use <= or >="),
    ("latency <= fast", CANNOT_PARSE),
    ("<= 20", CANNOT_PARSE),
    ("latency", CANNOT_PARSE),
    ("", CANNOT_PARSE),
    ("   ", CANNOT_PARSE),
    ("20 >= latency", CANNOT_PARSE),
    ("latency <= 20 ms", CANNOT_PARSE),
    ("latency <= 20 and tp >= 3", CANNOT_PARSE),
    ("latency <= inf", CANNOT_PARSE),
    ("latency <= nan", CANNOT_PARSE),
    ("latency != 20", CANNOT_PARSE),
    ("latency <=> 20", CANNOT_PARSE),
    ("latency <= 1e999", "finite"),
    ("__import__('os').system('true') <= 1", CANNOT_PARSE),
    ("latency <= 2*10", CANNOT_PARSE),
])
def test_parse_invalid_constraints_names_text_and_fix(text: str, fix: str) -> None:
    with pytest.raises(ValueError) as info:
        Constraint.parse(text)
    msg = str(info.value)
    assert fix in msg, msg
    if fix != "finite":
        assert repr(text) in msg, msg  # the offending text is quoted
        assert "e.g." in msg or "use" in msg
    else:
        assert "'latency'" in msg


@pytest.mark.parametrize("bad", [20, None, 1.5, ["latency <= 20"]])
def test_parse_non_string(bad: Any) -> None:
    with pytest.raises(ValueError, match="expected a string such as 'latency_p95_ms <= 20'"):
        Constraint.parse(bad)


def test_constraint_constructor_checks() -> None:
    with pytest.raises(ValueError, match=r"'lat'.*'<=' or '>='"):
        Constraint("lat", "<", 20.0)
    with pytest.raises(ValueError, match=r"'lat'.*finite"):
        Constraint("lat", "<=", math.inf)
    with pytest.raises(ValueError, match=r"'lat'.*finite"):
        Constraint("lat", ">=", math.nan)


def test_parse_constraints_forms() -> None:
    assert parse_constraints(None) == []
    assert parse_constraints([]) == []
    assert parse_constraints("lat <= 20") == [Constraint("lat", "<=", 20.0)]
    both = parse_constraints(["lat <= 20", "lat >= 1", "tp >= 100"])
    assert [(c.metric, c.op) for c in both] == [("lat", "<="), ("lat", ">="), ("tp", ">=")]


def test_parse_constraints_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match=r"'lat' already has a '<=' constraint"):
        parse_constraints(["lat <= 20", "lat <= 30"])


def test_parse_constraints_propagates_parse_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("'tp > 3'")):
        parse_constraints(["lat <= 20", "tp > 3"])


# --------------------------------------------------------------------------------- violations


def test_cap_violation_normalised_by_limit() -> None:
    c = Constraint.parse("latency_p95_ms <= 20")
    assert c.violation(30) == pytest.approx(0.5)
    assert c.signed_violation(30) == pytest.approx(0.5)
    assert c.violation(10) == 0.0
    assert c.signed_violation(10) == pytest.approx(-0.5)
    assert c.violation(60) == pytest.approx(2.0)
    assert c.is_met(20) and c.is_met(19.9)
    assert not c.is_met(20.001)
    assert c.margin(15) == pytest.approx(5.0)
    assert c.margin(25) == pytest.approx(-5.0)
    assert c.scale == 20.0


def test_units_do_not_mix() -> None:
    ms = Constraint.parse("latency_ms <= 20")
    mb = Constraint.parse("memory_mb <= 16000")
    # 50% over in both: same normalised violation, although the raw overruns differ by 800x
    assert ms.violation(30) == pytest.approx(mb.violation(24000))


def test_zero_limit_normalises_by_one() -> None:
    c = Constraint.parse("error_count <= 0")
    assert c.scale == 1.0
    assert c.violation(0.25) == pytest.approx(0.25)
    assert c.violation(3) == pytest.approx(3.0)
    assert c.is_met(0)
    assert c.signed_violation(-2) == pytest.approx(-2.0)
    f = Constraint.parse("slack >= 0")
    assert f.violation(-0.5) == pytest.approx(0.5)
    assert f.is_met(0.0)


def test_floor_violation() -> None:
    c = Constraint.parse("throughput >= 100")
    assert c.violation(50) == pytest.approx(0.5)
    assert c.signed_violation(50) == pytest.approx(0.5)
    assert c.violation(150) == 0.0
    assert c.signed_violation(150) == pytest.approx(-0.5)
    assert c.is_met(100)
    assert not c.is_met(99.99)
    assert c.margin(120) == pytest.approx(20.0)
    assert c.margin(80) == pytest.approx(-20.0)


def test_negative_limits_normalise_by_absolute_value() -> None:
    floor = Constraint.parse("temp_c >= -10")
    assert floor.scale == 10.0
    assert floor.violation(-20) == pytest.approx(1.0)
    assert floor.is_met(-5)
    assert floor.signed_violation(-5) == pytest.approx(-0.5)
    cap = Constraint.parse("delta <= -4")
    assert cap.violation(-2) == pytest.approx(0.5)
    assert cap.is_met(-4) and cap.is_met(-8)
    assert not cap.is_met(-3.9)


def test_violation_is_never_negative() -> None:
    for text in ("a <= 5", "a >= 5", "a <= -5", "a >= 0"):
        c = Constraint.parse(text)
        for v in np.linspace(-20, 20, 41):
            assert c.violation(float(v)) >= 0.0
            assert (c.violation(float(v)) == 0.0) == c.is_met(float(v))


# -------------------------------------------------------------------------------------- judge

OBJ = Objective("accuracy")
CONS = [Constraint.parse("latency_p95_ms <= 20"), Constraint.parse("throughput >= 100")]


def test_judge_feasible() -> None:
    o = judge({"accuracy": 0.9, "latency_p95_ms": 10, "throughput": 150}, OBJ, CONS, cost_s=1.25)
    assert o.status is Status.FEASIBLE
    assert o.crash_kind is None and o.error is None
    assert o.value == pytest.approx(0.9)
    assert o.cost_s == 1.25
    assert o.metrics == {"accuracy": 0.9, "latency_p95_ms": 10.0, "throughput": 150.0}
    assert sorted(o.violations.values()) == pytest.approx([-0.5, -0.5])
    assert len(o.violations) == 2
    assert o.total_violation == 0.0


def test_judge_on_the_limit_is_feasible() -> None:
    o = judge({"accuracy": 0.9, "latency_p95_ms": 20, "throughput": 100}, OBJ, CONS)
    assert o.status is Status.FEASIBLE


def test_judge_infeasible_keeps_value_and_violation() -> None:
    o = judge({"accuracy": 0.95, "latency_p95_ms": 30, "throughput": 150}, OBJ, CONS)
    assert o.status is Status.INFEASIBLE
    assert o.crash_kind is None
    assert o.value == pytest.approx(0.95)  # measured, even though infeasible
    assert sorted(o.violations.values()) == pytest.approx([-0.5, 0.5])
    assert o.total_violation == pytest.approx(0.5)
    both = judge({"accuracy": 0.95, "latency_p95_ms": 30, "throughput": 50}, OBJ, CONS)
    assert both.status is Status.INFEASIBLE
    assert both.total_violation == pytest.approx(1.0)


def test_judge_violation_labels_distinguish_cap_and_floor() -> None:
    cons = [Constraint.parse("lat <= 20"), Constraint.parse("lat >= 5")]
    o = judge({"accuracy": 1.0, "lat": 2.0}, OBJ, cons)
    assert o.status is Status.INFEASIBLE
    assert len(o.violations) == 2
    assert sorted(o.violations.values()) == pytest.approx([-0.9, 0.6])


def test_judge_without_constraints() -> None:
    o = judge({"accuracy": 0.1}, OBJ, [])
    assert o.status is Status.FEASIBLE and o.violations == {} and o.value == pytest.approx(0.1)


@pytest.mark.parametrize("missing", ["latency_p95_ms", "throughput", "accuracy"])
def test_judge_missing_metric_is_a_runtime_error_naming_it(missing: str) -> None:
    metrics = {"accuracy": 0.9, "latency_p95_ms": 10.0, "throughput": 150.0}
    del metrics[missing]
    o = judge(metrics, OBJ, CONS, cost_s=2.0)
    assert o.status is Status.CRASHED
    assert o.crash_kind is CrashKind.RUNTIME_ERROR
    assert o.error is not None and repr(missing) in o.error and "missing" in o.error
    assert o.cost_s == 2.0
    assert o.metrics == metrics  # what was measured is kept


def test_judge_missing_metric_typo_is_not_a_silent_pass() -> None:
    o = judge({"accuracy": 0.9, "latency_ms": 10.0, "throughput": 150.0}, OBJ, CONS)
    assert o.status is Status.CRASHED
    assert "'latency_p95_ms'" in (o.error or "")
    assert "latency_ms" in (o.error or "")  # tells what was returned instead


@pytest.mark.parametrize("name", ["accuracy", "latency_p95_ms"])
def test_judge_nan_metric(name: str) -> None:
    metrics: dict[str, Any] = {"accuracy": 0.9, "latency_p95_ms": 10.0, "throughput": 150.0}
    metrics[name] = math.nan
    o = judge(metrics, OBJ, CONS)
    assert o.status is Status.CRASHED and o.crash_kind is CrashKind.RUNTIME_ERROR
    assert repr(name) in (o.error or "") and "NaN" in (o.error or "")


@pytest.mark.parametrize("value", ["fast", None, [1.0], {"p95": 3.0}, True, object()])
def test_judge_non_numeric_metric(value: Any) -> None:
    o = judge({"accuracy": 0.9, "latency_p95_ms": value, "throughput": 150.0}, OBJ, CONS)
    assert o.status is Status.CRASHED and o.crash_kind is CrashKind.RUNTIME_ERROR
    assert "'latency_p95_ms'" in (o.error or "") and "not a number" in (o.error or "")


def test_judge_non_numeric_metric_not_needed_does_not_crash() -> None:
    # Only metrics needed by the objective or a constraint can crash the trial (judge's docs).
    o = judge({"accuracy": 0.9, "latency_p95_ms": 10.0, "throughput": 150.0, "device": "cuda:0"},
              OBJ, CONS)
    assert o.status is Status.FEASIBLE
    assert o.value == pytest.approx(0.9)


def test_judge_nan_metric_not_needed_is_fine() -> None:
    o = judge({"accuracy": 0.9, "latency_p95_ms": 10.0, "throughput": 150.0, "x": math.nan},
              OBJ, CONS)
    assert o.status is Status.FEASIBLE


def test_judge_numpy_and_int_metrics() -> None:
    o = judge({"accuracy": np.float32(0.5), "latency_p95_ms": np.int64(12), "throughput": 200},
              OBJ, CONS)
    assert o.status is Status.FEASIBLE
    assert all(type(v) is float for v in o.metrics.values())
    assert o.value == pytest.approx(0.5)


def test_judge_infinite_metric_is_infeasible_not_feasible() -> None:
    o = judge({"accuracy": 0.9, "latency_p95_ms": math.inf, "throughput": 150.0}, OBJ, CONS)
    assert o.status is Status.INFEASIBLE


@pytest.mark.parametrize("result", [None, [("accuracy", 0.9)], 0.9, "accuracy=0.9", (0.9,)])
def test_judge_non_dict_result(result: Any) -> None:
    o = judge(result, OBJ, CONS, cost_s=0.5)
    assert o.status is Status.CRASHED and o.crash_kind is CrashKind.RUNTIME_ERROR
    assert "dict" in (o.error or "") and type(result).__name__ in (o.error or "")
    assert o.cost_s == 0.5


def test_judge_aborted_allows_missing_metrics() -> None:
    o = judge({"accuracy": 0.4}, OBJ, CONS, aborted=True)
    assert o.status is Status.ABORTED
    assert o.crash_kind is None
    assert o.value == pytest.approx(0.4)
    partial = judge({"latency_p95_ms": 40.0}, OBJ, CONS, aborted=True)
    assert partial.status is Status.ABORTED and partial.value is None
    assert list(partial.violations.values()) == pytest.approx([1.0])


def test_judge_minimize_objective() -> None:
    o = judge({"latency_p95_ms": 12.0, "throughput": 150.0},
              Objective("latency_p95_ms", "minimize"), CONS)
    assert o.status is Status.FEASIBLE and o.value == pytest.approx(12.0)


def test_outcome_crashed_helper() -> None:
    o = Outcome.crashed(CrashKind.OOM, "CUDA out of memory", 3.0, {"load_s": 1.0})
    assert o.status is Status.CRASHED and o.crash_kind is CrashKind.OOM
    assert o.error == "CUDA out of memory" and o.cost_s == 3.0 and o.metrics == {"load_s": 1.0}
    assert o.value is None and o.total_violation == 0.0


# -------------------------------------------------------------------------------- crash kinds


class _SubInvalid(InvalidConfig):
    pass


@pytest.mark.parametrize(("exc", "kind"), [
    (MemoryError("out of memory"), CrashKind.OOM),
    (TimeoutError("took too long"), CrashKind.TIMEOUT),
    (InvalidConfig("compile + int8 unsupported"), CrashKind.INVALID_CONFIG),
    (_SubInvalid("subclass"), CrashKind.INVALID_CONFIG),
    (TransientError("port in use"), CrashKind.TRANSIENT),
    (RuntimeError("boom"), CrashKind.RUNTIME_ERROR),
    (ValueError("bad"), CrashKind.RUNTIME_ERROR),
    (KeyError("x"), CrashKind.RUNTIME_ERROR),
    (ZeroDivisionError(), CrashKind.RUNTIME_ERROR),
    (OSError("disk"), CrashKind.RUNTIME_ERROR),
    (SystemExit(3), CrashKind.RUNTIME_ERROR),
])
def test_crash_kind_of(exc: BaseException, kind: CrashKind) -> None:
    assert crash_kind_of(exc) is kind


def test_enum_values_are_the_documented_strings() -> None:
    assert {s.value for s in Status} == {"feasible", "infeasible", "crashed", "aborted"}
    assert {k.value for k in CrashKind} == {"invalid_config", "oom", "timeout", "runtime_error",
                                            "transient"}
    assert Status.FEASIBLE == "feasible"
    assert CrashKind("oom") is CrashKind.OOM


def test_objective_checks_and_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        Objective("accuracy", "max")
    with pytest.raises(ValueError, match="objective"):
        Objective("")
    assert Objective("a").better(2.0, 1.0)
    assert not Objective("a").better(1.0, 1.0)
    assert Objective("a", "minimize").better(1.0, 2.0)
    assert Objective("a", "minimize").sign == -1.0
