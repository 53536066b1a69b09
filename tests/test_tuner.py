"""Tests of deploytune.optimize(): the ask / evaluate / record loop and its Result."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import deploytune
from deploytune import CrashKind, InvalidConfig, Space, Status, TransientError
from deploytune.history import ATTR_COST, ATTR_CRASH_KIND, ATTR_ERROR, ATTR_METRICS, ATTR_STATUS

SPACE: dict[str, Any] = {
    "backend": {"type": "categorical", "choices": ["eager", "compile"]},
    "precision": {"type": "categorical", "choices": ["fp32", "int8"]},
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
    "threads": {"type": "int", "low": 1, "high": 4, "when": {"backend": ["eager"]}},
}
LAT = "latency_p95_ms <= 20"
CONTRACT_SAMPLERS = {"random", "tpe", "ctpe", "gp", "tba", "tba-tpe", "tba-tpe-paper", "default"}


def deploy_evaluate(config: dict[str, Any]) -> dict[str, float]:
    """Deterministic: big batches OOM, compile+int8 is invalid, one thread times out."""
    if config["batch_size"] > 32:
        raise MemoryError(f"CUDA out of memory at batch {config['batch_size']}")
    if config["backend"] == "compile" and config["precision"] == "int8":
        raise InvalidConfig("int8 is not supported by compile")
    if config.get("threads") == 1:
        raise TimeoutError("no answer in 60 s")
    bs = config["batch_size"]
    speed = 0.5 if config["backend"] == "compile" else 1.0
    return {"accuracy": 0.5 + bs / 100 + (0.01 if config["precision"] == "fp32" else 0.0),
            "latency_p95_ms": 4.0 * bs * speed,
            "throughput": 40.0 * bs}


def expected_of(config: dict[str, Any]) -> tuple[Status, CrashKind | None]:
    try:
        m = deploy_evaluate(config)
    except MemoryError:
        return Status.CRASHED, CrashKind.OOM
    except InvalidConfig:
        return Status.CRASHED, CrashKind.INVALID_CONFIG
    except TimeoutError:
        return Status.CRASHED, CrashKind.TIMEOUT
    return (Status.FEASIBLE if m["latency_p95_ms"] <= 20 else Status.INFEASIBLE), None


class Counting:
    """Wraps an evaluator and records the configurations it was called with."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn
        self.calls: list[dict[str, Any]] = []

    def __call__(self, config: dict[str, Any]) -> Any:
        self.calls.append(dict(config))
        return self.fn(config)


# --------------------------------------------------------------------------- crash handling

OK = {"accuracy": 0.8, "latency_p95_ms": 10.0}
SCRIPT: list[tuple[Any, Status, CrashKind | None, str | None]] = [
    (MemoryError("CUDA out of memory"), Status.CRASHED, CrashKind.OOM, "CUDA out of memory"),
    (TimeoutError("took 600 s"), Status.CRASHED, CrashKind.TIMEOUT, "took 600 s"),
    (InvalidConfig("int8 unsupported"), Status.CRASHED, CrashKind.INVALID_CONFIG,
     "int8 unsupported"),
    (TransientError("port in use"), Status.CRASHED, CrashKind.TRANSIENT, "port in use"),
    (RuntimeError("segfault-free boom"), Status.CRASHED, CrashKind.RUNTIME_ERROR, "boom"),
    (KeyError("threads"), Status.CRASHED, CrashKind.RUNTIME_ERROR, "KeyError"),
    (ZeroDivisionError("division by zero"), Status.CRASHED, CrashKind.RUNTIME_ERROR,
     "ZeroDivisionError"),
    (SystemExit(3), Status.CRASHED, CrashKind.RUNTIME_ERROR, "SystemExit"),
    (OK, Status.FEASIBLE, None, None),
    ({"accuracy": 0.99, "latency_p95_ms": 30.0}, Status.INFEASIBLE, None, None),
    ({"accuracy": 0.7}, Status.CRASHED, CrashKind.RUNTIME_ERROR, "'latency_p95_ms'"),
    (None, Status.CRASHED, CrashKind.RUNTIME_ERROR, "NoneType"),
    ({"accuracy": math.nan, "latency_p95_ms": 1.0}, Status.CRASHED, CrashKind.RUNTIME_ERROR,
     "NaN"),
    ({"accuracy": "high", "latency_p95_ms": 1.0}, Status.CRASHED, CrashKind.RUNTIME_ERROR,
     "'accuracy'"),
    ({**OK, "device": "cuda:0"}, Status.FEASIBLE, None, None),
]


def _scripted() -> Counting:
    def fn(config: dict[str, Any]) -> Any:
        item = SCRIPT[len(ev.calls) - 1][0]
        if isinstance(item, BaseException):
            raise item
        return item

    ev = Counting(fn)
    return ev


@pytest.mark.parametrize("sampler", ["random", "default"])
def test_every_exception_is_a_crash_and_the_budget_is_spent(sampler: str) -> None:
    ev = _scripted()
    result = deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=len(SCRIPT), sampler=sampler, seed=0, retries=0)
    assert len(ev.calls) == len(SCRIPT)
    assert len(result.trials) == len(SCRIPT)
    assert [t.number for t in result.trials] == list(range(len(SCRIPT)))
    for t, (_, status, kind, fragment) in zip(result.trials, SCRIPT, strict=True):
        assert t.status is status, (t, fragment)
        assert t.crash_kind is kind, (t, fragment)
        if fragment is not None:
            assert t.error is not None and fragment in t.error
        else:
            assert t.error is None
        assert t.cost_s >= 0.0
        assert Space.from_dict(SPACE).problems(t.config) == []
    assert result.count(Status.FEASIBLE) == 2
    assert result.count(Status.INFEASIBLE) == 1
    assert result.count(Status.CRASHED) == len(SCRIPT) - 3
    assert result.waste == pytest.approx((len(SCRIPT) - 2) / len(SCRIPT))
    # the infeasible 0.99 is never the best; the best is the best feasible
    assert result.best_value == pytest.approx(0.8)
    assert result.best_trial is not None and result.best_trial.status is Status.FEASIBLE


def test_exceptions_recorded_in_optuna_study() -> None:
    ev = _scripted()
    result = deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=len(SCRIPT), sampler="random", seed=1, retries=0)
    study = result.study
    assert study is not None
    trials = study.get_trials()
    assert len(trials) == len(SCRIPT)
    for t, (_, status, kind, fragment) in zip(trials, SCRIPT, strict=True):
        attrs = t.user_attrs
        assert attrs[ATTR_STATUS] == status.value
        assert isinstance(attrs[ATTR_COST], float) and attrs[ATTR_COST] >= 0.0
        assert isinstance(attrs[ATTR_METRICS], dict)
        if status is Status.CRASHED:
            assert t.state is TrialState.FAIL
            assert attrs[ATTR_CRASH_KIND] == kind.value  # type: ignore[union-attr]
            assert fragment in attrs[ATTR_ERROR]  # type: ignore[operator]
        else:
            assert t.state is TrialState.COMPLETE
            assert ATTR_CRASH_KIND not in attrs and ATTR_ERROR not in attrs
            # constraints through Optuna 5's constraint API, normalised by the limit
            assert list(t.constraints.values()) == pytest.approx(
                [(attrs[ATTR_METRICS]["latency_p95_ms"] - 20.0) / 20.0])
            assert t.value == pytest.approx(attrs[ATTR_METRICS]["accuracy"])
    assert trials[8].user_attrs[ATTR_METRICS] == OK
    assert all(v <= 0 for v in trials[8].constraints.values())
    assert list(trials[9].constraints.values()) == pytest.approx([0.5])
    assert trials[10].user_attrs[ATTR_METRICS] == {"accuracy": 0.7}  # partial metrics kept


def test_metric_conversion_failure_does_not_kill_the_tuner() -> None:
    class LazyCudaScalar:
        """Like a CUDA tensor whose asynchronous error surfaces on conversion."""

        def __float__(self) -> float:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    ev = Counting(lambda c: {"accuracy": LazyCudaScalar(), "latency_p95_ms": 1.0}
                  if len(ev.calls) == 1 else OK)
    result = deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT], budget=3,
                                 sampler="random", seed=0)
    assert len(ev.calls) == 3 and len(result.trials) == 3
    assert result.trials[0].status is Status.CRASHED
    assert result.trials[0].crash_kind is CrashKind.RUNTIME_ERROR


def test_keyboard_interrupt_propagates_and_leaves_no_running_trial() -> None:
    storage = optuna.storages.InMemoryStorage()

    def fn(config: dict[str, Any]) -> dict[str, float]:
        if len(ev.calls) == 3:
            raise KeyboardInterrupt
        return OK

    ev = Counting(fn)
    with pytest.raises(KeyboardInterrupt):
        deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT], budget=6,
                            sampler="random", seed=0, storage=storage)
    study = optuna.load_study(study_name="deploytune", storage=storage)
    # the interrupted trial is finished (FAIL, marked interrupted) and its config queued again
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2 + [
        TrialState.FAIL, TrialState.WAITING]
    assert study.trials[2].user_attrs["dt.interrupted"] is True
    assert study.trials[3].user_attrs["dt.requeued_from"] == 2
    interrupted_config = ev.calls[2]
    result = deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT], budget=6,
                                 sampler="random", seed=0, storage=storage)
    assert len(result.trials) == 6 and result.interrupted == 1
    assert [t.number for t in result.trials] == [0, 1, 3, 4, 5, 6]
    assert result.trials[2].config == interrupted_config
    assert result.trials[2].status is Status.FEASIBLE


# ------------------------------------------------------------------------------- best / waste


def test_best_is_best_feasible_only() -> None:
    ev = Counting(deploy_evaluate)
    result = deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT], budget=25,
                                 sampler="random", seed=0)
    assert len(result.trials) == 25 == len(ev.calls)
    for t in result.trials:
        assert (t.status, t.crash_kind) == expected_of(t.config)
    feasible = [t for t in result.trials if t.status is Status.FEASIBLE]
    infeasible = [t for t in result.trials if t.status is Status.INFEASIBLE]
    assert feasible and infeasible
    best = max(feasible, key=lambda t: t.value or -math.inf)
    assert result.best_value == pytest.approx(best.value)
    assert result.best_config == best.config
    assert result.best_trial is not None and result.best_trial.number == best.number
    # an infeasible trial measured a better objective, and it is not the best
    assert max(t.value for t in infeasible if t.value is not None) > result.best_value
    assert result.waste == pytest.approx(1 - len(feasible) / 25)
    assert result.best_config is not result.best_trial.config  # a copy


def test_nothing_feasible_gives_none() -> None:
    result = deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy",
                                 constraints=["latency_p95_ms <= 0.01"], budget=6,
                                 sampler="random", seed=0)
    assert len(result.trials) == 6
    assert result.best_config is None
    assert result.best_value is None
    assert result.best_trial is None
    assert result.waste == 1.0
    assert result.margins() == {}
    assert "no feasible" in result.summary()


def test_all_crashing_evaluator() -> None:
    def fn(config: dict[str, Any]) -> dict[str, float]:
        raise MemoryError("always")

    result = deploytune.optimize(fn, SPACE, objective="accuracy", budget=5, sampler="default",
                                 seed=0)
    assert len(result.trials) == 5
    assert all(t.crash_kind is CrashKind.OOM for t in result.trials)
    assert result.best_value is None and result.waste == 1.0


def test_minimize_direction() -> None:
    def fn(config: dict[str, Any]) -> dict[str, float]:
        bs = config["batch_size"]
        return {"latency_p95_ms": 100.0 / bs + bs, "accuracy": 0.9 if bs >= 4 else 0.1}

    result = deploytune.optimize(fn, SPACE, objective="latency_p95_ms", direction="minimize",
                                 constraints=["accuracy >= 0.5"], budget=20, sampler="random",
                                 seed=0)
    assert result.study is not None
    assert result.study.direction is optuna.study.StudyDirection.MINIMIZE
    feasible = [t.value for t in result.trials if t.status is Status.FEASIBLE]
    infeasible = [t.value for t in result.trials if t.status is Status.INFEASIBLE]
    assert feasible and infeasible
    assert result.best_value == pytest.approx(min(feasible))  # type: ignore[type-var]
    assert result.best_config is not None and result.best_config["batch_size"] >= 4


def test_infeasible_better_value_never_best_minimize() -> None:
    values = iter([5.0, 1.0, 3.0, 4.0])
    lat = iter([10.0, 99.0, 10.0, 10.0])

    def fn(config: dict[str, Any]) -> dict[str, float]:
        return {"cost": next(values), "latency_p95_ms": next(lat)}

    result = deploytune.optimize(fn, SPACE, objective="cost", direction="minimize",
                                 constraints=[LAT], budget=4, sampler="random", seed=0)
    assert [t.status for t in result.trials] == [Status.FEASIBLE, Status.INFEASIBLE,
                                                 Status.FEASIBLE, Status.FEASIBLE]
    assert result.best_value == 3.0
    assert result.best_trial is not None and result.best_trial.number == 2


def test_margins_for_best_trial() -> None:
    cons = [LAT, "throughput >= 100"]
    result = deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy", constraints=cons,
                                 budget=20, sampler="random", seed=0)
    best = result.best_trial
    assert best is not None
    margins = result.margins()
    assert margins == pytest.approx({
        "latency_p95_ms <= 20": 20.0 - best.metrics["latency_p95_ms"],
        "throughput >= 100": best.metrics["throughput"] - 100.0,
    })
    assert all(m >= 0 for m in margins.values())
    summary = result.summary()
    assert "20 trials" in summary and "margin" in summary


def test_trial_records_carry_config_status_metrics_and_cost() -> None:
    def fn(config: dict[str, Any]) -> dict[str, float]:
        time.sleep(0.02)
        return {"accuracy": 0.5, "latency_p95_ms": 3.0, "note": 7}

    result = deploytune.optimize(fn, SPACE, objective="accuracy", constraints=[LAT], budget=2,
                                 sampler="random", seed=0)
    for t in result.trials:
        assert Space.from_dict(SPACE).problems(t.config) == []
        assert t.status is Status.FEASIBLE and t.crash_kind is None
        assert t.metrics == {"accuracy": 0.5, "latency_p95_ms": 3.0, "note": 7.0}
        assert t.cost_s >= 0.02
        assert t.value == 0.5
        assert list(t.violations.values()) == pytest.approx([-0.85])


def test_infinite_metric_is_infeasible_and_tuner_goes_on() -> None:
    result = deploytune.optimize(lambda c: {"accuracy": 1.0, "latency_p95_ms": math.inf}, SPACE,
                                 objective="accuracy", constraints=[LAT], budget=3,
                                 sampler="random", seed=0)
    assert [t.status for t in result.trials] == [Status.INFEASIBLE] * 3
    assert result.best_value is None


# ------------------------------------------------------------------------------------- inputs


def test_dict_and_space_forms_are_equivalent() -> None:
    a = deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy", constraints=[LAT],
                            budget=6, sampler="random", seed=3)
    b = deploytune.optimize(deploy_evaluate, Space.from_dict(SPACE), objective="accuracy",
                            constraints=[LAT], budget=6, sampler="random", seed=3)
    assert [t.config for t in a.trials] == [t.config for t in b.trials]


@pytest.mark.parametrize("sampler", ["random", "default"])
def test_same_seed_same_run(sampler: str) -> None:
    runs = [deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy", constraints=[LAT],
                                budget=10, sampler=sampler, seed=0) for _ in range(2)]
    assert [t.config for t in runs[0].trials] == [t.config for t in runs[1].trials]


def test_evaluator_gets_a_copy_of_the_config() -> None:
    def fn(config: dict[str, Any]) -> dict[str, float]:
        config["batch_size"] = 999
        config["junk"] = 1
        return OK

    result = deploytune.optimize(fn, SPACE, objective="accuracy", constraints=[LAT], budget=3,
                                 sampler="random", seed=0)
    for t in result.trials:
        assert Space.from_dict(SPACE).problems(t.config) == []


def test_callbacks_see_every_new_trial() -> None:
    seen: list[deploytune.TrialRecord] = []
    result = deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=5, sampler="random", seed=0, callbacks=[seen.append])
    assert [r.number for r in seen] == [0, 1, 2, 3, 4]
    assert [r.status for r in seen] == [t.status for t in result.trials]


def test_optuna_sampler_instance_accepted() -> None:
    result = deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=4, sampler=optuna.samplers.RandomSampler(seed=0))
    assert len(result.trials) == 4


def test_sampler_names_cover_the_contract() -> None:
    assert set(deploytune.available_samplers()) >= CONTRACT_SAMPLERS


@pytest.mark.parametrize("name", deploytune.available_samplers())
@pytest.mark.slow
def test_every_sampler_runs_on_a_conditional_space_with_crashes(name: str) -> None:
    space = Space.from_dict(SPACE)
    ev = Counting(deploy_evaluate)
    result = deploytune.optimize(ev, space, objective="accuracy", constraints=[LAT], budget=8,
                                 sampler=name, seed=0)
    assert len(ev.calls) == 8
    assert len(result.trials) == 8
    assert result.study is not None and len(result.study.trials) == 8
    for t in result.trials:
        assert space.problems(t.config) == [], (name, t.config)
        assert (t.status, t.crash_kind) == expected_of(t.config), (name, t.config)
    feasible = [t.value for t in result.trials if t.status is Status.FEASIBLE]
    if feasible:
        assert result.best_value == pytest.approx(max(feasible))  # type: ignore[type-var]
    else:
        assert result.best_value is None
    assert result.waste == pytest.approx(1 - len(feasible) / 8)


def test_unknown_sampler_lists_names() -> None:
    with pytest.raises(ValueError, match="unknown") as info:
        deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy", budget=3,
                            sampler="annealing-magic")
    msg = str(info.value)
    assert "'annealing-magic'" in msg
    for n in CONTRACT_SAMPLERS:
        assert n in msg


@pytest.mark.parametrize("budget", [0, -1, 2.5, True, "5", None])
def test_bad_budget(budget: Any) -> None:
    ev = Counting(deploy_evaluate)
    with pytest.raises(ValueError, match="budget"):
        deploytune.optimize(ev, SPACE, objective="accuracy", budget=budget, sampler="random")
    assert ev.calls == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"direction": "maximise"}, "direction"),
    ({"constraints": ["latency_p95_ms < 20"]}, "use <="),
    ({"constraints": ["latency_p95_ms <= 20", "latency_p95_ms <= 30"]}, "already has"),
    ({"objective": ""}, "objective"),
])
def test_bad_arguments_fail_before_any_evaluation(kwargs: dict[str, Any], match: str) -> None:
    ev = Counting(deploy_evaluate)
    args: dict[str, Any] = {"objective": "accuracy", "budget": 3, "sampler": "random", **kwargs}
    with pytest.raises(ValueError, match=match):
        deploytune.optimize(ev, SPACE, **args)
    assert ev.calls == []


def test_bad_space_dict_is_value_error() -> None:
    with pytest.raises(ValueError, match=r"'bs'.*low \(8\) > high \(1\)"):
        deploytune.optimize(deploy_evaluate, {"bs": {"type": "int", "low": 8, "high": 1}},
                            objective="accuracy", budget=3)


# ------------------------------------------------------------------------------------ storage


def _snapshot(study: optuna.Study) -> list[tuple[Any, ...]]:
    return [(t.number, t.state, t.params, t.values, t.user_attrs, t.constraints)
            for t in study.get_trials()]


def test_sqlite_storage_resume(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    ev = Counting(deploy_evaluate)
    kw: dict[str, Any] = {"objective": "accuracy", "constraints": [LAT], "sampler": "default",
                          "seed": 0, "storage": url}
    r1 = deploytune.optimize(ev, SPACE, budget=5, **kw)
    assert len(ev.calls) == 5 and len(r1.trials) == 5
    r2 = deploytune.optimize(ev, SPACE, budget=5, **kw)
    assert len(ev.calls) == 5  # nothing more was run
    assert [t.config for t in r2.trials] == [t.config for t in r1.trials]
    assert [t.status for t in r2.trials] == [t.status for t in r1.trials]
    r3 = deploytune.optimize(ev, SPACE, budget=8, **kw)
    assert len(ev.calls) == 8  # only the difference
    assert [t.number for t in r3.trials] == list(range(8))
    assert [t.config for t in r3.trials[:5]] == [t.config for t in r1.trials]
    for t in r3.trials:
        assert (t.status, t.crash_kind) == expected_of(t.config)
    study = optuna.load_study(study_name="deploytune", storage=url)
    assert len(study.trials) == 8
    assert all(t.state.is_finished() for t in study.trials)
    feasible = [t.value for t in r3.trials if t.status is Status.FEASIBLE]
    assert r3.best_value == (max(feasible) if feasible else None)  # type: ignore[type-var]
    # a smaller budget never deletes or re-runs anything
    r4 = deploytune.optimize(ev, SPACE, budget=3, **kw)
    assert len(ev.calls) == 8 and len(r4.trials) == 8


def test_sqlite_study_with_other_objective_or_constraints_is_refused(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    ev = Counting(deploy_evaluate)
    deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT], budget=3,
                        sampler="random", seed=0, storage=url)
    before = _snapshot(optuna.load_study(study_name="deploytune", storage=url))
    with pytest.raises(ValueError, match="objective"):
        deploytune.optimize(ev, SPACE, objective="throughput", constraints=[LAT], budget=5,
                            sampler="random", seed=0, storage=url)
    with pytest.raises(ValueError, match="constraints"):
        deploytune.optimize(ev, SPACE, objective="accuracy", constraints=["latency_p95_ms <= 30"],
                            budget=5, sampler="random", seed=0, storage=url)
    assert len(ev.calls) == 3
    assert _snapshot(optuna.load_study(study_name="deploytune", storage=url)) == before


@pytest.mark.parametrize(("change", "match"), [
    ({"direction": "minimize"}, "direction"),
    ({"constraints": []}, "constraints"),
    ({"space": {**SPACE, "batch_size": {"type": "int", "low": 1, "high": 32}}}, "space"),
])
def test_study_with_other_setup_is_refused(change: dict[str, Any], match: str) -> None:
    storage = optuna.storages.InMemoryStorage()
    ev = Counting(deploy_evaluate)
    base: dict[str, Any] = {"space": SPACE, "objective": "accuracy", "constraints": [LAT],
                            "budget": 3, "sampler": "random", "seed": 0, "storage": storage}
    deploytune.optimize(ev, **base)
    study = optuna.load_study(study_name="deploytune", storage=storage)
    before = _snapshot(study)
    with pytest.raises(ValueError, match=match):
        deploytune.optimize(ev, **{**base, **change, "budget": 6})
    assert len(ev.calls) == 3
    assert _snapshot(optuna.load_study(study_name="deploytune", storage=storage)) == before


def test_study_name_separates_studies() -> None:
    storage = optuna.storages.InMemoryStorage()
    kw: dict[str, Any] = {"constraints": [LAT], "budget": 2, "sampler": "random", "seed": 0,
                          "storage": storage}
    a = deploytune.optimize(deploy_evaluate, SPACE, objective="accuracy", study_name="a", **kw)
    b = deploytune.optimize(deploy_evaluate, SPACE, objective="throughput", study_name="b", **kw)
    assert len(a.trials) == 2 and len(b.trials) == 2


# ------------------------------------------------------- streaming, early abort, retries, time


def _streaming(config: dict[str, Any], report: Any) -> dict[str, float]:
    """Latency grows with the batch size; reported after the warm-up and each pass."""
    p95 = 4.0 * config["batch_size"]
    for step in range(3):
        report({"latency_p95_ms": p95}, step=step)
    return {"accuracy": 0.5 + config["batch_size"] / 100, "latency_p95_ms": p95}


def test_early_abort_uses_k5_before_feasible_and_k3_after() -> None:
    result = deploytune.optimize(_streaming, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=30, sampler="random", seed=3)
    feasible_seen = False
    for t in result.trials:
        p95 = 4.0 * t.config["batch_size"]
        k = 3 if feasible_seen else 5
        if p95 > k * 20:
            assert t.status is Status.ABORTED, t
            assert "early abort" in (t.error or "")
            assert t.metrics["latency_p95_ms"] == p95
        else:
            assert t.status in (Status.FEASIBLE, Status.INFEASIBLE)
        feasible_seen = feasible_seen or t.status is Status.FEASIBLE
    assert result.count(Status.ABORTED) > 0


def test_early_abort_switched_off() -> None:
    result = deploytune.optimize(_streaming, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=20, sampler="random", seed=3, early_abort=False)
    assert result.count(Status.ABORTED) == 0


def test_aborted_trial_records_estimated_seconds_saved() -> None:
    def slow(config: dict[str, Any], report: Any) -> dict[str, float]:
        p95 = 4.0 * config["batch_size"]
        report({"latency_p95_ms": p95, "progress": 0.5})
        time.sleep(0.01)
        return {"accuracy": 0.5, "latency_p95_ms": p95}

    result = deploytune.optimize(slow, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=20, sampler="random", seed=3)
    aborted = [t for t in result.trials if t.status is Status.ABORTED]
    assert aborted and all(t.seconds_saved is not None and t.seconds_saved >= 0
                           for t in aborted)


def test_pruner_on_the_streamed_objective() -> None:
    def fn(config: dict[str, Any], report: Any) -> dict[str, float]:
        acc = 0.5 + config["batch_size"] / 100
        for step in range(5):
            report({"accuracy": acc * (step + 1) / 5}, step=step)
        return {"accuracy": acc, "latency_p95_ms": 1.0}

    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    result = deploytune.optimize(fn, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=20, sampler="random", seed=0, pruner=pruner)
    pruned = [t for t in result.trials if t.status is Status.ABORTED]
    assert pruned and all("pruned at step" in (t.error or "") for t in pruned)
    assert result.count(Status.FEASIBLE) + len(pruned) == 20


def test_transient_retry_through_optimize() -> None:
    failed: set[int] = set()

    def fn(config: dict[str, Any]) -> dict[str, float]:
        key = hash(tuple(sorted(config.items())))
        if key not in failed:
            failed.add(key)
            raise OSError("[Errno 98] Address already in use")
        return OK

    result = deploytune.optimize(fn, SPACE, objective="accuracy", constraints=[LAT], budget=5,
                                 sampler="random", seed=0,
                                 rules=[{"pattern": "Address already in use",
                                         "kind": "transient"}])
    assert [t.status for t in result.trials] == [Status.FEASIBLE] * 5
    assert all(t.attempts == 2 for t in result.trials)


def test_time_budget_stops_starting_trials() -> None:
    def fn(config: dict[str, Any]) -> dict[str, float]:
        time.sleep(0.05)
        return OK

    result = deploytune.optimize(fn, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=None, time_budget_s=0.3, sampler="random", seed=0)
    assert 4 <= len(result.trials) <= 8


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"budget": None}, "give a number of evaluations"),
    ({"time_budget_s": -1}, "time_budget_s"),
    ({"retries": -1}, "retries"),
    ({"rules": [{"pattern": "(", "kind": "oom"}]}, "not a valid regular expression"),
    ({"rules": [{"pattern": "x", "kind": "boom"}]}, "crash kind 'boom' is unknown"),
    ({"early_abort": {"before_feasible": 0}}, "early_abort.before_feasible"),
])
def test_bad_arguments_are_named(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        deploytune.optimize(lambda c: OK, SPACE, objective="accuracy", **kwargs)


# ------------------------------------------------------------ stops the user has to act on

class _FailingSampler(optuna.samplers.RandomSampler):
    """Random search whose proposal raises from the ``fail_at``-th trial on."""

    def __init__(self, fail_at: int) -> None:
        super().__init__(seed=0)
        self.fail_at = fail_at

    def sample_independent(self, study: optuna.Study, trial: Any, name: str,
                           distribution: Any) -> Any:
        if trial.number >= self.fail_at:
            raise ValueError("Input y contains NaN.")
        return super().sample_independent(study, trial, name, distribution)


def test_a_failing_sampler_is_not_counted_as_a_crashed_evaluation(tmp_path: Any) -> None:
    """Issue 16, item 3: a sampler that raised was recorded as a crashed evaluation on every
    resume, and the budget shrank by one each time."""
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    ev = Counting(lambda c: OK)
    kw: dict[str, Any] = {"objective": "accuracy", "constraints": [LAT], "budget": 5,
                          "storage": url}
    for _ in range(3):  # three failed resumes
        with pytest.raises(deploytune.SamplerFailed,
                           match=r"^the sampler .* failed while proposing trial \d+ "
                                 r"\(ValueError: Input y contains NaN\.\); nothing was"):
            deploytune.optimize(ev, SPACE, sampler=_FailingSampler(fail_at=2), **kw)
    assert len(ev.calls) == 2
    study = optuna.load_study(study_name="deploytune", storage=url)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    result = deploytune.optimize(ev, SPACE, sampler="random", seed=0, **kw)
    assert len(ev.calls) == 5 and len(result.trials) == 5
    assert result.count(Status.CRASHED) == 0 and result.interrupted == 3


@pytest.mark.slow
def test_a_misspelt_metric_stops_at_the_first_evaluation_and_costs_nothing(
        tmp_path: Any) -> None:
    """Issue 16, item 11: a typo in a metric name made every trial a runtime_error and the
    whole budget was spent. Now the first evaluation that ran stops the tuner with one line
    naming the metric, what was reported and the closest name; the trial is not counted."""
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    ev = Counting(lambda c: {"accuracy": 0.8, "latency_p95_ms": 10.0})
    kw: dict[str, Any] = {"objective": "accuracy", "budget": 4, "sampler": "random",
                          "seed": 0, "storage": url}
    with pytest.raises(deploytune.MetricNotReported) as info:
        deploytune.optimize(ev, SPACE, constraints=["latency_p95 <= 20"], **kw)
    message = str(info.value)
    assert "\n" not in message
    assert "no metric 'latency_p95'" in message and "did you mean 'latency_p95_ms'?" in message
    assert "it reported: accuracy, latency_p95_ms" in message
    assert len(ev.calls) == 1
    # the corrected spec claims the study (nothing was evaluated) and evaluates the queued
    # configuration first
    result = deploytune.optimize(ev, SPACE, constraints=[LAT], **kw)
    assert len(result.trials) == 4 and result.count(Status.FEASIBLE) == 4
    assert result.trials[0].config == ev.calls[0]


def test_a_metric_missing_after_others_ran_is_a_crash_of_that_trial() -> None:
    ev = Counting(lambda c: OK if len(ev.calls) == 1 else {"accuracy": 0.5})
    result = deploytune.optimize(ev, SPACE, objective="accuracy", constraints=[LAT], budget=3,
                                 sampler="random", seed=0)
    assert [t.status for t in result.trials] == [Status.FEASIBLE, Status.CRASHED,
                                                 Status.CRASHED]


@pytest.mark.parametrize("step", [-1, 10**30, 2.5, True])
def test_a_malformed_streamed_step_never_turns_a_good_run_into_a_crash(
        step: Any, tmp_path: Any) -> None:
    """Issue 16, item 10: ``report(..., step=-1)`` under a pruner made Optuna raise, and the
    good run was recorded as a crash; such a step is now kept from the pruner only."""
    def evaluate(config: dict[str, Any], report: Any) -> dict[str, float]:
        report({"accuracy": 0.5}, step=step)
        return OK

    result = deploytune.optimize(evaluate, SPACE, objective="accuracy", constraints=[LAT],
                                 budget=2, sampler="random", seed=0,
                                 storage=f"sqlite:///{tmp_path / 's.db'}",
                                 pruner=optuna.pruners.MedianPruner(n_startup_trials=0))
    assert [t.status for t in result.trials] == [Status.FEASIBLE, Status.FEASIBLE]
