"""The Optuna-backed baselines: how each one sees the history."""

from __future__ import annotations

import importlib.util
from typing import Any

import optuna
import pytest

import deploytune
from deploytune.samplers import make_sampler
from deploytune.samplers._view import HistoryView, PlainTransform
from tests.toy import CONSTRAINTS, toy_evaluate


def test_gp_without_torch_names_the_extra(space: deploytune.Space,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch *is* installed in the test environment, so its absence is simulated by hiding
    it from ``importlib.util.find_spec``."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ImportError, match=r"deploytune\[gp\]"):
        make_sampler("gp", space=space, seed=0)


def test_plain_view_hides_constraints_and_keeps_crashes_as_fail(space: deploytune.Space) -> None:
    study = optuna.create_study(direction="maximize")
    deploytune.optimize(toy_evaluate, space, objective="accuracy", constraints=CONSTRAINTS,
                        budget=20, sampler="random", seed=0, storage=study._storage,
                        study_name=study.study_name)
    mirror = HistoryView(space, PlainTransform()).sync(study)
    assert all(not t.constraints for t in mirror.trials)
    real_fail = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    assert real_fail > 0
    assert sum(t.state == optuna.trial.TrialState.FAIL for t in mirror.trials) == real_fail


@pytest.mark.slow
def test_ctpe_learns_to_avoid_a_crash_zone_that_tpe_keeps_hitting() -> None:
    """Half of the space (mode=b) always runs out of memory, but it also holds the better
    objective values among the trials that TPE *sees*: plain TPE (crashes as FAIL) keeps
    proposing it; constrained TPE with graded crashes learns to stay away."""
    space = deploytune.Space.from_dict({
        "mode": {"type": "categorical", "choices": ["a", "b"]},
        "x": {"type": "float", "low": 0.0, "high": 1.0},
    })

    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        if config["mode"] == "b" and config["x"] > 0.05:
            raise MemoryError("zone")
        return {"f": config["x"] + (1.0 if config["mode"] == "b" else 0.0)}

    def crashes(name: str) -> int:
        total = 0
        for seed in range(4):
            r = deploytune.optimize(evaluate, space, objective="f", budget=30, sampler=name,
                                    seed=seed)
            total += sum(t.status.value == "crashed" for t in r.trials[10:])
        return total

    assert crashes("ctpe") < crashes("tpe")
