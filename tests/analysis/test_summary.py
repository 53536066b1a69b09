"""Tests of deploytune.analysis.summary on real Optuna studies written by deploytune.optimize."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

import deploytune
from deploytune import Constraint, CrashKind, Objective, Status
from deploytune.analysis import (
    closest_constraint,
    load_result,
    summary_text,
)
from deploytune.cli.render_analysis import render_summary
from deploytune.tuner import Result, TrialRecord
from tests.toy import CONSTRAINTS, SPACE_DICT, toy_evaluate

BATCHES = [1, 2, 4, 8, 16, 32]


class InOrder(optuna.samplers.BaseSampler):
    """Trial ``n`` takes choice ``n`` (modulo) of every categorical parameter."""

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        choices = param_distribution.choices
        return choices[trial.number % len(choices)]


def _batch_evaluate(config: dict[str, Any]) -> dict[str, float]:
    """batch <= 8 feasible under latency_ms <= 20, 16 infeasible (33 ms), 32 runs out of memory."""
    bs = config["batch"]
    if bs == 32:
        raise MemoryError("CUDA out of memory at batch 32")
    return {"throughput": 10.0 * bs, "latency_ms": 2.0 * bs + 1.0}


def _batch_result(storage: Any = None) -> deploytune.Result:
    return deploytune.optimize(
        _batch_evaluate, {"batch": {"type": "categorical", "choices": BATCHES}},
        objective="throughput", constraints=["latency_ms <= 20"], budget=len(BATCHES),
        sampler=InOrder(), storage=storage)


def _variant_result(table: dict[str, dict[str, float]], constraints: list[str]) -> Result:
    """Trial ``i`` evaluates the ``i``-th variant, whose metrics come from ``table``."""
    names = list(table)
    return deploytune.optimize(
        lambda c: {"accuracy": 0.5, **table[c["variant"]]},
        {"variant": {"type": "categorical", "choices": names}}, objective="accuracy",
        constraints=constraints, budget=len(names), sampler=InOrder())


def _text(result: Result) -> str:
    console = Console(record=True, width=120, color_system=None)
    render_summary(result, console, title="my study")
    return console.export_text()


# ------------------------------------------------------------------------------ feasible best


def test_summary_shows_best_config_metrics_and_margins() -> None:
    result = _batch_result()
    best = result.best_trial
    assert best is not None and best.config == {"batch": 8}
    text = summary_text(result)
    assert "6 trials: 4 feasible, 1 infeasible, 1 crashed (oom 1), 0 aborted" in text
    assert f"best throughput = 80 (trial {best.number})" in text
    assert re.search(r"batch\s+8\n", text)
    assert re.search(r"latency_ms\s+17\n", text)
    # headroom 20 - 17 = 3 ms, 15% of the limit
    assert re.search(r"latency_ms <= 20\s+17, margin 3 \(15\.0% of the limit\)", text)
    assert "no feasible" not in text and "hint" not in text
    assert closest_constraint(result) is None

    rich_text = _text(result)
    assert "my study" in rich_text
    assert "15.0%" in rich_text and "configuration" in rich_text and "margins" in rich_text
    assert re.search(r"latency_ms <= 20\s*│\s*17\s*│\s*3\s*│", rich_text)


def test_summary_reports_time_spent_and_wasted() -> None:
    result = _batch_result()
    spent = sum(t.cost_s for t in result.trials)
    text = summary_text(result)
    assert "waste 33% of trials" in text
    assert "spent" in text and "on trials that were not feasible" in text
    assert spent >= 0
    assert "early abort saved" not in text  # no trial carries dt.seconds_saved


# ---------------------------------------------------------------------------- nothing feasible

# p95_ms <= 20 and throughput >= 100; total normalised violations: a 0.17, b 0.3, c 0.6, d 0.2
ALL_INFEASIBLE = {
    "a": {"p95_ms": 23.4, "throughput": 120.0},
    "b": {"p95_ms": 19.0, "throughput": 70.0},
    "c": {"p95_ms": 30.0, "throughput": 90.0},
    "d": {"p95_ms": 21.0, "throughput": 85.0},
}


def test_closest_constraint_of_an_all_infeasible_study() -> None:
    result = _variant_result(ALL_INFEASIBLE, ["p95_ms <= 20", "throughput >= 100"])
    assert result.count(Status.INFEASIBLE) == 4
    closest = closest_constraint(result)
    assert closest is not None
    constraint, trial, shortfall = closest
    assert constraint == Constraint("p95_ms", "<=", 20.0)
    assert trial.config == {"variant": "a"}
    assert shortfall == pytest.approx(3.4)
    assert closest.value == pytest.approx(23.4)

    text = summary_text(result)
    assert "no feasible configuration found" in text
    assert (f"closest: trial {trial.number} has p95_ms = 23.4, 3.4 over the limit of "
            f"p95_ms <= 20") in text
    assert "hint: relax p95_ms <= 20 to at least 23.4, or widen the space" in text
    rich_text = _text(result)
    assert "no feasible configuration found" in rich_text
    assert "relax p95_ms <= 20 to at least 23.4" in rich_text


def test_closest_floor_constraint_and_every_miss_of_the_closest_trial() -> None:
    # a misses both (0.1 + 0.05), b only throughput but by more (0.5)
    table = {"a": {"p95_ms": 22.0, "throughput": 95.0},
             "b": {"p95_ms": 10.0, "throughput": 50.0}}
    result = _variant_result(table, ["p95_ms <= 20", "throughput >= 100"])
    closest = closest_constraint(result)
    assert closest is not None
    assert closest.trial.config == {"variant": "a"}
    assert str(closest.constraint) == "p95_ms <= 20" and closest.shortfall == pytest.approx(2)
    text = summary_text(result)
    assert "also misses throughput >= 100: 95 (5 past the limit)" in text
    assert ("hint: relax p95_ms <= 20 to at least 22 and throughput >= 100 to at most 95, "
            "or widen the space") in text

    only_floor = _variant_result({"x": {"throughput": 80.0}, "y": {"throughput": 95.0}},
                                 ["throughput >= 100"])
    closest = closest_constraint(only_floor)
    assert closest is not None and closest.trial.config == {"variant": "y"}
    assert closest.shortfall == pytest.approx(5.0)
    assert "5 under the limit of throughput >= 100" in summary_text(only_floor)


def test_all_crashed_study_says_nothing_feasible_and_no_metrics() -> None:
    def oom(config: dict[str, Any]) -> dict[str, float]:
        raise MemoryError(f"needs {config['batch_size'] * 100} MB")

    result = deploytune.optimize(oom, {"batch_size": {"type": "int", "low": 1, "high": 64}},
                                 objective="throughput", constraints=["latency_ms <= 20"],
                                 budget=10, sampler="random", seed=0)
    assert closest_constraint(result) is None
    text = summary_text(result)
    assert "10 trials: 0 feasible, 0 infeasible, 10 crashed (oom 10), 0 aborted" in text
    assert "no feasible configuration found" in text
    assert "no trial produced metrics: every trial crashed" in text
    assert "most common crash: oom (10 trials), e.g. MemoryError: needs" in text
    assert "hint" not in text
    assert "every trial crashed" in _text(result)


def test_closest_constraint_on_hand_built_records() -> None:
    c1, c2 = Constraint("lat", "<=", 10.0), Constraint("mem", "<=", 100.0)

    def rec(n: int, status: Status, metrics: dict[str, float]) -> TrialRecord:
        return TrialRecord(number=n, config={}, status=status,
                           crash_kind=CrashKind.OOM if status is Status.CRASHED else None,
                           metrics=metrics, value=None, violations={}, error=None, cost_s=1.0)

    trials = [
        rec(0, Status.CRASHED, {"lat": 10.5, "mem": 50.0}),  # crashed: never the closest
        rec(1, Status.ABORTED, {"lat": 11.0}),  # only one metric measured: ranks after 2 and 3
        rec(2, Status.INFEASIBLE, {"lat": 15.0, "mem": 90.0}),
        rec(3, Status.ABORTED, {"lat": 9.0, "mem": 130.0}),  # aborted with every metric: 0.3
    ]
    result = Result(trials, Objective("acc"), [c1, c2])
    closest = closest_constraint(result)
    assert closest is not None
    assert closest.trial.number == 3 and closest.constraint == c2
    assert closest.shortfall == pytest.approx(30.0)
    assert closest_constraint(Result(trials[:2], Objective("acc"), [c1, c2])) == (
        c1, trials[1], pytest.approx(1.0))
    assert closest_constraint(Result(trials[:1], Objective("acc"), [c1, c2])) is None
    assert closest_constraint(Result(trials, Objective("acc"), [])) is None
    feasible = rec(4, Status.FEASIBLE, {"lat": 1.0, "mem": 1.0})
    assert closest_constraint(Result([*trials, feasible], Objective("acc"), [c1, c2])) is None


# -------------------------------------------------------------------------------------- counts


COUNTS = re.compile(r"(\d+) trials: (\d+) feasible, (\d+) infeasible, (\d+) crashed"
                    r"(?: \(([^)]*)\))?, (\d+) aborted")


def test_counts_add_up() -> None:
    result = deploytune.optimize(toy_evaluate, SPACE_DICT, objective="accuracy",
                                 constraints=CONSTRAINTS, budget=15, sampler="random", seed=0)
    m = COUNTS.search(summary_text(result))
    assert m is not None
    total, feasible, infeasible, crashed, aborted = (int(m[i]) for i in (1, 2, 3, 4, 6))
    assert total == len(result.trials) == 15
    assert feasible + infeasible + crashed + aborted == total
    assert feasible == result.count(Status.FEASIBLE)
    assert crashed == result.count(Status.CRASHED) > 0
    kinds = dict(part.rsplit(" ", 1) for part in m[5].split(", "))
    assert sum(int(n) for n in kinds.values()) == crashed
    assert set(kinds) <= {k.value for k in CrashKind}


# --------------------------------------------------------------------------------- load_result


def test_load_result_from_storage_matches_optimize(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    direct = _batch_result(storage=url)
    study = optuna.load_study(study_name="deploytune", storage=url)
    loaded = load_result(study)
    assert loaded.objective == Objective("throughput", "maximize")
    assert [str(c) for c in loaded.constraints] == ["latency_ms <= 20"]
    assert [(t.number, t.status, t.value) for t in loaded.trials] == [
        (t.number, t.status, t.value) for t in direct.trials]
    assert loaded.best_config == {"batch": 8}
    assert summary_text(loaded) == summary_text(direct)


def test_load_result_without_setup_is_a_clear_error() -> None:
    study = optuna.create_study(study_name="plain-optuna")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(ValueError, match=r"study 'plain-optuna' was not written by deploytune"):
        load_result(study)


def test_interrupted_trials_are_counted_apart() -> None:
    storage = optuna.storages.InMemoryStorage()
    calls: list[int] = []

    def fn(config: dict[str, Any]) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {"accuracy": 0.8, "latency_ms": 5.0, "memory_mb": 100.0}

    with pytest.raises(KeyboardInterrupt):
        deploytune.optimize(fn, SPACE_DICT, objective="accuracy", constraints=CONSTRAINTS,
                            budget=5, sampler="random", seed=0, storage=storage)
    study = optuna.load_study(study_name="deploytune", storage=storage)
    assert sum(bool(t.user_attrs.get("dt.interrupted")) for t in study.trials) == 1
    result = load_result(study)
    assert len(result.trials) == 2 and result.count(Status.FEASIBLE) == 2
    text = summary_text(result)
    assert "2 trials: 2 feasible" in text and "; 1 interrupted (not counted)" in text


def _setup_study(name: str) -> optuna.Study:
    study = optuna.create_study(study_name=name, direction="maximize")
    study.set_user_attr("dt.setup", {"objective": "acc", "direction": "maximize",
                                     "constraints": ["lat <= 10"], "space": {}})
    return study


def test_new_trial_attributes_are_read_defensively() -> None:
    study = _setup_study("attrs")
    dist = {"v": CategoricalDistribution(["p", "q"])}
    study.add_trial(create_trial(
        state=TrialState.PRUNED, params={"v": "p"}, distributions=dist,
        intermediate_values={0: 0.4}, constraints={"lat_max": 4.0},
        user_attrs={"dt.status": "aborted", "dt.metrics": {"lat": 50.0}, "dt.cost_s": 2.0,
                    "dt.seconds_saved": 40.0, "dt.attempts": 1, "dt.log": "warm-up\n"}))
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"v": "q"}, distributions=dist,
        user_attrs={"dt.status": "crashed", "dt.crash_kind": "transient", "dt.cost_s": 1.0,
                    "dt.attempts": 3, "dt.seconds_saved": "n/a"}))
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"v": "q"}, distributions=dist,
        user_attrs={"dt.interrupted": True, "dt.error": "interrupted: Ctrl-C",
                    "dt.seconds_saved": 99.0}))
    # how a Ctrl-C was recorded before dt.interrupted existed
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"v": "p"}, distributions=dist,
        user_attrs={"dt.status": "aborted", "dt.error": "interrupted"}))
    result = load_result(study)
    assert [t.number for t in result.trials] == [0, 1]
    text = summary_text(result)
    assert "2 trials: 0 feasible, 0 infeasible, 1 crashed (transient 1), 1 aborted" in text
    assert "; 2 interrupted (not counted)" in text
    assert "3.0 s spent, 3.0 s (100%) on trials that were not feasible" in text
    assert "early abort saved about 40.0 s" in text
    assert "closest: trial 0 has lat = 50, 40 over the limit of lat <= 10" in text


def test_importing_summary_does_not_import_matplotlib() -> None:
    code = ("import sys, deploytune.analysis, deploytune.analysis.summary; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _aborted_study(saved: list[float | None]) -> optuna.Study:
    study = _setup_study(f"aborted-{len(saved)}-{saved[0]}")
    dist = {"v": CategoricalDistribution(["p", "q"])}
    study.add_trial(create_trial(
        state=TrialState.COMPLETE, value=0.9, params={"v": "p"}, distributions=dist,
        constraints={"lat_max": -0.5},
        user_attrs={"dt.status": "feasible", "dt.metrics": {"acc": 0.9, "lat": 5.0},
                    "dt.cost_s": 3.0}))
    for i, s in enumerate(saved):
        attrs: dict[str, Any] = {"dt.status": "aborted", "dt.metrics": {"lat": 60.0},
                                 "dt.cost_s": 6.0 + i}
        if s is not None:
            attrs["dt.seconds_saved"] = s
        study.add_trial(create_trial(
            state=TrialState.PRUNED, params={"v": "q"}, distributions=dist,
            intermediate_values={0: 0.2}, constraints={"lat_max": 5.0}, user_attrs=attrs))
    return study


def test_early_abort_says_what_was_measured_not_a_zero_saving() -> None:
    # five aborts after 6-10 s each, all of them longer than the complete trial (3 s): the
    # estimate (median complete run minus elapsed) is 0 for every one, which is no saving
    text = summary_text(load_result(_aborted_study([0.0] * 5)))
    assert "saved about 0 ms" not in text
    assert "5 trials stopped early after 40.0 s" in text
    assert "no saving estimated" in text
    text = summary_text(load_result(_aborted_study([12.0, 0.0, None])))
    assert "3 trials stopped early after 21.0 s, early abort saved about 12.0 s " \
           "(estimated for 1 of them)" in text


def test_values_are_printed_as_they_are() -> None:
    """Markup and emoji codes in names and values are text, not styling or emoji."""
    result = deploytune.optimize(
        lambda c: {"[/x]acc": 1.0}, {"tmpl": {"type": "categorical",
                                              "choices": ["<s>[INST] :thumbs_up: [/INST]"]}},
        objective="[/x]acc", budget=1)
    console = Console(record=True, width=120, color_system=None)
    render_summary(result, console, title="study [bold]:smile:")
    text = console.export_text()
    assert "<s>[INST] :thumbs_up: [/INST]" in text and "study [bold]:smile:" in text
    assert "best [/x]acc = 1" in text
