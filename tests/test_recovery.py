"""Tests of deploytune.recovery: trials left running by a killed tuner are found, marked
interrupted and their configurations queued again, exactly once. The dead tuner is a real
process that asks for a trial and dies without finishing it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

import deploytune
from deploytune.history import ATTR_INTERRUPTED, ATTR_REQUEUED_FROM, ATTR_WORKER
from deploytune.recovery import recover_stale_trials, worker_identity

SPACE: dict[str, Any] = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def _evaluate(config: dict[str, Any]) -> dict[str, float]:
    return {"y": config["x"]}


def _die_while_running(url: str) -> None:
    """A real process starts a trial the way the tuner does, then dies with os._exit."""
    code = textwrap.dedent(f"""
        import os, optuna
        from deploytune.recovery import worker_identity
        study = optuna.load_study(study_name="deploytune", storage={url!r})
        trial = study.ask()
        trial.set_user_attr("dt.worker", worker_identity())
        trial.suggest_float("x", 0.0, 1.0)
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 9, proc.stderr


def test_stale_running_trial_is_requeued_and_budget_stays_exact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    deploytune.optimize(_evaluate, SPACE, objective="y", budget=3, sampler="random", seed=0,
                        storage=url)
    _die_while_running(url)
    study = optuna.load_study(study_name="deploytune", storage=url)
    stale = study.trials[-1]
    assert stale.state is TrialState.RUNNING
    result = deploytune.optimize(_evaluate, SPACE, objective="y", budget=6, sampler="random",
                                 seed=0, storage=url)
    assert len(result.trials) == 6 and result.interrupted == 1
    study = optuna.load_study(study_name="deploytune", storage=url)
    old = study.trials[stale.number]
    assert old.state is TrialState.FAIL and old.user_attrs[ATTR_INTERRUPTED] is True
    requeued = [t for t in study.trials if t.user_attrs.get(ATTR_REQUEUED_FROM) == stale.number]
    assert len(requeued) == 1 and requeued[0].state is TrialState.COMPLETE
    assert requeued[0].params == stale.params
    xs = [t.config["x"] for t in result.trials]
    assert len(set(xs)) == len(xs)  # nothing evaluated twice


def test_recovery_is_idempotent_and_skips_live_and_foreign_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    deploytune.optimize(_evaluate, SPACE, objective="y", budget=1, sampler="random", seed=0,
                        storage=url)
    _die_while_running(url)
    study = optuna.load_study(study_name="deploytune", storage=url)
    live = study.ask()  # this process is alive
    live.set_user_attr(ATTR_WORKER, worker_identity())
    foreign = study.ask()  # a process on another host
    foreign.set_user_attr(ATTR_WORKER, {"host": "elsewhere", "pid": 1, "start": None})
    assert recover_stale_trials(study) == [1]
    assert recover_stale_trials(study) == []
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    states = {t.number: t.state for t in study.trials}
    assert states[live.number] is TrialState.RUNNING
    assert states[foreign.number] is TrialState.RUNNING


def test_reused_pid_with_another_start_time_is_stale(tmp_path: Path) -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    me = worker_identity()
    trial.set_user_attr(ATTR_WORKER, {**me, "pid": os.getpid(), "start": "not-my-start"})
    if me["start"] is None:  # no /proc: only liveness can be checked
        assert recover_stale_trials(study) == []
    else:
        assert recover_stale_trials(study) == [trial.number]
