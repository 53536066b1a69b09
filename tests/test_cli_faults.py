"""``deploytune tune / show / importance`` against hostile values, broken storages and pipes.

Each test is a fault found by running the real command (issue 16): rich markup in a
configuration value, a damaged, read-only, full or unreachable database, report figures that
cannot be drawn, a log file instead of a terminal, a study name that is a path, and a spec that
changed under its study. Every one ends in one line naming the thing and the fix, the data kept.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

import deploytune
from deploytune.tuning import safe_file_name

ROOT = Path(__file__).resolve().parents[1]
DEPLOYTUNE = [sys.executable, "-m", "deploytune.cli"]

CHAT = "<s>[INST] {prompt} [/INST]"
EMOJI = "plain [bold]x[/bold] :thumbs_up:"
METRIC = "[/x]score"

EVAL = '''
import math


def evaluate(config):
    a = config["$a$"]
    if a == "bad":
        raise RuntimeError("cannot decode \\udc80 in the reply")
    value = {"p": 1e308, "q": -1e308, "r": 1.0}[a] + config["b_$x"]
    return {"$\\\\frac$": value, "extra": math.nan, "lat": 1e308}
'''


def cli(*args: str, cwd: Path = ROOT, timeout: float = 120,
        preexec: Any = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``deploytune ARGS`` as a real process, stdout a pipe (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["COLUMNS"] = "200"
    return subprocess.run([*prefix, *DEPLOYTUNE, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, preexec_fn=preexec)


def write_spec(folder: Path, data: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def simple_spec(folder: Path, budget: int = 3, **extra: Any) -> dict[str, Any]:
    """A command evaluator: ``metrics.py`` prints ``{"score": x, "p95_ms": 3}``."""
    (folder / "metrics.py").write_text(
        "import json, sys\nprint(json.dumps({'score': float(sys.argv[1]), 'p95_ms': 3.0}))\n")
    return {
        "study": "s",
        "space": {"x": {"type": "int", "low": 1, "high": 9}},
        "objective": {"maximize": "score"},
        "constraints": ["p95_ms <= 20"],
        "evaluator": {"command": ["{python}", "metrics.py", "{x}"], "timeout_s": 30},
        "budget": budget,
        "validation": False,  # exact trial counts below (re-runs: tests/test_validation.py)
        "sampler": "random",
        "seed": 0,
        **extra,
    }


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a failed command (and no traceback anywhere)."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def n_trials(db: Path, study: str = "s") -> int:
    storage = f"sqlite:///{db}"
    return len(optuna.load_study(study_name=study, storage=storage).trials)


# ------------------------------------------------------------------------------ A: rich markup


@pytest.mark.parametrize("mode", ["--plain", "--live"])
@pytest.mark.slow
def test_markup_in_user_values_is_printed_as_it_is(tmp_path: Path, mode: str) -> None:
    (tmp_path / "chat.py").write_text(
        "import json, sys\n"
        f"print(json.dumps({{{METRIC!r}: len(sys.argv[2]), 'p95_ms': 3.0}}))\n")
    spec = write_spec(tmp_path, {
        "study": "chat[bold]",
        "space": {"template": {"type": "categorical", "choices": [CHAT, EMOJI]}},
        "objective": {"maximize": METRIC},
        "constraints": ["p95_ms <= 20"],
        "evaluator": {"command": ["{python}", "chat.py", "[/INST]", "{template}"],
                      "timeout_s": 30},
        "budget": 2, "sampler": "random", "seed": 0, "validation": False,
    })
    for _ in range(2):  # the second run resumes (the crash came back on every resume)
        proc = cli("tune", str(spec), mode)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout
    assert "resuming study chat[bold]: 2 evaluations recorded" in out
    assert "chat.py [/INST] {template}" in out  # evaluator.describe() as it is
    assert "study chat[bold]" in out and f"best {METRIC} =" in out
    assert CHAT in out or EMOJI in out  # the best configuration, markup and emoji code intact


# ---------------------------------------------------------------------------- B: storage faults


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    """A spec folder whose study holds 3 trials (``spec.db``), and a pristine copy of it."""
    spec = write_spec(tmp_path, simple_spec(tmp_path))
    proc = cli("tune", str(spec), "--no-report")
    assert proc.returncode == 0, proc.stderr
    shutil.copy(tmp_path / "spec.db", tmp_path / "pristine.db")
    return tmp_path


def _garble(db: Path) -> None:
    with db.open("r+b") as f:
        f.seek(100)
        f.write(b"\xa5" * 3000)


@pytest.mark.parametrize(("damage", "cause"), [
    (_garble, "malformed"),
    (lambda db: db.write_bytes(db.read_bytes()[:20_000]), "malformed"),
    (lambda db: db.write_bytes(b"not a database, just text\n" * 100), "not a database"),
])
@pytest.mark.slow
def test_a_damaged_database_is_one_line_and_left_as_it_was(study_folder: Path, damage: Any,
                                                          cause: str) -> None:
    db = study_folder / "spec.db"
    damage(db)
    before = db.read_bytes()
    for args in (["tune", "spec.yaml", "--no-report"], ["show", "spec.db"],
                 ["importance", "spec.yaml"]):
        proc = cli(*args, cwd=study_folder)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        line = one_error_line(proc)
        assert line.startswith(f"error: storage sqlite:///{db}: ") and cause in line
        assert "restore it from a backup" in line
    assert db.read_bytes() == before


@pytest.mark.parametrize(("url", "expected"), [
    ("foo://bar", "unknown storage scheme 'foo'"),
    ("postgresql://tuner:secret@localhost:1/x", "postgresql://tuner:***@localhost:1/x"),
])
@pytest.mark.slow
def test_an_unusable_storage_url_is_one_line(tmp_path: Path, url: str, expected: str) -> None:
    spec = write_spec(tmp_path, simple_spec(tmp_path, storage=url))
    for args in (["tune", str(spec)], ["show", url]):
        proc = cli(*args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        line = one_error_line(proc)
        assert expected in line and "secret" not in line
    # no driver here: "pip install ..."; with a driver: the refused connection
    assert "pip install" in line or "connect" in line.lower() or "scheme" in line


def _file_size_limit(limit: int) -> Any:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_study_resumes(study_folder: Path) -> None:
    db = study_folder / "spec.db"
    write_spec(study_folder, simple_spec(study_folder, budget=60))
    proc = cli("tune", "spec.yaml", "--plain", "--no-report", cwd=study_folder,
               preexec=_file_size_limit(db.stat().st_size + 8192))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = one_error_line(proc)
    assert line.startswith(f"error: storage sqlite:///{db}: ")
    assert "free" in line and "the trials recorded so far are kept" in line
    kept = n_trials(db)
    assert kept >= 3
    proc = cli("tune", "spec.yaml", "--plain", "--no-report", cwd=study_folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    evaluations = [t for t in study.trials if not t.user_attrs.get("dt.interrupted")]
    assert len(evaluations) == 60 and len(study.trials) >= kept


def _without_a_table(db: Path) -> None:
    """What an older Optuna leaves: a table the current one would create on opening."""
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE trial_heartbeats")


@pytest.mark.slow
def test_show_and_importance_never_write_to_the_database(study_folder: Path) -> None:
    db = study_folder / "spec.db"
    _without_a_table(db)
    before = db.read_bytes()
    proc = cli("show", "spec.db", cwd=study_folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 trials" in proc.stdout
    proc = cli("importance", "spec.yaml", cwd=study_folder)
    assert proc.returncode == 2 and "too few trials" in one_error_line(proc)
    assert db.read_bytes() == before


@pytest.fixture
def readable_folder() -> Iterator[Path]:
    """A folder that an unprivileged user can read (pytest's tmp_path may be private)."""
    folder = Path(tempfile.mkdtemp(prefix="deploytune-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _unprivileged() -> tuple[str, ...]:
    """A command prefix that drops root (for whom no file is read-only)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv: cannot make a file read-only for the test")
    return (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")


@pytest.mark.slow
def test_show_reads_a_read_only_database(study_folder: Path, readable_folder: Path) -> None:
    db = readable_folder / "study.db"
    shutil.copy(study_folder / "spec.db", db)
    _without_a_table(db)
    db.chmod(0o444)
    prefix = _unprivileged()
    proc = cli("show", str(db), cwd=readable_folder, prefix=prefix)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 trials: 3 feasible" in proc.stdout
    # tune cannot write to it: one line, nothing changed
    spec = simple_spec(readable_folder, budget=5, storage=f"sqlite:///{db}")
    write_spec(readable_folder, spec)
    before = db.read_bytes()
    proc = cli("tune", str(readable_folder / "spec.yaml"), cwd=readable_folder, prefix=prefix)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "readonly database" in one_error_line(proc)
    assert db.read_bytes() == before


# ------------------------------------------------- C: report failures and values it choked on


@pytest.mark.slow
def test_a_report_failure_warns_and_the_summary_is_printed(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, simple_spec(tmp_path, budget=2))
    (tmp_path / "s-report").write_text("a file where the report folder goes\n")
    proc = cli("tune", str(spec), "--plain")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    warnings = [ln for ln in proc.stdout.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and str(tmp_path / "s-report") in warnings[0]
    assert "study s" in proc.stdout and "best score =" in proc.stdout  # the summary
    assert n_trials(tmp_path / "spec.db") == 2


@pytest.mark.slow
def test_mathtext_huge_values_nan_and_surrogates_in_the_report(tmp_path: Path) -> None:
    (tmp_path / "hostile.py").write_text(EVAL)
    spec = write_spec(tmp_path, {
        "study": "hostile",
        "space": {"$a$": {"type": "categorical", "choices": ["p", "q", "r", "bad"]},
                  "b_$x": {"type": "int", "low": 1, "high": 9}},
        "objective": {"maximize": "$\\frac$"},
        "constraints": ["lat <= 1e308"],
        "evaluator": {"python": "hostile:evaluate", "isolate": False},
        "budget": 14, "sampler": "random", "seed": 0,
    })
    proc = cli("tune", str(spec), "--plain")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "warning" not in proc.stdout
    assert "best $\\frac$ =" in proc.stdout  # the summary
    page = (tmp_path / "hostile-report" / "report.html").read_text(encoding="utf-8")
    assert "cannot decode \\udc80 in the reply" in page  # the lone surrogate, escaped
    proc = cli("importance", str(spec))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "b_$x" in proc.stdout
    assert (tmp_path / "hostile-importance.png").stat().st_size > 5000


# --------------------------------------------------------------------- D: not a terminal


@pytest.mark.slow
def test_plain_lines_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, simple_spec(tmp_path, budget=3))
    proc = cli("tune", str(spec), "--no-report")  # stdout is a pipe: like `> log`
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for n in range(3):
        assert f"trial {n}: running" in proc.stdout
        assert f"trial {n}: feasible score=" in proc.stdout
    assert "eta" not in proc.stdout  # no progress bar frozen into the log


def test_help_says_what_plain_and_fresh_do() -> None:
    proc = cli("tune", "--help")
    text = " ".join(proc.stdout.split())
    assert "plain otherwise" in text and "NAME-2" in text and "kept" in text


# ---------------------------------------------------------- E: a study name is not a path


@pytest.mark.slow
def test_a_study_name_never_leaves_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    (tmp_path / "work").mkdir()
    db = folder / "study.db"

    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        if config["mode"] == "crash":
            raise MemoryError("out of memory")
        return {"score": float(config["n"]) + (config["mode"] == "fast")}

    deploytune.optimize(evaluate, {"mode": {"type": "categorical",
                                            "choices": ["fast", "slow", "crash"]},
                                   "n": {"type": "int", "low": 1, "high": 5}},
                        objective="score", budget=12, sampler="random", seed=1,
                        storage=f"sqlite:///{db}", study_name="../../evil")
    before = {p for p in tmp_path.rglob("*")}
    for args in (["show", str(db), "--report"], ["importance", str(db)],
                 ["show", f"sqlite:///{db}", "--report"]):
        proc = cli(*args, cwd=tmp_path / "work")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p.is_relative_to(folder) for p in new), sorted(map(str, new))
    assert (folder / "____evil-report" / "report.html").is_file()
    assert (folder / "____evil-importance.png").is_file()


@pytest.mark.parametrize(("name", "expected"), [
    ("digits", "digits"), ("my study-2.v1", "my study-2.v1"), ("../../evil", "____evil"),
    ("..", "_"), (".hidden", "_hidden"), ("a/b\\c", "a_b_c"), ("", "study"),
    ("a\x00b:c*?", "a_b_c__"), ("chat[bold] (v2)", "chat[bold] (v2)"),
    ("x" * 300, "x" * 100),
])
def test_safe_file_name(name: str, expected: str) -> None:
    assert safe_file_name(name) == expected


# ---------------------------------------------------------------------- F: --fresh


@pytest.mark.slow
def test_a_changed_spec_is_refused_naming_the_storage_then_fresh_keeps_the_old_study(
        tmp_path: Path) -> None:
    data = simple_spec(tmp_path, budget=2)
    spec = write_spec(tmp_path, data)
    db = tmp_path / "spec.db"
    assert cli("tune", str(spec), "--no-report").returncode == 0
    data["constraints"] = ["p95_ms <= 10"]
    write_spec(tmp_path, data)
    proc = cli("tune", str(spec), "--no-report")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert f"sqlite:///{db}" in line and "different constraints" in line
    assert f"deploytune tune {spec} --fresh" in line
    proc = cli("tune", str(spec), "--no-report", "--fresh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "starting the fresh study s-2" in proc.stdout and "study s-2" in proc.stdout
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    names = {s.study_name: len(optuna.load_study(study_name=s.study_name,
                                                 storage=storage).trials)
             for s in storage.get_all_studies()}
    assert names == {"s": 2, "s-2": 2}  # the old study is kept as it was
    data["budget"] = 3  # the next run resumes the fresh study, not the old one
    write_spec(tmp_path, data)
    proc = cli("tune", str(spec), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resuming study s-2: 2 evaluations recorded" in proc.stdout
    proc = cli("show", str(spec))
    assert proc.returncode == 0 and "study s-2" in proc.stdout and "3 trials" in proc.stdout
    proc = cli("show", str(spec), "--study", "s")
    assert proc.returncode == 0 and "p95_ms <= 20" in proc.stdout


@pytest.mark.slow
def test_a_misspelt_metric_is_one_line_and_the_corrected_spec_resumes_the_study(
        tmp_path: Path) -> None:
    data = simple_spec(tmp_path, budget=2, constraints=["p95 <= 20"])
    spec = write_spec(tmp_path, data)
    proc = cli("tune", str(spec), "--plain", "--no-report")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "p95_ms" in one_error_line(proc)
    data["constraints"] = ["p95_ms <= 20"]  # corrected: nothing was evaluated, same study
    write_spec(tmp_path, data)
    proc = cli("tune", str(spec), "--plain", "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fresh" not in proc.stdout and "2 trials: 2 feasible" in proc.stdout
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'spec.db'}")
    assert [s.study_name for s in storage.get_all_studies()] == ["s"]
