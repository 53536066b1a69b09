"""``smac3``: the real SMAC3 package (``pip install 'deploytune[peers]'``) as a peer sampler."""

from __future__ import annotations

import importlib.util
import logging
import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest

import deploytune
from deploytune.history import TrialRecord
from deploytune.outcome import CrashKind, Status
from deploytune.samplers import available, make_sampler
from deploytune.space import Space
from tests.toy import CONSTRAINTS, toy_evaluate

pytest.importorskip("smac", reason="needs the peers extra: pip install 'deploytune[peers]'")
from smac.runhistory import StatusType

from deploytune.samplers._configspace import ConfigSpaceEncoding
from deploytune.samplers.smac3 import Smac3Sampler, Smac3Settings, told_values

# SMAC 2.3.1's initial design calls ConfigSpace APIs that ConfigSpace 1.x deprecates
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = Space.from_dict({
    "backend": {"type": "categorical", "choices": ["eager", "compile"]},
    "batch": {"type": "int", "low": 8, "high": 128, "step": 8},
    "tp": {"type": "categorical", "choices": [1, 2, 4]},
    "threads": {"type": "int", "low": 1, "high": 16, "log": True,
                "when": {"backend": ["eager"]}},
    "frac": {"type": "float", "low": 0.5, "high": 0.95, "step": 0.05,
             "when": {"backend": ["compile"]}},
})


def small_evaluate(config: dict[str, Any]) -> dict[str, float]:
    """Large batches run out of memory; latency is a constraint."""
    if config["batch"] > 96:
        raise MemoryError("CUDA out of memory")
    speed = config.get("frac", 0.7) if config["backend"] == "compile" else 1.0
    return {"throughput": config["batch"] * config["tp"] * speed,
            "latency_ms": config["batch"] / config["tp"] * (1 + 1 / config.get("threads", 4))}


def run_small(sampler: Any, budget: int = 12, seed: int = 0) -> deploytune.Result:
    return deploytune.optimize(small_evaluate, SMALL, objective="throughput",
                               constraints=["latency_ms <= 40"], budget=budget,
                               sampler=sampler, seed=seed)


def test_registered_and_built_by_name() -> None:
    assert "smac3" in available()
    sampler = make_sampler("smac3[infeasible=penalty]", space=SMALL, seed=0, budget=25)
    assert isinstance(sampler, Smac3Sampler)
    assert sampler.settings == Smac3Settings(infeasible="penalty")
    assert sampler.budget == 25
    assert make_sampler("smac3", space=SMALL, seed=0).budget == 50  # type: ignore[attr-defined]


@pytest.mark.parametrize("name, message", [
    ("smac3[nope=1]", "smac3: unknown option.*nope"),
    ("smac3[infeasible=ignore]", "smac3: option infeasible must be one of crash, penalty"),
    ("smac3[crash_cost=.inf]", "smac3: option crash_cost must be a finite number"),
])
def test_bad_options_fail_when_built(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_sampler(name, space=SMALL, seed=0, budget=10)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "smac" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'deploytune\[peers\]'") as err:
        make_sampler("smac3", space=SMALL, seed=0, budget=10)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_a_real_run_with_crashes_proposes_valid_configurations() -> None:
    sampler = Smac3Sampler(SMALL, seed=0, budget=12)
    result = run_small(sampler)
    assert len(result.trials) == 12
    assert sampler.fallbacks == 0  # every configuration came from SMAC
    statuses = {t.status for t in result.trials}
    assert Status.CRASHED in statuses and Status.FEASIBLE in statuses
    for t in result.trials:
        assert SMALL.problems(t.config) == [], t.config
        assert ("threads" in t.config) == (t.config["backend"] == "eager")
        assert ("frac" in t.config) == (t.config["backend"] == "compile")
    keys = [SMALL.key(t.config) for t in result.trials]
    assert len(set(keys)) == len(keys)


@pytest.mark.slow
def test_history_is_told_as_smac_statuses() -> None:
    """Crashes and (by default) infeasible runs are CRASHED with the largest SUCCESS cost;
    feasible runs SUCCESS with cost = -throughput; SMAC's run history holds exactly that."""
    sampler = Smac3Sampler(SMALL, seed=1, budget=12)
    result = run_small(sampler, seed=1)
    assert result.study is not None
    by_status = {s: [t for t in result.trials if t.status is s] for s in Status}
    assert by_status[Status.CRASHED] and by_status[Status.FEASIBLE]
    loop = sampler.loop(result.study, len(result.trials))
    told = {}
    for key, value in loop.smac.runhistory.items():
        config = loop.encoding.config(loop.smac.runhistory.get_config(key.config_id))
        told[SMALL.key(config)] = (value.status, value.cost)
    assert len(told) == len(result.trials)
    best_cost = max(-t.value for t in by_status[Status.FEASIBLE])  # type: ignore[operator]
    for t in result.trials:
        status, cost = told[SMALL.key(t.config)]
        if t.status is Status.FEASIBLE:
            assert (status, cost) == (StatusType.SUCCESS, pytest.approx(-t.value))
        else:
            assert (status, cost) == (StatusType.CRASHED, pytest.approx(best_cost)), t.status


@pytest.mark.slow
def test_the_loop_is_smacs_own_ask_and_tell_loop(tmp_path: Path) -> None:
    """Driven through the study, the sampler proposes exactly what a SMAC3 user's loop with
    the same facade, scenario and seed asks for: forest retrained every 8 proposals, etc."""
    from smac import HyperparameterOptimizationFacade, Scenario
    from smac.runhistory import TrialValue

    result = run_small(Smac3Sampler(SMALL, seed=3, budget=20), budget=20, seed=3)
    encoding = ConfigSpaceEncoding(SMALL, seed=3)
    smac = HyperparameterOptimizationFacade(
        Scenario(encoding.cs, deterministic=True, n_trials=20, seed=3,
                 output_directory=tmp_path / "smac3"), lambda c, seed=0: 0.0,
        overwrite=True, logging_level=False)
    best = None
    asked = []
    for _ in range(20):
        info = smac.ask()
        config = encoding.config(info.config)
        asked.append(config)
        try:
            metrics = small_evaluate(config)
        except MemoryError:
            metrics = None
        feasible = metrics is not None and metrics["latency_ms"] <= 40
        if feasible:
            assert metrics is not None
            best = max(best or -1e300, -metrics["throughput"])
        smac.tell(info, TrialValue(cost=-metrics["throughput"] if feasible and metrics
                                   else 0.0, status=StatusType.SUCCESS if feasible
                                   else StatusType.CRASHED), save=False)
        # the crash cost: the largest SUCCESS cost so far, re-told when it moves
        for key, value in list(smac.runhistory.items()):
            if value.status == StatusType.CRASHED and value.cost != (best or 0.0):
                from smac.runhistory import TrialInfo
                smac.tell(TrialInfo(smac.runhistory.get_config(key.config_id), seed=key.seed),
                          TrialValue(cost=best or 0.0, status=StatusType.CRASHED), save=False)
    assert [t.config for t in result.trials] == asked


@pytest.mark.slow
def test_a_copy_replays_the_loop_and_proposes_the_same() -> None:
    """After the initial design and a forest batch, a fresh copy (resume, another process,
    pickling) rebuilds the loop from the study and proposes what the original proposes."""
    original = Smac3Sampler(SMALL, seed=5, budget=16)
    first = optuna.create_study(sampler=original, direction="maximize")
    objective = lambda t: float(sum(v for v in SMALL.suggest(t).values()  # noqa: E731
                                    if isinstance(v, (int, float))))
    first.optimize(objective, n_trials=14)
    copy = pickle.loads(pickle.dumps(original))
    assert copy._loop is None and original._loop is not None
    second = optuna.create_study(sampler=copy, direction="maximize")
    second.add_trials(first.trials)
    first.optimize(objective, n_trials=2)
    second.optimize(objective, n_trials=2)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert original.fallbacks == copy.fallbacks == 0


def test_penalty_mode_tells_infeasible_runs_as_penalised_successes() -> None:
    def obs(n: int, status: Status, value: float | None, v: float = 0.0,
            kind: CrashKind | None = None) -> TrialRecord:
        return TrialRecord(n, {"x": n}, status, kind, value, {"lat": v})

    history = [obs(0, Status.FEASIBLE, 10.0, -0.5), obs(1, Status.FEASIBLE, 4.0, -0.1),
               obs(2, Status.INFEASIBLE, 12.0, 0.5),
               obs(3, Status.CRASHED, None, kind=CrashKind.OOM),
               obs(4, Status.CRASHED, None, kind=CrashKind.TRANSIENT),
               obs(5, Status.ABORTED, 11.0, -0.2), obs(6, Status.INFEASIBLE, None, 0.3)]
    # maximising: cost = -value; span of the feasible costs = 6
    penalty = told_values(history, 1.0, Smac3Settings(infeasible="penalty"))
    assert penalty == {0: (-10.0, False), 1: (-4.0, False),
                       2: (pytest.approx(-12.0 + 6 * 0.5), False), 3: (-4.0, True),
                       5: (pytest.approx(-11.0 + 6 * 1e-3), False), 6: (-4.0, True)}
    crash = told_values(history, 1.0, Smac3Settings())
    assert crash == {0: (-10.0, False), 1: (-4.0, False), 2: (-4.0, True), 3: (-4.0, True),
                     5: (-4.0, True), 6: (-4.0, True)}
    fixed = told_values(history, -1.0, Smac3Settings(crash_cost=99.0))
    assert fixed == {0: (10.0, False), 1: (4.0, False), 2: (99.0, True), 3: (99.0, True),
                     5: (99.0, True), 6: (99.0, True)}
    assert told_values(history[3:5], 1.0, Smac3Settings()) == {3: (0.0, True)}


def test_initial_design_is_one_sobol_design_of_the_run_seed() -> None:
    """Rebuilt every ask, SMAC still walks through the initial design of one uninterrupted
    run: trial k of the initial phase is point k of the Sobol design seeded by the run seed."""
    from smac import HyperparameterOptimizationFacade, Scenario

    sampler = Smac3Sampler(SMALL, seed=4, budget=24)
    result = run_small(sampler, budget=6, seed=4)
    encoding = ConfigSpaceEncoding(SMALL, seed=0)
    scenario = Scenario(encoding.cs, deterministic=True, n_trials=24, seed=4)
    design = HyperparameterOptimizationFacade.get_initial_design(scenario)
    points = [encoding.config(c) for c in design.select_configurations()]
    assert len(points) == 6  # a quarter of the budget
    assert [t.config for t in result.trials] == points


def test_space_conversion_round_trips_every_kind() -> None:
    space = Space.from_dict({
        "flag": {"type": "categorical", "choices": [True, False]},
        "mode": {"type": "categorical", "choices": [None, "a"]},
        "tp": {"type": "categorical", "choices": [4, 1, 2]},
        "batch": {"type": "int", "low": 8, "high": 64, "step": 8},
        "frac": {"type": "float", "low": 0.5, "high": 0.95, "step": 0.05},
        "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "n": {"type": "int", "low": 1, "high": 100, "log": True,
              "when": {"flag": [True], "tp": [2, 4]}},
    }, forbidden=[{"tp": [1], "batch": [8, 16]}])
    encoding = ConfigSpaceEncoding(space, seed=0)
    assert type(encoding.cs["tp"]).__name__ == "OrdinalHyperparameter"
    assert list(encoding.cs["tp"].sequence) == [1, 2, 4]
    rng = __import__("numpy").random.default_rng(0)
    for _ in range(50):
        config = space.sample(rng)
        back = encoding.config(encoding.configuration(config))
        assert back.pop("lr") == pytest.approx(config.pop("lr"), rel=1e-8)  # ConfigSpace rounds
        assert back == config
    for configuration in encoding.cs.sample_configuration(50):
        config = encoding.config(configuration)
        assert space.is_valid(config), config
        assert all(type(config[k]) is bool for k in ("flag",))


def test_forbidden_combinations_are_never_proposed(space: deploytune.Space) -> None:
    sampler = Smac3Sampler(space, seed=2, budget=14)
    result = deploytune.optimize(toy_evaluate, space, objective="accuracy",
                                 constraints=CONSTRAINTS, budget=14, sampler=sampler, seed=2)
    assert sampler.fallbacks == 0
    assert all(space.is_valid(t.config) for t in result.trials)


def test_a_smac_failure_becomes_a_random_unseen_configuration(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: Smac3Sampler, study: Any, number: int) -> Any:
        raise RuntimeError("pyrfr fell over")

    monkeypatch.setattr(Smac3Sampler, "loop", broken)
    sampler = Smac3Sampler(SMALL, seed=0, budget=5)
    with caplog.at_level(logging.WARNING, logger="deploytune.samplers.smac3"):
        result = run_small(sampler, budget=5)
    assert sampler.fallbacks == 5 and "pyrfr fell over" in caplog.text
    assert all(SMALL.is_valid(t.config) for t in result.trials)
    assert len({SMALL.key(t.config) for t in result.trials}) == 5


@pytest.mark.slow
def test_an_exhausted_space_falls_back_without_errors() -> None:
    """On a space of 4 configurations SMAC runs out of new ones; the tuner never sees it."""
    tiny = Space.from_dict({"a": {"type": "categorical", "choices": ["x", "y"]},
                            "b": {"type": "categorical", "choices": [True, False]}})
    sampler = Smac3Sampler(tiny, seed=0, budget=8)
    result = deploytune.optimize(lambda c: {"v": float(c["a"] == "x") + float(c["b"])}, tiny,
                                 objective="v", budget=8, sampler=sampler, seed=0)
    assert len(result.trials) == 8 and all(tiny.is_valid(t.config) for t in result.trials)
    assert len({tiny.key(t.config) for t in result.trials[:4]}) == 4
    assert sampler.fallbacks >= 4


def test_smac_leaves_the_root_logger_and_the_working_directory_alone(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    study = optuna.create_study(sampler=Smac3Sampler(SMALL, seed=0, budget=6),
                                direction="maximize")
    study.optimize(lambda t: float(sum(v for v in SMALL.suggest(t).values()
                                       if isinstance(v, (int, float)))), n_trials=6)
    assert root.handlers == handlers and root.level == level
    assert list(tmp_path.iterdir()) == []  # no smac3_output left behind
