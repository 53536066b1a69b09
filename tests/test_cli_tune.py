"""``deploytune tune`` and ``deploytune show`` end to end, as real processes.

The crash zoo runs a real script that segfaults, exhausts its memory cap, hangs, exits with code
3, prints garbage, prints 100 MB, forks a child that keeps running and fails transiently once,
all in one tuning run. The resume tests kill a real tuner process with SIGKILL and SIGINT in the
middle of a trial and run the same command again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from deploytune.cli import app
from deploytune.history import ATTR_INTERRUPTED, ATTR_REQUEUED_FROM
from deploytune.outcome import CrashKind, Status
from deploytune.tuner import Result
from tests.evaluators.targets import wait_dead

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "tests" / "cli_scripts" / "zoo.py"
DEPLOYTUNE = [sys.executable, "-m", "deploytune.cli"]
runner = CliRunner()

ZOO_EXPECTED: dict[str, tuple[Status, CrashKind | None]] = {
    "ok": (Status.FEASIBLE, None),
    "infeasible": (Status.INFEASIBLE, None),
    "segfault": (Status.CRASHED, CrashKind.RUNTIME_ERROR),
    "hog": (Status.CRASHED, CrashKind.OOM),
    "sleep": (Status.CRASHED, CrashKind.TIMEOUT),
    "exit3": (Status.CRASHED, CrashKind.RUNTIME_ERROR),
    "garbage": (Status.CRASHED, CrashKind.RUNTIME_ERROR),
    "flood": (Status.FEASIBLE, None),
    "fork": (Status.FEASIBLE, None),
    "transient": (Status.FEASIBLE, None),
}


def write_spec(folder: Path, data: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*DEPLOYTUNE, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def zoo_spec(folder: Path) -> dict[str, Any]:
    return {
        "study": "zoo",
        "space": {"mode": {"type": "categorical", "choices": list(ZOO_EXPECTED)}},
        "objective": {"maximize": "score"},
        "constraints": ["p95_ms <= 20"],
        "evaluator": {"command": {"argv": ["{python}", str(ZOO), "{mode}", str(folder)]},
                      "timeout_s": 3, "memory_mb": 400, "retries": 1,
                      "rules": [{"pattern": "Address already in use", "kind": "transient"}]},
        "budget": {"trials": len(ZOO_EXPECTED)},
        "validation": False,  # exactly one run per behaviour (re-runs: tests/test_validation.py)
        "sampler": "random",
        "seed": 0,
    }


@pytest.mark.slow
def test_the_tuner_survives_the_crash_zoo_in_one_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, zoo_spec(tmp_path))
    storage = f"sqlite:///{tmp_path / 'spec.db'}"
    study = optuna.create_study(study_name="zoo", storage=storage, direction="maximize")
    for mode in ZOO_EXPECTED:  # queue every behaviour once (random sampling might miss one)
        study.enqueue_trial({"mode": mode})
    proc = cli("tune", str(spec), "--plain", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    study = optuna.load_study(study_name="zoo", storage=storage)
    result = Result.from_study(study, *_setup(study))
    assert len(result.trials) == len(ZOO_EXPECTED)  # the budget is exact
    by_mode = {t.config["mode"]: t for t in result.trials}
    for mode, (status, kind) in ZOO_EXPECTED.items():
        t = by_mode[mode]
        assert (t.status, t.crash_kind) == (status, kind), (mode, t.error)
    assert "SIGSEGV" in (by_mode["segfault"].error or "")
    assert "code 3" in (by_mode["exit3"].error or "")
    assert "not a JSON object" in (by_mode["garbage"].error or "")
    assert "timed out" in (by_mode["sleep"].error or "")
    assert by_mode["transient"].attempts == 2
    logs = [t.user_attrs.get("dt.log", "") for t in study.trials]
    assert max(len(x) for x in logs) <= 10_000  # 100 MB of output left bounded tails only
    assert wait_dead(int((tmp_path / "grandchild.pid").read_text()))  # killed with the group
    assert "best score = 1 (trial" in proc.stdout and "p95_ms <= 20" in proc.stdout
    report = tmp_path / "zoo-report"
    assert (report / "report.html").is_file() and (report / "timeline.png").is_file()
    assert (report / "best_so_far.png").is_file()


def _setup(study: optuna.Study) -> tuple[Any, Any]:
    from deploytune.analysis.summary import load_result

    r = load_result(study)
    return r.objective, r.constraints


SLOW_EVAL = '''
import os, time

def evaluate(config):
    with open(os.path.join(os.path.dirname(__file__), "pids.txt"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(0.6)
    return {"y": -(config["x"] - 0.3) ** 2, "p95_ms": 10.0 * config["x"]}
'''


def slow_spec(folder: Path, budget: int) -> Path:
    (folder / "slowmod.py").write_text(SLOW_EVAL)
    return write_spec(folder, {
        "study": "slow",
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "objective": {"maximize": "y"},
        "constraints": ["p95_ms <= 8"],
        "evaluator": {"python": "slowmod:evaluate", "timeout_s": 30},
        "budget": budget,
        "validation": False,  # "nothing evaluated twice" below (re-runs resume: test_validation)
        "sampler": "tba-tpe",
        "seed": 1,
    })


def _start_and_stop_mid_trial(spec: Path, trial_number: int, sig: int) -> tuple[int, str]:
    """Start ``deploytune tune``, wait until ``trial_number`` runs, deliver ``sig``."""
    proc = subprocess.Popen([*DEPLOYTUNE, "tune", str(spec), "--plain", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None  # unbuffered: "running" must arrive while the trial runs
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"trial {trial_number}: running"):
            time.sleep(0.3)  # inside the evaluation (it takes 0.6 s + start-up)
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, "".join(seen)
    rest = proc.communicate(timeout=60)[0]
    return proc.returncode, "".join(seen) + rest


def _check_resumed_study(folder: Path, budget: int) -> None:
    study = optuna.load_study(study_name="slow", storage=f"sqlite:///{folder / 'spec.db'}")
    trials = study.get_trials()
    assert all(t.state.is_finished() for t in trials)
    interrupted = [t for t in trials if t.user_attrs.get(ATTR_INTERRUPTED)]
    evaluations = [t for t in trials if not t.user_attrs.get(ATTR_INTERRUPTED)]
    assert len(interrupted) == 1
    assert len(evaluations) == budget  # the budget stays exact
    requeued = [t for t in trials if t.user_attrs.get(ATTR_REQUEUED_FROM) is not None]
    assert [t.user_attrs[ATTR_REQUEUED_FROM] for t in requeued] == [interrupted[0].number]
    assert requeued[0].params == interrupted[0].params  # the configuration was not lost
    assert requeued[0].state is TrialState.COMPLETE
    xs = [t.params["x"] for t in evaluations]
    assert len(set(xs)) == len(xs)  # nothing evaluated twice


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume(tmp_path: Path) -> None:
    budget = 7
    spec = slow_spec(tmp_path, budget)
    code, out = _start_and_stop_mid_trial(spec, 3, signal.SIGKILL)
    assert code == -signal.SIGKILL, out
    pids = [int(p) for p in (tmp_path / "pids.txt").read_text().split()]
    assert wait_dead(pids[-1])  # the running evaluation died with the tuner (PDEATHSIG)
    study = optuna.load_study(study_name="slow", storage=f"sqlite:///{tmp_path / 'spec.db'}")
    assert [t.state for t in study.trials][-1] is TrialState.RUNNING
    proc = cli("tune", str(spec), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resuming study slow: 3 evaluations recorded" in proc.stdout
    _check_resumed_study(tmp_path, budget)


@pytest.mark.slow
def test_ctrl_c_marks_the_trial_and_resumes(tmp_path: Path) -> None:
    budget = 5
    spec = slow_spec(tmp_path, budget)
    code, out = _start_and_stop_mid_trial(spec, 2, signal.SIGINT)
    assert code == 130, out
    assert "run `deploytune tune" in out and "Traceback" not in out
    study = optuna.load_study(study_name="slow", storage=f"sqlite:///{tmp_path / 'spec.db'}")
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and states[-1] is TrialState.WAITING
    proc = cli("tune", str(spec), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_resumed_study(tmp_path, budget)
    shown = runner.invoke(app, ["show", str(spec)])
    assert shown.exit_code == 0, shown.output
    assert "best y =" in shown.output and "p95_ms <= 8" in shown.output
    by_db = runner.invoke(app, ["show", str(tmp_path / "spec.db"), "--report"])
    assert by_db.exit_code == 0, by_db.output
    assert (tmp_path / "slow-report" / "report.html").is_file()


BAD_SPECS: list[tuple[str, str]] = [
    ("space: [1, 2\n", "line"),
    ("space: {x: {type: float, low: 1, high: 0}}\nobjective: y\nevaluator: {command: [echo]}\n"
     "budget: 3\n", "space.x"),
    ("space: {x: {type: float, low: 0, high: 1}}\nobjective: y\nevaluator: {command: [echo]}\n"
     "budget: 3\nconstraints: ['p95 < 3']\n", "constraints[0]"),
    ("space: {x: {type: float, low: 0, high: 1}}\nobjective: y\n"
     "evaluator: {command: [echo, '{z}']}\nbudget: 3\n", "evaluator.command"),
    ("space: {x: {type: float, low: 0, high: 1}}\nobjective: y\n"
     "evaluator: {python: 'nosuchmodule_xyz:f'}\nbudget: 3\n", "evaluator.python"),
    ("space: {x: {type: float, low: 0, high: 1}}\nobjective: y\nevaluator: {command: [echo]}\n"
     "budget: {trials: 0}\n", "budget.trials"),
    ("space: {x: {type: float, low: 0, high: 1}}\nobjective: y\nevaluator: {command: [echo]}\n"
     "budget: 3\nsampler: simulated-annealing\n", "sampler"),
    ("space: {x: {type: float, low: 0, high: 1}}\nobjective: y\nevaluator: {command: [echo]}\n"
     "budget: 3\ntimeout: 5\n", "timeout"),
]


@pytest.mark.parametrize(("text", "field"), BAD_SPECS)
def test_bad_spec_exits_2_naming_the_field_without_traceback(tmp_path: Path, text: str,
                                                              field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["tune", str(path)])
    assert result.exit_code == 2, result.output
    assert field in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bad.db").exists()  # nothing was created or touched


@pytest.mark.slow
def test_bad_spec_does_not_touch_an_existing_study(tmp_path: Path) -> None:
    spec = zoo_spec(tmp_path)
    spec["budget"] = 2
    spec["space"]["mode"]["choices"] = ["ok", "infeasible"]
    path = write_spec(tmp_path, spec)
    assert runner.invoke(app, ["tune", str(path), "--plain"]).exit_code == 0
    db = tmp_path / "spec.db"
    before = (db.stat().st_mtime_ns, db.read_bytes())
    spec["evaluator"]["timeout_s"] = -5
    write_spec(tmp_path, spec)
    result = runner.invoke(app, ["tune", str(path)])
    assert result.exit_code == 2 and "evaluator.timeout_s" in result.output
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before


def test_changed_problem_is_refused_with_exit_2(tmp_path: Path) -> None:
    spec = zoo_spec(tmp_path)
    spec["budget"] = 1
    spec["space"]["mode"]["choices"] = ["ok"]
    path = write_spec(tmp_path, spec)
    assert runner.invoke(app, ["tune", str(path), "--no-report"]).exit_code == 0
    spec["constraints"] = ["p95_ms <= 10"]
    write_spec(tmp_path, spec)
    result = runner.invoke(app, ["tune", str(path)])
    assert result.exit_code == 2 and "different constraints" in result.output


def test_show_errors_are_clear(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", str(tmp_path / "missing.db")])
    assert result.exit_code == 2 and "no such file" in result.output
    storage = f"sqlite:///{tmp_path / 'two.db'}"
    optuna.create_study(study_name="a", storage=storage)
    optuna.create_study(study_name="b", storage=storage)
    result = runner.invoke(app, ["show", storage])
    assert result.exit_code == 2 and "holds 2 studies (a, b)" in result.output
    result = runner.invoke(app, ["show", storage, "--study", "a"])
    assert result.exit_code == 2 and "not written by deploytune" in result.output


def test_nothing_feasible_names_the_closest_constraint(tmp_path: Path) -> None:
    spec = zoo_spec(tmp_path)
    spec["budget"] = 2
    spec["space"]["mode"]["choices"] = ["infeasible"]
    path = write_spec(tmp_path, spec)
    result = runner.invoke(app, ["tune", str(path), "--plain", "--no-report"])
    assert result.exit_code == 0, result.output
    assert "no feasible" in result.output.lower() and "p95_ms" in result.output


@pytest.mark.slow
def test_study_json_is_readable_by_plain_optuna(tmp_path: Path) -> None:
    """What optuna-dashboard reads: every user attribute is plain JSON."""
    spec = zoo_spec(tmp_path)
    spec["budget"] = 3
    spec["space"]["mode"]["choices"] = ["ok", "garbage", "exit3"]
    path = write_spec(tmp_path, spec)
    assert runner.invoke(app, ["tune", str(path), "--no-report"]).exit_code == 0
    study = optuna.load_study(study_name="zoo", storage=f"sqlite:///{tmp_path / 'spec.db'}")
    for t in study.trials:
        json.dumps(t.user_attrs, allow_nan=False)
    json.dumps(study.user_attrs, allow_nan=False)


NOISY_EVAL = """\
import random


def evaluate(config):
    int8 = config["precision"] == "int8"
    base = (2.0 + 0.5 * config["batch"]) * (0.6 if int8 else 1.0)
    p95 = base * (1.0 + random.gauss(0.0, 0.2 if int8 else 0.01))
    return {"throughput": 100.0 * config["batch"] / base, "p95_ms": p95}
"""


def noisy_spec(folder: Path, **extra: Any) -> Path:
    (folder / "noisymod.py").write_text(NOISY_EVAL)
    return write_spec(folder, {
        "study": "noisy",
        "space": {"precision": {"type": "categorical", "choices": ["fp32", "int8"]},
                  "batch": {"type": "int", "low": 1, "high": 32}},
        "objective": {"maximize": "throughput"},
        "constraints": ["p95_ms <= 8"],
        "evaluator": {"python": "noisymod:evaluate", "isolate": False},
        "budget": 8, "sampler": "random", "seed": 0, **extra,
    })


def test_tune_reruns_the_finalists_and_says_how_sure_it_is(tmp_path: Path) -> None:
    spec = noisy_spec(tmp_path)
    result = runner.invoke(app, ["tune", str(spec), "--plain", "--no-report"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "finalists' re-run" in out and "(finalist's re-run of #" in out
    assert "recommended: " in out and "reliably feasible" in out
    assert "p95_ms <= 8 met in " in out and "P(met)" in out
    study = optuna.load_study(study_name="noisy", storage=f"sqlite:///{tmp_path / 'spec.db'}")
    finals = [t for t in study.trials if t.user_attrs.get("dt.validation")]
    assert 1 <= len(finals) <= 6
    assert len(study.trials) - len(finals) == 8


@pytest.mark.slow
def test_validate_reruns_an_existing_study_and_nothing_else(tmp_path: Path) -> None:
    spec = noisy_spec(tmp_path, validation=False)
    assert runner.invoke(app, ["tune", str(spec), "--plain", "--no-report"]).exit_code == 0
    storage = f"sqlite:///{tmp_path / 'spec.db'}"
    before = {tuple(sorted(t.params.items()))
              for t in optuna.load_study(study_name="noisy", storage=storage).trials}
    result = runner.invoke(app, ["validate", str(spec), "--finalists", "2", "--repeats", "2",
                                 "--no-report"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="noisy", storage=storage)
    new = [t for t in study.trials if t.user_attrs.get("dt.validation")]
    assert 1 <= len(new) <= 4 and len(study.trials) == 8 + len(new)
    assert {tuple(sorted(t.params.items())) for t in new} <= before  # no new configuration
    assert "recommended: " in " ".join(result.output.split())


def test_validate_works_on_a_study_written_by_plain_optuna(tmp_path: Path) -> None:
    spec = noisy_spec(tmp_path)
    storage = f"sqlite:///{tmp_path / 'spec.db'}"
    study = optuna.create_study(study_name="plain", storage=storage, direction="maximize")
    for batch, value, c in [(4, 100.0, -4.0), (10, 140.0, -1.0), (30, 170.0, 9.0)]:
        study.add_trial(optuna.trial.create_trial(
            params={"precision": "fp32", "batch": batch},
            distributions={"precision": optuna.distributions.CategoricalDistribution(
                ["fp32", "int8"]), "batch": optuna.distributions.IntDistribution(1, 32)},
            value=value, system_attrs={"constraints": [c]}))
    result = runner.invoke(app, ["validate", str(spec), "--study", "plain", "--no-report"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="plain", storage=storage)
    new = [t for t in study.trials if t.user_attrs.get("dt.validation")]
    assert new and {t.params["batch"] for t in new} <= {4, 10}  # batch 30 was infeasible
    assert all("p95_ms" in t.user_attrs["dt.metrics"] for t in new)


@pytest.mark.parametrize(("direction", "params", "fragment"), [
    ("minimize", {"precision": "fp32", "batch": 4}, "created by plain Optuna code to minimize"),
    ("maximize", {"precision": "fp32", "threads": 4}, "are not a configuration of the spec's"),
])
@pytest.mark.slow
def test_validate_says_precisely_why_a_plain_study_cannot_be_validated(
        tmp_path: Path, direction: str, params: dict[str, Any], fragment: str) -> None:
    spec = noisy_spec(tmp_path)
    storage = f"sqlite:///{tmp_path / 'spec.db'}"
    study = optuna.create_study(study_name="plain", storage=storage, direction=direction)
    study.enqueue_trial(params)
    trial = study.ask()
    for k, v in params.items():
        trial.suggest_categorical(k, [v])
    study.tell(trial, 1.0)
    result = runner.invoke(app, ["validate", str(spec), "--study", "plain", "--no-report"])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert fragment in out and "nothing was changed" in out and "Traceback" not in out
    assert len(optuna.load_study(study_name="plain", storage=storage).trials) == 1


def test_validate_without_a_study_says_to_tune_first(tmp_path: Path) -> None:
    spec = noisy_spec(tmp_path)
    result = runner.invoke(app, ["validate", str(spec), "--no-report"])
    assert result.exit_code == 2
    assert "run `deploytune tune" in " ".join(result.output.split())


@pytest.mark.parametrize("target", ["spec.db", "sqlite:///spec.db"])
def test_validate_of_a_study_file_says_it_needs_the_spec(tmp_path: Path, target: str) -> None:
    result = runner.invoke(app, ["validate", target])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "needs the evaluator, which only a spec has" in out and "Traceback" not in out
