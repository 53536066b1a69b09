"""Several real worker processes on one study: PostgreSQL (a real server, tests/postgres.py),
SQLite and journal files; exact budgets, no duplicates, SIGKILLed workers on this host and on
"another host" (a second host identity, ``DEPLOYTUNE_HOST``), device leases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from deploytune.history import (
    ATTR_ERROR,
    ATTR_HEARTBEAT,
    ATTR_INTERRUPTED,
    ATTR_LEASE,
    ATTR_METRICS,
    ATTR_REQUEUED_FROM,
    ATTR_WORKER,
    is_interrupted,
)
from deploytune.parallel.coordination import lease_folder_for
from deploytune.parallel.leases import LOG_NAME, max_in_use
from deploytune.recovery import HOST_ENV

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _new_database(postgres_url: str) -> str:
    """A fresh database on the test server (a fresh schema for Optuna to create)."""
    import sqlalchemy

    name = f"dt_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return postgres_url.replace("/postgres?", f"/{name}?")


def _start(args: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.parallel.workload", json.dumps(args)],
                            cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 240) -> None:
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode in (0, -signal.SIGKILL), out.decode()[-3000:]


def _evaluations(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() and not is_interrupted(t)]


def _check_exact(storage: str | optuna.storages.BaseStorage, budget: int,
                 study_name: str = "workers") -> optuna.Study:
    study = optuna.load_study(study_name=study_name, storage=storage)
    evaluations = _evaluations(study)
    assert len(evaluations) == budget
    keys = [json.dumps(t.params, sort_keys=True) for t in evaluations]
    assert len(set(keys)) == len(keys), "a configuration was evaluated twice"
    left = [t.number for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert left == []
    return study


@pytest.mark.parametrize("repeat", range(2))
def test_four_postgres_workers_run_the_exact_budget_without_duplicates(
        postgres_url: str, repeat: int) -> None:
    storage = _new_database(postgres_url)  # workers start together on a fresh schema
    args = {"storage": storage, "budget": 50, "sampler": "cabo", "seed": repeat,
            "sleep_s": 0.05}
    _finish([_start({**args}) for _ in range(4)])
    _check_exact(storage, 50)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_file_storages_with_workers(tmp_path: Path, kind: str) -> None:
    storage = (f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite"
               else f"journal:///{tmp_path / 'study.log'}")
    _finish([_start({"storage": storage, "budget": 30, "sampler": "cabo", "sleep_s": 0.05})
             for _ in range(2)])
    if kind == "sqlite":
        _check_exact(storage, 30)
    else:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        journal = JournalStorage(JournalFileBackend(str(tmp_path / "study.log")))
        _check_exact(journal, 30)


def _wait_for_running_trial(storage: str, pid: int, timeout: float = 120) -> int:
    """The number of a trial that worker ``pid`` is evaluating (one storage object for all the
    polls: a new one per poll would hold a server connection each until collected)."""
    rdb = optuna.storages.RDBStorage(storage)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                study = optuna.load_study(study_name="workers", storage=rdb)
            except KeyError:
                time.sleep(0.1)
                continue
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                # evaluating (its heartbeat began), not still writing its parameters
                if (t.user_attrs.get(ATTR_WORKER) or {}).get("pid") == pid \
                        and ATTR_HEARTBEAT in t.user_attrs:
                    return t.number
            time.sleep(0.05)
    finally:
        rdb.engine.dispose()
    raise AssertionError("the worker never ran a trial")


@pytest.mark.parametrize("other_host", [False, True], ids=["same-host", "other-host"])
def test_a_sigkilled_workers_trial_is_run_again_exactly_once(postgres_url: str,
                                                             other_host: bool) -> None:
    """On this host the dead process is recognised at once; on "another host" (its own host
    identity) only by its heartbeat stopping (6 x 0.3 s)."""
    storage = _new_database(postgres_url)
    args = {"storage": storage, "budget": 24, "sleep_s": 1.0, "heartbeat_s": 0.3}
    victim = _start(args, {HOST_ENV: "other-host"} if other_host else None)
    number = _wait_for_running_trial(storage, victim.pid)
    others = [_start(args) for _ in range(2)]
    victim.kill()
    victim.wait()
    _finish(others)
    study = _check_exact(storage, 24)
    killed = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    assert killed.state is TrialState.FAIL and killed.user_attrs[ATTR_INTERRUPTED]
    if other_host:
        assert "stopped beating" in killed.user_attrs[ATTR_ERROR]
    reruns = [t for t in study.get_trials(deepcopy=False)
              if t.user_attrs.get(ATTR_REQUEUED_FROM) == number]
    assert len(reruns) == 1 and reruns[0].state is TrialState.COMPLETE
    assert reruns[0].params == killed.params


def test_gpu_leases_never_oversubscribe(postgres_url: str) -> None:
    """4 "GPUs" (no GPU exists here: a lease sets CUDA_VISIBLE_DEVICES, which the evaluation
    checks), trials of tensor-parallel size 1, 2 or 4, three workers."""
    storage = _new_database(postgres_url)
    args = {"storage": storage, "budget": 18, "sleep_s": 0.3,
            "resources": {"kind": "gpu", "devices": 4, "per_trial": "{tp}"}}
    _finish([_start(args) for _ in range(3)])
    study = _check_exact(storage, 18)
    ran = [t for t in _evaluations(study) if ATTR_LEASE in t.user_attrs]
    assert len(ran) >= 10  # the others crashed before any lease (the toy's own crashes)
    assert all(len(t.user_attrs[ATTR_LEASE]["devices"]) == t.params["tp"] for t in ran)
    peak = max_in_use(lease_folder_for(storage, "workers") / LOG_NAME)
    assert 4 >= peak >= 2  # several trials held devices at once, never more than 4


def test_cpu_leases_pin_each_evaluation_to_its_cores(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cores = sorted(os.sched_getaffinity(0))[:2]
    args = {"storage": storage, "budget": 10, "sleep_s": 0.1,
            "resources": {"kind": "cpu", "devices": cores, "per_trial": 1}}
    _finish([_start(args) for _ in range(2)])
    study = _check_exact(storage, 10)
    measured = [t.user_attrs[ATTR_METRICS]["cores"] for t in _evaluations(study)
                if "cores" in t.user_attrs.get(ATTR_METRICS, {})]
    assert measured and all(n == 1.0 for n in measured)
