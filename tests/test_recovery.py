"""Tests of deploytune.recovery: trials left running by a killed tuner are found, marked
interrupted and their configurations queued again, exactly once. The dead tuner is a real
process that asks for a trial and dies without finishing it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
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


@pytest.mark.slow
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


@pytest.mark.slow
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


_KILLER = textwrap.dedent("""
    import os, signal, sys
    import optuna
    import deploytune

    WHERE = sys.argv[2]

    class KillingSampler(optuna.samplers.RandomSampler):
        '''Random search that SIGKILLs its own process at one instant of a trial's start.'''

        def before_trial(self, study, trial):
            if WHERE == "popped" and trial.system_attrs.get("fixed_params"):
                os.kill(os.getpid(), signal.SIGKILL)  # after ask popped a queued trial
            super().before_trial(study, trial)

        def sample_independent(self, study, trial, name, distribution):
            if WHERE == "suggest" and name == "y" and len(study.trials) >= 3:
                os.kill(os.getpid(), signal.SIGKILL)  # parameters half written
            return super().sample_independent(study, trial, name, distribution)

    deploytune.optimize(lambda c: {"v": c["x"] + c["y"]},
                        {"x": {"type": "float", "low": 0, "high": 1},
                         "y": {"type": "float", "low": 0, "high": 1}},
                        objective="v", budget=5, sampler=KillingSampler(seed=1),
                        storage=sys.argv[1])
""")
SPACE_XY: dict[str, Any] = {"x": {"type": "float", "low": 0, "high": 1},
                            "y": {"type": "float", "low": 0, "high": 1}}


def _killed_at(url: str, where: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILLER, url, where], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr


@pytest.mark.slow
def test_a_kill_right_after_ask_popped_a_queued_trial_loses_nothing(tmp_path: Path) -> None:
    """Issue 16, item 6: a kill after ``study.ask()`` popped a queued trial and before the
    worker was recorded left the trial RUNNING forever and its configuration lost."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    deploytune.optimize(lambda c: {"v": c["x"] + c["y"]}, SPACE_XY, objective="v", budget=1,
                        sampler="random", seed=0, storage=url)
    study = optuna.load_study(study_name="deploytune", storage=url)
    study.enqueue_trial({"x": 0.25, "y": 0.5})
    _killed_at(url, "popped")
    study = optuna.load_study(study_name="deploytune", storage=url)
    popped = [t for t in study.trials if t.state is TrialState.RUNNING]
    assert len(popped) == 1 and popped[0].user_attrs.get(ATTR_WORKER) is not None
    result = deploytune.optimize(lambda c: {"v": c["x"] + c["y"]}, SPACE_XY, objective="v",
                                 budget=4, sampler="random", seed=0, storage=url)
    study = optuna.load_study(study_name="deploytune", storage=url)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert len(result.trials) == 4
    assert [t.config for t in result.trials].count({"x": 0.25, "y": 0.5}) == 1


@pytest.mark.slow
def test_a_kill_while_the_sampler_chooses_queues_no_partial_config(tmp_path: Path) -> None:
    """A trial cut short with half its parameters is interrupted without queueing the half
    configuration (the sampler proposes afresh), and the budget stays exact."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    _killed_at(url, "suggest")
    study = optuna.load_study(study_name="deploytune", storage=url)
    cut = [t for t in study.trials if t.state is TrialState.RUNNING]
    assert len(cut) == 1 and set(cut[0].params) == {"x"}
    result = deploytune.optimize(lambda c: {"v": c["x"] + c["y"]}, SPACE_XY, objective="v",
                                 budget=5, sampler="random", seed=0, storage=url)
    study = optuna.load_study(study_name="deploytune", storage=url)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert len(result.trials) == 5 and result.interrupted == 1
    assert all(set(t.config) == {"x", "y"} for t in result.trials)
    assert not [t for t in study.trials if t.user_attrs.get(ATTR_REQUEUED_FROM) == cut[0].number]


def test_resume_ends_the_processes_a_killed_tuner_left_behind() -> None:
    """The fallback behind the per-trial supervisors (issue 16, item 5): a process marked with
    the identity of a tuner that is gone (``DEPLOYTUNE_OWNER``, inherited from the trial's
    command) is ended when the study it was running a trial of is resumed."""
    import signal
    import socket

    from deploytune.evaluators.lifetime import OWNER_ENV

    dead = {"host": socket.gethostname(), "pid": 2**22 + 12345, "start": "42"}
    assert not Path(f"/proc/{dead['pid']}").exists()
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                env={**os.environ, OWNER_ENV: f"{dead['pid']}:{dead['start']}"},
                                start_new_session=True)
    try:
        study = optuna.create_study()
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr(ATTR_WORKER, dead)
        time.sleep(0.2)  # the child has exec'd python, environment in place
        assert recover_stale_trials(study) == [trial.number]
        assert leftover.wait(timeout=10) == -signal.SIGTERM
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_a_new_trial_left_without_owner_or_parameters_becomes_interrupted() -> None:
    """A tuner killed between ``ask`` creating a trial and stamping it leaves a RUNNING trial
    that nobody owns and that holds nothing; after a grace period recovery records it as
    interrupted (it is never evaluated nor counted), and leaves a fresh one alone."""
    import datetime

    from optuna.trial import FrozenTrial

    from deploytune.recovery import ORPHAN_GRACE_S

    study = optuna.create_study()
    storage, study_id = study._storage, study._study_id

    def running(age_s: float) -> int:
        start = datetime.datetime.now() - datetime.timedelta(seconds=age_s)
        template = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None,
                               datetime_start=start, datetime_complete=None, params={},
                               distributions={}, user_attrs={}, system_attrs={},
                               intermediate_values={}, trial_id=-1)
        return storage.get_trial(storage.create_new_trial(study_id, template)).number

    old, fresh = running(ORPHAN_GRACE_S + 30), running(1)
    assert recover_stale_trials(study) == [old]
    states = {t.number: t.state for t in study.trials}
    assert states[old] is TrialState.FAIL and states[fresh] is TrialState.RUNNING
    assert not study.get_trials(states=(TrialState.WAITING,))
