"""``deploytune tune --workers N`` and ``deploytune worker`` end to end, as real processes;
the spec's ``resources`` section and its storages for several workers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from deploytune.history import ATTR_LEASE, ATTR_VALIDATION, is_interrupted
from deploytune.spec import SpecError, parse_spec
from tests.test_cli_tune import DEPLOYTUNE, ROOT, cli, write_spec

TOY = Path(__file__).resolve().parents[1] / "toy.py"


def _spec(folder: Path, **extra: Any) -> dict[str, Any]:
    (folder / "evaluate.py").write_text(
        "import time\n"
        "from tests.toy import toy_evaluate\n\n"
        "def evaluate(config):\n"
        "    time.sleep(0.2)\n"
        "    return toy_evaluate(config)\n")
    return {
        "study": "w",
        "space": {"model": {"type": "categorical", "choices": ["small", "medium", "large"]},
                  "backend": {"type": "categorical",
                              "choices": ["eager", "compile", "onnxruntime"]},
                  "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
                  "mem_frac": {"type": "float", "low": 0.7, "high": 0.98}},
        "objective": {"maximize": "accuracy"},
        "constraints": ["latency_ms <= 40", "memory_mb <= 900"],
        "evaluator": {"python": "evaluate:evaluate",
                      "env": {"PYTHONPATH": str(TOY.parents[1])}},
        "budget": {"trials": 12},
        "validation": {"finalists": 1, "repeats": 1},
        "seed": 0,
        **extra,
    }


@pytest.mark.slow
def test_tune_with_workers_runs_the_exact_budget_then_the_finalists(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, _spec(tmp_path, resources={"kind": "gpu", "devices": 2}))
    proc = cli("tune", str(spec), "--workers", "3", "--plain", "--no-report", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study w: 3 workers" in proc.stdout and "[worker 3]" in proc.stdout
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path / 'spec.db'}")
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    search = [t for t in trials if t.state.is_finished() and not is_interrupted(t)
              and not t.user_attrs.get(ATTR_VALIDATION)]
    assert len(search) == 12
    assert len({json.dumps(t.params, sort_keys=True) for t in search}) == 12
    assert all(len(t.user_attrs[ATTR_LEASE]["devices"]) == 1 for t in search)


@pytest.mark.slow
def test_a_worker_joins_the_study_of_a_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, _spec(tmp_path, storage="journal:///study.log"))
    proc = cli("worker", str(spec), "--plain", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = cli("show", str(spec))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "12 trials" in shown.stdout


def test_workers_need_a_shared_storage(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, _spec(tmp_path, storage="sqlite://"))
    proc = cli("tune", str(spec), "--workers", "2")
    assert proc.returncode == 2
    assert "--workers" in proc.stderr and "postgresql://" in proc.stderr


@pytest.mark.parametrize("resources, field", [
    ({"devices": 0}, "resources.devices"),
    ({"devices": 2, "per_trial": "{tp}"}, "resources.per_trial"),
    ({"devices": 2, "gpu": 1}, "resources.gpu"),
    ("4", "resources"),
])
def test_bad_resources_name_the_field(tmp_path: Path, resources: Any, field: str) -> None:
    data = _spec(tmp_path, resources=resources)
    with pytest.raises(SpecError) as err:
        parse_spec(data, base_dir=tmp_path, check_evaluator=False)
    assert err.value.field_path == field


def test_resources_and_journal_storage_round_trip(tmp_path: Path) -> None:
    data = _spec(tmp_path, storage="journal:///j.log",
                 resources={"kind": "cpu", "devices": [0], "per_trial": 1})
    spec = parse_spec(data, base_dir=tmp_path, check_evaluator=False)
    assert spec.storage == f"journal:///{tmp_path / 'j.log'}"
    again = parse_spec(spec.to_dict(), base_dir=tmp_path, check_evaluator=False)
    assert again.resources == spec.resources


def _wait_for_running(db: Path, count: int, timeout_s: float = 120) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            study = optuna.load_study(study_name="w", storage=storage)
            if sum(t.state == TrialState.RUNNING
                   for t in study.get_trials(deepcopy=False)) >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"{count} trials never ran at once")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_stopping_tune_with_workers_records_their_trials_and_leaves_no_process(
        tmp_path: Path, how: str) -> None:
    """SIGTERM to ``tune --workers 2``, or Ctrl-C (SIGINT to its process group, as a
    terminal sends it), while both workers evaluate: exit 130, both running trials recorded
    as interrupted, no worker left running, and the same command resumes to the full budget."""
    data = _spec(tmp_path)
    data["evaluator"]["python"] = "evaluate:evaluate"
    (tmp_path / "evaluate.py").write_text(
        "import time\nfrom tests.toy import toy_evaluate\n\n"
        "def evaluate(config):\n    time.sleep(3)\n    return toy_evaluate(config)\n")
    spec = write_spec(tmp_path, {**data, "budget": {"trials": 4}, "validation": False})
    proc = subprocess.Popen([*DEPLOYTUNE, "tune", str(spec), "--workers", "2", "--plain",
                             "--no-report"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_running(tmp_path / "spec.db", 2)
        workers = _children(proc.pid)
        assert len(workers) >= 2
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out
    assert "recorded as interrupted" in out
    assert not [p for p in workers if Path(f"/proc/{p}").exists()
                and "Z" not in (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3])]
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path / 'spec.db'}")
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(is_interrupted(t) for t in trials) == 2

    again = cli("tune", str(spec), "--workers", "2", "--plain", "--no-report", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path / 'spec.db'}"
                               ).get_trials(deepcopy=False)
    # every evaluation of the budget, whatever its outcome (the toy crashes in places)
    assert sum(t.state.is_finished() and not is_interrupted(t) for t in trials) == 4
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
