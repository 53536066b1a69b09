"""Tests of deploytune.history: recording outcomes on Optuna trials and reading them back."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from deploytune import Constraint, CrashKind, Objective, Outcome, Space, Status
from deploytune.history import (
    ATTR_CONSTRAINT_LABELS,
    ATTR_COST,
    ATTR_CRASH_KIND,
    ATTR_ERROR,
    ATTR_METRICS,
    ATTR_STATUS,
    OPTUNA_CONSTRAINTS_ATTR,
    TrialRecord,
    observation_of,
    observations,
    record,
)
from deploytune.outcome import judge

SPACE = Space.from_dict({
    "backend": {"type": "categorical", "choices": ["eager", "compile"]},
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
    "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager"]}},
})
OBJ = Objective("accuracy")
CONS = [Constraint.parse("latency_ms <= 20"), Constraint.parse("throughput >= 100")]


@pytest.fixture
def study() -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))


def _outcomes() -> dict[str, Outcome]:
    out = {
        "feasible": judge({"accuracy": 0.9, "latency_ms": 10.0, "throughput": 150.0}, OBJ, CONS,
                          cost_s=1.5),
        "infeasible": judge({"accuracy": 0.95, "latency_ms": 30.0, "throughput": 150.0}, OBJ,
                            CONS, cost_s=2.25),
        "aborted": judge({"accuracy": 0.4, "latency_ms": 50.0}, OBJ, CONS, cost_s=0.75,
                         aborted=True),
        "missing_metric": judge({"accuracy": 0.9}, OBJ, CONS, cost_s=0.5),
    }
    for kind in CrashKind:
        out[f"crashed_{kind.value}"] = Outcome.crashed(kind, f"{kind.value} happened", 3.0,
                                                       {"load_s": 1.0})
    return out


OUTCOMES = _outcomes()


def _check_round_trip(study: optuna.Study, outcome: Outcome) -> None:
    trial = study.ask()
    config = SPACE.suggest(trial)
    frozen = record(study, trial, outcome)
    stored = study.trials[frozen.number]
    for t in (frozen, stored):
        obs = observation_of(t)
        assert obs is not None
        assert obs.number == trial.number
        assert obs.config == config
        assert obs.status is outcome.status
        assert obs.crash_kind is outcome.crash_kind
        assert obs.cost_s == pytest.approx(outcome.cost_s)
        assert obs.violations == pytest.approx(outcome.violations)
        if outcome.status in (Status.FEASIBLE, Status.INFEASIBLE, Status.ABORTED):
            assert obs.value == pytest.approx(outcome.value), "the measured value is lost"
        else:
            assert obs.value is None
        assert t.user_attrs[ATTR_STATUS] == outcome.status.value
        assert t.user_attrs[ATTR_METRICS] == pytest.approx(outcome.metrics)
        assert t.user_attrs[ATTR_COST] == pytest.approx(outcome.cost_s)
        if outcome.crash_kind is not None:
            assert t.user_attrs[ATTR_CRASH_KIND] == outcome.crash_kind.value
            assert t.user_attrs[ATTR_ERROR] == outcome.error
        else:
            assert ATTR_CRASH_KIND not in t.user_attrs


@pytest.mark.parametrize("name", list(OUTCOMES))
def test_record_observation_round_trip(study: optuna.Study, name: str) -> None:
    _check_round_trip(study, OUTCOMES[name])


def test_record_observation_round_trip_sqlite(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    study = optuna.create_study(storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    names = [n for n in OUTCOMES if n != "aborted"]
    for name in names:
        _check_round_trip(study, OUTCOMES[name])
    reloaded = optuna.load_study(study_name=study.study_name, storage=url)
    assert [o.status for o in observations(reloaded)] == [OUTCOMES[n].status for n in names]
    _check_round_trip(study, OUTCOMES["aborted"])


def test_record_states_and_constraints(study: optuna.Study) -> None:
    expected = {"feasible": TrialState.COMPLETE, "infeasible": TrialState.COMPLETE,
                "aborted": TrialState.PRUNED, "crashed_oom": TrialState.FAIL}
    for name, state in expected.items():
        trial = study.ask()
        SPACE.suggest(trial)
        t = record(study, trial, OUTCOMES[name])
        assert t.state is state
        stored = study.trials[t.number]
        if state is TrialState.FAIL:
            assert stored.constraints == {}
        else:
            # the list form: Optuna reads it by position (one entry per constraint, no
            # duplicates), optuna-dashboard reads the list itself, the labels keep the names
            violations = OUTCOMES[name].violations
            labels = stored.user_attrs[ATTR_CONSTRAINT_LABELS]
            assert labels == list(violations)
            assert stored.system_attrs[OPTUNA_CONSTRAINTS_ATTR] == pytest.approx(
                [violations[k] for k in labels])
            assert stored.constraints == pytest.approx(
                {str(i): violations[k] for i, k in enumerate(labels)})
            assert not [k for k in stored.system_attrs if k.startswith("constraints:")]
        if state is TrialState.COMPLETE:
            assert stored.value == pytest.approx(OUTCOMES[name].value)
    feasible, infeasible = study.trials[0], study.trials[1]
    assert all(v <= 0 for v in feasible.constraints.values())
    assert any(v > 0 for v in infeasible.constraints.values())


def test_constraints_attr_is_the_one_optuna_and_optuna_dashboard_read() -> None:
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
    from optuna_dashboard._serializer import CONSTRAINTS_KEY

    assert OPTUNA_CONSTRAINTS_ATTR == _CONSTRAINTS_KEY == CONSTRAINTS_KEY


def test_no_constraints_writes_nothing(study: optuna.Study) -> None:
    trial = study.ask()
    SPACE.suggest(trial)
    t = record(study, trial, judge({"accuracy": 0.5}, OBJ, []))
    stored = study.trials[t.number]
    assert stored.constraints == {} and ATTR_CONSTRAINT_LABELS not in stored.user_attrs
    assert OPTUNA_CONSTRAINTS_ATTR not in stored.system_attrs


def test_infinite_violation_round_trips(study: optuna.Study) -> None:
    outcome = judge({"accuracy": 0.5, "latency_ms": math.inf, "throughput": -math.inf}, OBJ,
                    CONS)
    assert outcome.violations == {"latency_ms_max": math.inf, "throughput_min": math.inf}
    trial = study.ask()
    SPACE.suggest(trial)
    record(study, trial, outcome)
    stored = study.trials[0]
    assert all(math.isfinite(v) and v > 0 for v in stored.system_attrs[OPTUNA_CONSTRAINTS_ATTR])
    obs = observation_of(stored)
    assert obs is not None and obs.status is Status.INFEASIBLE
    assert obs.violations == outcome.violations


def test_best_trial_skips_infeasible_trials() -> None:
    """Optuna's own ``study.best_trial`` sees the constraints: the infeasible trial has the
    higher accuracy but is not best."""
    study = optuna.create_study(direction="maximize")
    for name in ("feasible", "infeasible", "crashed_oom"):
        trial = study.ask()
        SPACE.suggest(trial)
        record(study, trial, OUTCOMES[name])
    assert study.trials[1].value > study.trials[0].value
    assert study.best_trial.number == 0


def _record_pre_labels(study: optuna.Study, outcome: Outcome) -> None:
    """How deploytune recorded a trial before the list form: named constraints only."""
    trial = study.ask()
    SPACE.suggest(trial)
    trial.set_user_attr(ATTR_STATUS, outcome.status.value)
    for label, v in outcome.violations.items():
        trial.set_constraint(label, v)
    study.tell(trial, outcome.value)


@pytest.mark.slow
def test_studies_recorded_before_the_list_form_still_read(tmp_path: Any) -> None:
    """A study begun with named constraints and resumed with the list form reads back the
    same labels for both kinds of trials, and Optuna's best trial stays feasible."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = optuna.create_study(storage=url, study_name="s", direction="maximize",
                              sampler=optuna.samplers.RandomSampler(seed=0))
    _record_pre_labels(old, OUTCOMES["feasible"])
    _record_pre_labels(old, OUTCOMES["infeasible"])
    resumed = optuna.load_study(study_name="s", storage=url)
    for name in ("infeasible", "feasible"):
        trial = resumed.ask()
        SPACE.suggest(trial)
        record(resumed, trial, OUTCOMES[name])
    obs = observations(optuna.load_study(study_name="s", storage=url))
    expected = ["feasible", "infeasible", "infeasible", "feasible"]
    assert [o.status for o in obs] == [OUTCOMES[n].status for n in expected]
    for o, name in zip(obs, expected, strict=True):
        assert o.violations == pytest.approx(OUTCOMES[name].violations)
    assert resumed.best_trial.number in (0, 3)


def test_missing_metric_is_recorded_as_crashed_runtime_error(study: optuna.Study) -> None:
    trial = study.ask()
    SPACE.suggest(trial)
    t = record(study, trial, OUTCOMES["missing_metric"])
    assert t.state is TrialState.FAIL
    obs = observation_of(study.trials[0])
    assert obs is not None and obs.status is Status.CRASHED
    assert obs.crash_kind is CrashKind.RUNTIME_ERROR
    assert "'latency_ms'" in study.trials[0].user_attrs[ATTR_ERROR]


def test_non_finite_metrics_are_stored_json_safe(study: optuna.Study) -> None:
    o = judge({"accuracy": 0.9, "latency_ms": 10.0, "throughput": 150.0, "spread": math.nan,
               "peak": math.inf}, OBJ, CONS)
    assert o.status is Status.FEASIBLE
    trial = study.ask()
    SPACE.suggest(trial)
    record(study, trial, o)
    metrics = study.trials[0].user_attrs[ATTR_METRICS]
    assert metrics["accuracy"] == pytest.approx(0.9)
    assert metrics["spread"] == "nan" and metrics["peak"] == "inf"


def test_long_error_is_truncated(study: optuna.Study) -> None:
    trial = study.ask()
    SPACE.suggest(trial)
    record(study, trial, Outcome.crashed(CrashKind.RUNTIME_ERROR, "x" * 5000 + "END"))
    err = study.trials[0].user_attrs[ATTR_ERROR]
    assert 0 < len(err) <= 2000
    assert err.endswith("END")  # the tail (where the exception is) is kept


def test_observation_properties() -> None:
    feasible = TrialRecord(0, {}, Status.FEASIBLE, violations={"a": -0.5})
    infeasible = TrialRecord(1, {}, Status.INFEASIBLE, violations={"a": 0.5, "b": 0.25, "c": -1})
    transient = TrialRecord(2, {}, Status.CRASHED, CrashKind.TRANSIENT)
    oom = TrialRecord(3, {}, Status.CRASHED, CrashKind.OOM)
    aborted = TrialRecord(4, {}, Status.ABORTED)
    assert feasible.feasible and not feasible.bad and not feasible.crashed
    assert feasible.total_violation == 0.0
    assert infeasible.bad and not infeasible.feasible
    assert infeasible.total_violation == pytest.approx(0.75)
    assert transient.crashed and transient.transient and not transient.bad
    assert oom.crashed and oom.bad and not oom.transient
    assert aborted.bad and not aborted.crashed


def test_running_trial_has_no_observation() -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_int("x", 0, 3)
    assert observation_of(study.trials[0]) is None
    assert observations(study) == []
    study.tell(trial, 1.0)
    assert [o.number for o in observations(study)] == [0]


# ------------------------------------------------------------------------- plain Optuna trials


def _plain_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_int("x", 0, 5)
    if x == 0:
        raise ValueError("boom")
    if x == 1:
        trial.report(0.3, 0)
        trial.report(0.7, 3)
        raise optuna.TrialPruned()
    return float(x)


def test_plain_optuna_trials_are_read() -> None:
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    study.optimize(_plain_objective, n_trials=6, catch=(ValueError,))
    obs = observations(study)
    assert [o.number for o in obs] == list(range(6))
    by_x = {o.config["x"]: o for o in obs}
    assert set(by_x) == set(range(6))
    failed = by_x[0]
    assert failed.status is Status.CRASHED and failed.crash_kind is CrashKind.RUNTIME_ERROR
    assert failed.value is None
    pruned = by_x[1]
    assert pruned.status is Status.ABORTED and pruned.crash_kind is None
    assert pruned.value == pytest.approx(0.7)  # last reported intermediate value
    for x in range(2, 6):
        assert by_x[x].status is Status.FEASIBLE
        assert by_x[x].value == pytest.approx(float(x))
        assert by_x[x].crash_kind is None
        assert by_x[x].cost_s == 0.0


def test_plain_optuna_trials_with_constraints() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 0, 5)
        trial.set_constraint("c", x - 3.0)
        return float(x)

    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    study.optimize(objective, n_trials=6)
    for o in observations(study):
        assert o.violations == {"c": pytest.approx(o.config["x"] - 3.0)}
        assert o.status is (Status.FEASIBLE if o.config["x"] <= 3 else Status.INFEASIBLE)


def test_plain_added_trials() -> None:
    study = optuna.create_study()
    dist = {"x": optuna.distributions.IntDistribution(0, 5)}
    study.add_trial(create_trial(params={"x": 1}, distributions=dist, value=2.0))
    study.add_trial(create_trial(params={"x": 2}, distributions=dist, state=TrialState.FAIL))
    study.add_trial(create_trial(params={"x": 3}, distributions=dist, state=TrialState.PRUNED))
    # a deploytune trial whose crash kind was lost still reads as a runtime error
    study.add_trial(create_trial(params={"x": 4}, distributions=dist, state=TrialState.FAIL,
                                 user_attrs={ATTR_STATUS: "crashed"}))
    statuses = [(o.status, o.crash_kind) for o in observations(study)]
    assert statuses == [
        (Status.FEASIBLE, None),
        (Status.CRASHED, CrashKind.RUNTIME_ERROR),
        (Status.ABORTED, None),
        (Status.CRASHED, CrashKind.RUNTIME_ERROR),
    ]
    pruned = observations(study)[2]
    assert pruned.value is None  # nothing reported


def test_observations_of_given_trials_sorted() -> None:
    study = optuna.create_study()
    for v in (3.0, 1.0, 2.0):
        t = study.ask()
        t.suggest_int("x", 0, 3)
        study.tell(t, v)
    trials = list(reversed(study.trials))
    assert [o.number for o in observations(study, trials)] == [0, 1, 2]
    assert [o.value for o in observations(study)] == [3.0, 1.0, 2.0]
