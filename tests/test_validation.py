"""Re-runs through optimize(): during the search (within the budget) and of the finalists
(after it), their records, resume, and the recommendation they lead to."""

from __future__ import annotations

import random
from typing import Any

import optuna
import pytest

import deploytune
from deploytune.history import ATTR_REPEAT_OF, ATTR_VALIDATION
from deploytune.validation import Validation, parse_validation

SPACE: dict[str, Any] = {
    "precision": {"type": "categorical", "choices": ["fp32", "int8"]},
    "batch": {"type": "int", "low": 1, "high": 32},
}


class Noisy:
    """p95 grows with the batch; int8 is faster and 20 % noisy, fp32 1 % (seeded)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, config: dict[str, Any]) -> dict[str, float]:
        self.calls.append(dict(config))
        int8 = config["precision"] == "int8"
        base = (2.0 + 0.5 * config["batch"]) * (0.6 if int8 else 1.0)
        p95 = base * (1.0 + self.rng.gauss(0.0, 0.2 if int8 else 0.01))
        return {"throughput": 100.0 * config["batch"] / base, "p95_ms": p95}


def tune(validation: Any, budget: int = 10, seed: int = 0, **kw: Any) -> deploytune.Result:
    return deploytune.optimize(Noisy(seed), SPACE, "throughput", "maximize", ["p95_ms <= 8"],
                               budget=budget, seed=seed, sampler="random",
                               validation=validation, **kw)


def search_runs(result: deploytune.Result) -> list[Any]:
    return [t for t in result.trials if not t.validation]


def test_without_validation_the_budget_is_exactly_the_trials() -> None:
    result = tune(False)
    assert len(result.trials) == 10
    assert all(t.repeat_of is None and not t.validation for t in result.trials)


def test_finalists_are_rerun_after_the_budget_on_top_of_it() -> None:
    result = tune(Validation(finalists=2, repeats=2, during_search=False))
    search, final = search_runs(result), [t for t in result.trials if t.validation]
    assert len(search) == 10
    assert 1 <= len(final) <= 4
    first_runs = {t.number: t.config for t in search}
    for t in final:
        assert t.repeat_of in first_runs and t.config == first_runs[t.repeat_of]
        assert t.number > max(first_runs)
    frozen = result.study.trials[final[0].number]  # type: ignore[union-attr]
    assert frozen.user_attrs[ATTR_VALIDATION] is True
    assert frozen.user_attrs[ATTR_REPEAT_OF] == final[0].repeat_of


def test_a_finalist_stops_being_rerun_once_it_has_one_plus_repeats_runs() -> None:
    result = tune(Validation(finalists=1, repeats=3, during_search=False), budget=12, seed=3)
    final = [t for t in result.trials if t.validation]
    assert {t.repeat_of for t in final} == {final[0].repeat_of}
    runs = sum(t.config == final[0].config for t in result.trials)
    assert runs <= 1 + 3


def test_reruns_during_the_search_are_evaluations_of_the_budget(tmp_path: Any) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="deploytune", storage=storage, direction="maximize")
    study.enqueue_trial({"precision": "int8", "batch": 22})  # seed 4: p95 7.86, 1.7 % margin
    result = tune(Validation(finalists=0, repeats=2, during_search=True), budget=20, seed=4,
                  storage=storage)
    assert len(result.trials) == 20
    repeats = [t for t in result.trials if t.repeat_of is not None]
    assert repeats, "the int8 incumbent at the limit should have been run again"
    by_number = {t.number: t for t in result.trials}
    for t in repeats:
        assert not t.validation and by_number[t.repeat_of].config == t.config
    counts: dict[Any, int] = {}
    for t in result.trials:
        key = tuple(sorted(t.config.items()))
        counts[key] = counts.get(key, 0) + 1
    assert max(counts.values()) <= 3


def test_the_recommendation_pools_every_run_of_a_configuration() -> None:
    result = tune(Validation(finalists=3, repeats=2), budget=15, seed=2)
    rec = result.recommendation
    assert rec is not None
    assert rec.runs.runs == sum(t.config == rec.config for t in result.trials)
    assert rec.runs.runs >= 1


def test_a_kill_during_validation_keeps_the_rerun_a_rerun(tmp_path: Any) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    noisy = Noisy(0)
    state = {"armed": True}

    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        if state["armed"] and len(noisy.calls) == 8:
            state["armed"] = False
            raise KeyboardInterrupt
        return noisy(config)

    kw: dict[str, Any] = {"budget": 8, "seed": 0, "sampler": "random", "storage": storage,
                          "validation": Validation(finalists=2, repeats=2, during_search=False)}
    with pytest.raises(KeyboardInterrupt):
        deploytune.optimize(evaluate, SPACE, "throughput", "maximize", ["p95_ms <= 8"], **kw)
    waiting = optuna.load_study(study_name="deploytune", storage=storage).get_trials(
        states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs[ATTR_VALIDATION] is True
    result = deploytune.optimize(evaluate, SPACE, "throughput", "maximize", ["p95_ms <= 8"],
                                 **kw)
    assert len(search_runs(result)) == 8  # the search was not extended by the interruption
    assert any(t.validation for t in result.trials)


def test_the_chance_constraint_changes_with_confidence() -> None:
    loose = tune(Validation(finalists=3, repeats=2), budget=15, seed=4, confidence=0.5)
    strict = tune(Validation(finalists=3, repeats=2), budget=15, seed=4, confidence=0.99)
    assert loose.recommendation is not None and strict.recommendation is not None
    assert loose.recommendation.runs.p_feasible >= 0.5
    if strict.recommendation.reliable:
        assert strict.recommendation.runs.p_feasible >= 0.99


@pytest.mark.parametrize(("value", "match"), [
    ({"finalists": -1}, "^validation.finalists: must be an integer >= 0"),
    ({"repeats": 1.5}, "^validation.repeats: must be an integer >= 0"),
    ({"during_search": "yes"}, "^validation.during_search: must be true or false"),
    ({"finalist": 3}, "^validation.finalist: unknown field; use during_search, finalists, "
                      "repeats"),
    ("many", "^validation: expected a mapping"),
])
def test_bad_validation_settings_are_named(value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_validation(value)


def test_bad_confidence_fails_before_any_evaluation() -> None:
    noisy = Noisy()
    with pytest.raises(ValueError, match=r"^confidence: must be a probability"):
        deploytune.optimize(noisy, SPACE, "throughput", "maximize", ["p95_ms <= 8"], budget=3,
                            confidence=1.0)
    assert noisy.calls == []


@pytest.mark.parametrize("validation", [False, Validation(finalists=2, repeats=1)])
def test_a_trial_queued_after_the_budget_is_not_run(tmp_path: Any, validation: Any) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    tune(False, budget=5, storage=storage)
    study = optuna.load_study(study_name="deploytune", storage=storage)
    study.enqueue_trial({"precision": "fp32", "batch": 3})
    result = tune(validation, budget=5, storage=storage)
    assert len(search_runs(result)) == 5  # the budget was spent: the queued one waits
    assert all(t.repeat_of is not None for t in result.trials[5:])
