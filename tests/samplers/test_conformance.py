"""Conformance suite run against every registered sampler (in the spirit of Optuna's
``optuna/testing/pytest_samplers.py``): seeding, reproducibility across processes,
conditional parameters, all-crash histories, resume from a study that already holds trials,
and use as a plain Optuna sampler."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import optuna
import pytest

import deploytune
from deploytune.outcome import Status
from deploytune.samplers import make_sampler
from tests.toy import CONSTRAINTS, FORBIDDEN, SPACE_DICT, toy_evaluate

# cabo-no-memory differs from cabo only on spaces with memory declarations, which the toy
# space has none of: it would repeat cabo's runs here (tests/samplers/test_memory.py covers it,
# resume included).
SAMPLERS = [s for s in deploytune.available_samplers() if s != "cabo-no-memory"]
# The GP sampler costs ~0.4 s per ask on 2 cores: it runs the same checks on smaller budgets.
# So do cabo's ablations: cabo itself (and "default") runs the full budgets, and each ablation
# switches one component off, which a shorter run exercises as well.
BUDGET = {"gp": 11, **{s: 11 for s in SAMPLERS if s.startswith("cabo-")}}


def budget_of(name: str, default: int = 18) -> int:
    return BUDGET.get(name, default)


def run(name: str, space: deploytune.Space, seed: int, budget: int,
        evaluate: Any = toy_evaluate, storage: Any = None) -> deploytune.Result:
    return deploytune.optimize(evaluate, space, objective="accuracy", direction="maximize",
                               constraints=CONSTRAINTS, budget=budget, sampler=name, seed=seed,
                               storage=storage)


def configs(result: deploytune.Result) -> list[dict[str, Any]]:
    return [t.config for t in result.trials]


def test_registry_has_every_required_name() -> None:
    for name in ("random", "tpe", "ctpe", "gp", "tba", "tba-tpe", "default"):
        assert name in SAMPLERS


@pytest.mark.parametrize("name", SAMPLERS)
def test_is_an_optuna_sampler(name: str, space: deploytune.Space) -> None:
    assert isinstance(make_sampler(name, space=space, seed=0, budget=10),
                      optuna.samplers.BaseSampler)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.slow
def test_same_seed_same_trials_and_configs_valid(name: str, space: deploytune.Space) -> None:
    a = run(name, space, seed=3, budget=budget_of(name))
    b = run(name, space, seed=3, budget=budget_of(name))
    assert configs(a) == configs(b)
    assert len(a.trials) == budget_of(name)
    for t in a.trials:
        assert space.problems(t.config) == [], (t.number, t.config)
        # conditional parameter present exactly when its parent allows it
        assert ("threads" in t.config) == (t.config["backend"] != "compile")


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.slow
def test_different_seeds_differ(name: str, space: deploytune.Space) -> None:
    a = run(name, space, seed=1, budget=8)
    b = run(name, space, seed=2, budget=8)
    assert configs(a) != configs(b)


_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import deploytune
    from toy import SPACE_DICT, FORBIDDEN, CONSTRAINTS, toy_evaluate
    space = deploytune.Space.from_dict(SPACE_DICT, forbidden=FORBIDDEN)
    r = deploytune.optimize(toy_evaluate, space, objective="accuracy", direction="maximize",
                            constraints=CONSTRAINTS, budget={budget}, sampler={name!r}, seed=7)
    print(json.dumps([t.config for t in r.trials]))
""")


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.slow
def test_reproducible_across_processes(name: str, space: deploytune.Space) -> None:
    """Each child process has its own hash seed: nothing may depend on it."""
    import pathlib

    budget = budget_of(name, 14)
    code = _CHILD.format(tests=str(pathlib.Path(__file__).parents[1]), budget=budget, name=name)
    outs = []
    for hash_seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**__import__("os").environ, "PYTHONHASHSEED": hash_seed},
                              check=True, timeout=300)
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    here = run(name, space, seed=7, budget=budget)
    assert json.loads(json.dumps(configs(here))) == outs[0]


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.slow
def test_all_crash_history(name: str, space: deploytune.Space) -> None:
    def always_oom(config: dict[str, Any]) -> dict[str, float]:
        raise MemoryError("out of memory")

    result = run(name, space, seed=0, budget=budget_of(name, 15), evaluate=always_oom)
    assert len(result.trials) == budget_of(name, 15)
    assert all(t.status is Status.CRASHED for t in result.trials)
    assert result.best_config is None and result.best_value is None
    assert result.waste == 1.0
    for t in result.trials:
        assert space.is_valid(t.config)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.slow
def test_resume_from_study_with_trials_behaves_like_one_run(
        name: str, space: deploytune.Space, tmp_path: Any) -> None:
    """Stopping after k trials and resuming (new process state, new sampler object) gives
    exactly the trials of an uninterrupted run: sampler state comes from the history."""
    budget = budget_of(name, 16)
    whole = run(name, space, seed=5, budget=budget)
    url = f"sqlite:///{tmp_path / 'study.db'}"

    class Stop(Exception):
        pass

    def stop_halfway(record: deploytune.TrialRecord) -> None:
        if record.number + 1 == budget // 2:
            raise Stop

    with pytest.raises(Stop):
        deploytune.optimize(toy_evaluate, space, objective="accuracy", constraints=CONSTRAINTS,
                            budget=budget, sampler=name, seed=5, storage=url,
                            callbacks=[stop_halfway])
    resumed = run(name, space, seed=5, budget=budget, storage=url)
    assert len(resumed.trials) == budget
    assert configs(resumed) == configs(whole)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.slow
def test_continues_a_study_started_by_another_sampler(name: str, space: deploytune.Space) -> None:
    storage = optuna.storages.InMemoryStorage()
    run("random", space, seed=0, budget=6, storage=storage)
    result = run(name, space, seed=0, budget=budget_of(name, 14), storage=storage)
    assert len(result.trials) == budget_of(name, 14)
    assert all(space.is_valid(t.config) for t in result.trials)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.slow
def test_plain_optuna_usage(name: str, space: deploytune.Space) -> None:
    """The sampler works inside a plain ``study.optimize`` loop with FAIL trials."""
    sampler = make_sampler(name, space=space, seed=0, budget=10)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        config = space.suggest(trial)
        if config["batch_size"] > 48:
            raise RuntimeError("crash")
        return float(toy_evaluate(config)["accuracy"]) if config["model"] != "small" or \
            config["backend"] != "onnxruntime" else 0.0

    study.optimize(objective, n_trials=budget_of(name, 10), catch=(RuntimeError, MemoryError))
    assert len(study.trials) == budget_of(name, 10)
    for t in study.trials:
        assert space.is_valid(t.params)


def test_forbidden_combinations_never_proposed(space: deploytune.Space) -> None:
    for name in ("random", "tba", "tba-tpe"):
        result = run(name, space, seed=11, budget=25)
        for t in result.trials:
            assert not (t.config["backend"] == "compile" and t.config["model"] == "large")


def test_forbidden_listed_in_conftest_matches() -> None:
    # guard: the suite really exercises a forbidden combination and a conditional parameter
    assert FORBIDDEN and any("when" in d for d in SPACE_DICT.values())
