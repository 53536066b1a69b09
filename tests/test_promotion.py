"""The rung rule: a learned correction from a rung to the end, and when a run stops at a rung;
end to end through ``optimize`` with an evaluator that passes rungs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import optuna
import pytest

import deploytune
from deploytune.early_abort import EarlyAbort
from deploytune.history import ATTR_RUNGS, TrialRecord
from deploytune.outcome import Objective, Status, parse_constraints
from deploytune.promotion import correction, incumbent, rung_reason

OBJ = Objective("tokens_per_s", "maximize")
CONS = parse_constraints(["p95_ms <= 100"])


def _run(number: int, short: dict[str, float], end: dict[str, float],
         status: Status = Status.FEASIBLE) -> TrialRecord:
    return TrialRecord(number, {"x": number}, status, value=end.get("tokens_per_s"),
                       metrics=end, rungs={"short": short})


def _history(bias: float = 1.0, noise: float = 0.0) -> list[TrialRecord]:
    """Four runs whose p95 at the end is ``bias`` times the short rung's (with a spread)."""
    out = []
    for i, p95 in enumerate((40.0, 60.0, 80.0, 90.0)):
        wobble = 1.0 + noise * (1 if i % 2 else -1)
        out.append(_run(i, {"p95_ms": p95, "tokens_per_s": 500.0 + i},
                        {"p95_ms": p95 * bias * wobble, "tokens_per_s": 500.0 + i}))
    return out


def test_the_correction_is_the_mean_and_spread_of_the_log_ratios() -> None:
    fix = correction("short", "p95_ms", _history(bias=1.5, noise=0.1))
    assert fix is not None and fix.log and fix.pairs == 4
    assert fix.shift == pytest.approx(math.log(1.5), abs=0.01)
    assert 0.05 < fix.spread < 0.15
    centre, sd = fix.predict(50.0)
    assert math.exp(centre) == pytest.approx(75.0, rel=0.02)
    assert sd == pytest.approx(fix.spread * math.sqrt(1.25))
    assert correction("boot", "p95_ms", _history()) is None
    aborted = [_run(9, {"p95_ms": 10.0}, {"p95_ms": 500.0}, Status.ABORTED)]
    assert correction("short", "p95_ms", aborted) is None  # it never reached the end


def test_a_run_stops_when_the_rung_says_it_will_miss_a_constraint() -> None:
    history = _history(bias=1.5, noise=0.05)
    # 80 ms at the short rung is about 120 ms at the end: over the 100 ms limit
    reason = rung_reason("short", {"p95_ms": 80.0, "tokens_per_s": 900.0}, history, OBJ, CONS,
                         0.05, 3)
    assert reason is not None and "not promoted past rung short" in reason
    assert "P(p95_ms <= 100)" in reason
    # 50 ms is about 75 ms: it goes on
    assert rung_reason("short", {"p95_ms": 50.0, "tokens_per_s": 900.0}, history, OBJ, CONS,
                       0.05, 3) is None


def test_a_run_stops_when_it_cannot_beat_the_best_feasible_value() -> None:
    history = _history(noise=0.02)
    assert incumbent(history, OBJ) == 503.0
    slow = {"p95_ms": 30.0, "tokens_per_s": 300.0}
    reason = rung_reason("short", slow, history, OBJ, CONS, 0.05, 3)
    assert reason is not None and "P(better than 503)" in reason
    fast = {"p95_ms": 30.0, "tokens_per_s": 700.0}
    assert rung_reason("short", fast, history, OBJ, CONS, 0.05, 3) is None


def test_nothing_stops_before_enough_runs_went_on_from_the_rung() -> None:
    history = _history(bias=1.5)[:2]
    assert rung_reason("short", {"p95_ms": 99.0, "tokens_per_s": 1.0}, history, OBJ, CONS,
                       0.05, 3) is None
    assert rung_reason("short", {"p95_ms": 99.0, "tokens_per_s": 1.0}, history, OBJ, CONS,
                       0.05, 2) is not None
    # a rung that measured neither the constraint nor the objective never stops a run
    assert rung_reason("short", {"memory_gib": 3.0}, _history(), OBJ, CONS, 0.05, 3) is None


def test_the_rule_is_part_of_early_abort_and_can_be_switched_off() -> None:
    history = _history(bias=1.5)
    partial = {"p95_ms": 95.0, "tokens_per_s": 1.0}
    assert EarlyAbort().rung_reason("short", partial, history, OBJ, CONS) is not None
    assert EarlyAbort(promote_below=0).rung_reason("short", partial, history, OBJ,
                                                   CONS) is None
    assert EarlyAbort(enabled=False).rung_reason("short", partial, history, OBJ,
                                                 CONS) is None


def _staged(seen: list[str]) -> Callable[[dict[str, Any], Any], dict[str, float]]:
    """A server-like evaluation: p95 grows with the batch; the short rung reads 10 % low."""
    def evaluate(config: dict[str, Any], report: Any) -> dict[str, float]:
        batch = config["batch"]
        p95 = 10.0 * batch
        throughput = 100.0 * batch
        report({"memory_gib": 1.0 + batch / 10}, step=0, rung="boot")
        report({"p95_ms": 0.9 * p95, "tokens_per_s": throughput}, step=1, rung="short")
        seen.append(f"full {batch}")
        return {"p95_ms": p95, "tokens_per_s": throughput, "memory_gib": 1.0 + batch / 10}
    return evaluate


def test_optimize_stops_runs_at_a_rung_and_records_the_rungs() -> None:
    seen: list[str] = []
    space = {"batch": {"type": "int", "low": 1, "high": 30}}
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(direction="maximize", storage=storage, study_name="rungs")
    queue = [1, 2, 3, 4, 8, 20, 25, 30, 9, 5]
    for b in queue:
        study.enqueue_trial({"batch": b})
    result = deploytune.optimize(
        _staged(seen), space, objective="tokens_per_s", direction="maximize",
        constraints=["p95_ms <= 100"], budget=len(queue), sampler="random", seed=0,
        storage=storage, study_name="rungs")
    records = {r.config["batch"]: r for r in result.trials}
    assert all(set(r.rungs) == {"boot", "short"} for r in records.values())
    assert records[1].rungs["short"]["p95_ms"] == pytest.approx(9.0)
    # once three runs went from the short rung to the end, batch 20, 25, 30 (p95 200-300 ms)
    # and batch 5 (far below the best throughput, 900) stop at the short rung
    for b in (20, 25, 30, 5):
        assert records[b].status is Status.ABORTED, records[b]
        assert "not promoted past rung short" in (records[b].error or "")
        assert f"full {b}" not in seen
    assert records[9].status is Status.FEASIBLE
    assert result.best_config == {"batch": 9}


def test_the_rungs_are_read_back_from_the_study() -> None:
    storage = optuna.storages.InMemoryStorage()
    deploytune.optimize(_staged([]), {"batch": {"type": "int", "low": 1, "high": 9}},
                        objective="tokens_per_s", direction="maximize",
                        constraints=["p95_ms <= 100"], budget=3, seed=0, storage=storage,
                        study_name="s", sampler="random")
    trial = optuna.load_study(study_name="s", storage=storage).trials[0]
    assert set(trial.user_attrs[ATTR_RUNGS]) == {"boot", "short"}
    rec = TrialRecord.from_trial(trial)
    assert rec is not None and rec.rungs["boot"]["memory_gib"] > 1.0


def test_a_re_run_is_never_stopped_at_a_rung() -> None:
    """A finalist's re-run is run to be measured again: the rung rule leaves it alone (the hard
    early-abort rule still applies)."""
    from types import SimpleNamespace

    from deploytune.evaluators.estimated import ESTIMATE_RUNG
    from deploytune.history import ATTR_REPEAT_OF
    from deploytune.monitoring import make_check

    history = [dataclasses.replace(r, rungs={**r.rungs, ESTIMATE_RUNG: r.rungs["short"]})
               for r in _history(bias=1.5)]
    hopeless = {"p95_ms": 95.0, "tokens_per_s": 1.0}
    fresh = make_check(EarlyAbort(), OBJ, CONS, history, SimpleNamespace(user_attrs={}), False)
    again = make_check(EarlyAbort(), OBJ, CONS, history,
                       SimpleNamespace(user_attrs={ATTR_REPEAT_OF: 2}), False)
    assert fresh(hopeless, 1, "short") is not None
    assert fresh(hopeless, None, ESTIMATE_RUNG) is not None
    assert again(hopeless, 1, "short") is None and again(hopeless, None, ESTIMATE_RUNG) is None
    assert again({"p95_ms": 1000.0}, 1, "short") is not None  # 10 x the limit: early abort
