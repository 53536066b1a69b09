"""Tests of deploytune.analysis.importance: rankings whose answer is known by construction."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

import deploytune
from deploytune import CrashKind, InvalidConfig, Objective, Status
from deploytune.analysis.importance import (
    MIN_FEASIBLE,
    ImportanceReport,
    Ranking,
    importance,
    importance_of_study,
    write_importance_figure,
)
from deploytune.cli import app
from deploytune.cli.render_analysis import render_importance
from deploytune.outcome import Constraint
from deploytune.space import Space
from deploytune.tuner import TrialRecord

runner = CliRunner()

# The known answer: "bad" mode is rejected (invalid_config), batches above 32 run out of memory,
# throughput depends mostly on threads, latency on queue and power on clock; noise_knob does
# nothing. fuse and unroll are conditional (active for one mode each).
SPACE: dict[str, Any] = {
    "mode": {"type": "categorical", "choices": ["eager", "compiled", "fast", "graph", "bad"]},
    "fuse": {"type": "categorical", "choices": [True, False], "when": {"mode": ["fast"]}},
    "unroll": {"type": "int", "low": 1, "high": 4, "when": {"mode": ["compiled"]}},
    "batch_size": {"type": "int", "low": 1, "high": 48},
    "threads": {"type": "int", "low": 1, "high": 16},
    "queue": {"type": "int", "low": 1, "high": 10},
    "clock": {"type": "float", "low": 0.0, "high": 1.0},
    "noise_knob": {"type": "float", "low": 0.0, "high": 1.0},
}
CONSTRAINTS = ["latency_ms <= 25", "power_w <= 84"]
LATENCY, POWER = CONSTRAINTS
BUDGET = 40
SAMPLER_SEED = 5
STUDY = "knobs"


def evaluate(config: dict[str, Any]) -> dict[str, float]:
    """The known problem (see the comment on SPACE)."""
    if config["mode"] == "bad":
        raise InvalidConfig("mode 'bad' is not supported by this runtime")
    if config["batch_size"] > 32:
        raise MemoryError(f"out of memory at batch {config['batch_size']}")
    return {"throughput": 10.0 * config["threads"] + 0.3 * config["noise_knob"]
            + 0.02 * config["batch_size"],
            "latency_ms": 4.0 * config["queue"] + 1.0,
            "power_w": 50.0 + 40.0 * config["clock"]}


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SQLite study: 40 random trials of the known problem."""
    db = tmp_path_factory.mktemp("importance") / "knobs.db"
    deploytune.optimize(evaluate, SPACE, objective="throughput", direction="maximize",
                        constraints=CONSTRAINTS, budget=BUDGET, sampler="random",
                        seed=SAMPLER_SEED, storage=f"sqlite:///{db}", study_name=STUDY)
    return db


@pytest.fixture(scope="module")
def result(study_db: Path) -> deploytune.Result:
    """The study's result, read back from the SQLite file."""
    from deploytune.analysis import load_result

    return load_result(optuna.load_study(study_name=STUDY, storage=f"sqlite:///{study_db}"))


@pytest.fixture(scope="module")
def report(result: deploytune.Result) -> ImportanceReport:
    """The importance report of the known study (seed 0)."""
    return importance(result.trials, Space.from_dict(SPACE), result.objective,
                      constraints=result.constraints, seed=0)


def _check_shares(r: Ranking) -> None:
    assert set(r.importances) == set(SPACE), r.target
    assert math.isclose(sum(r.importances.values()), 1.0, abs_tol=1e-9), r.target
    values = list(r.importances.values())
    assert all(v >= 0 for v in values) and values == sorted(values, reverse=True), r.target


# ------------------------------------------------------------------------- the known study


@pytest.mark.slow
def test_the_study_has_every_outcome(result: deploytune.Result) -> None:
    # guards the assumptions of the tests below (random sampler, fixed seed)
    assert len(result.trials) == BUDGET
    assert result.count(Status.FEASIBLE) >= MIN_FEASIBLE
    assert result.count(Status.INFEASIBLE) >= 6 and result.count(Status.CRASHED) >= 10


def test_threads_drive_the_objective(report: ImportanceReport,
                                     result: deploytune.Result) -> None:
    r = report.objective
    assert r.available and r.top == "threads"
    assert r.importances["threads"] > 0.5
    assert r.n_trials == result.count(Status.FEASIBLE) and r.n_positive is None
    assert "fANOVA" in r.method


def test_batch_size_drives_crashes_and_mode_drives_invalid_config(
        report: ImportanceReport) -> None:
    assert report.crash.top == "batch_size"
    assert set(report.crash_kinds) == {"oom", "invalid_config"}
    assert report.crash_kinds["oom"].top == "batch_size"
    assert report.crash_kinds["oom"].importances["batch_size"] > 0.5
    assert report.crash_kinds["invalid_config"].top == "mode"
    assert report.crash_kinds["invalid_config"].importances["mode"] > 0.5
    assert report.crash.importances["noise_knob"] < report.crash.importances["batch_size"] / 4


def test_crash_rules_name_the_crash_zones(report: ImportanceReport,
                                          result: deploytune.Result) -> None:
    n_bad = sum(t.config["mode"] == "bad" for t in result.trials)
    assert f"mode = bad -> invalid_config ({n_bad}/{n_bad})" in [str(r) for r in
                                                                 report.crash_rules]
    oom = [r for r in report.crash_rules if r.outcome == "oom"]
    assert oom and oom[0].purity == 1.0
    bound = re.search(r"batch_size >= (\d+)", str(oom[0]))
    assert bound is not None and 25 <= int(bound.group(1)) <= 40, str(oom[0])
    n_oom = sum(t.crash_kind is CrashKind.OOM for t in result.trials)
    assert oom[0].support == n_oom


def test_queue_drives_infeasibility_and_each_constraint_has_its_knob(
        report: ImportanceReport) -> None:
    assert report.infeasibility.top == "queue"
    assert set(report.constraints) == {LATENCY, POWER}
    assert report.constraints[LATENCY].top == "queue"
    assert report.constraints[POWER].top == "clock"
    assert set(report.binding) == {LATENCY, POWER}
    rules = [str(r) for r in report.infeasibility_rules]
    assert any(r.startswith("queue >= 7 -> violates latency_ms <= 25 (") for r in rules), rules
    assert any(r.startswith("clock > 0.8") and "-> violates power_w <= 84" in r
               for r in rules), rules


def test_every_ranking_is_a_share_of_every_parameter(report: ImportanceReport) -> None:
    rankings = [*report.rankings, *report.crash_kinds.values(), *report.constraints.values()]
    assert all(r.available for r in rankings)
    for r in rankings:
        _check_shares(r)


def test_the_study_gives_the_same_report_deterministically(study_db: Path,
                                                            report: ImportanceReport) -> None:
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{study_db}")
    again = importance_of_study(study, seed=0)  # space and constraints from the study itself
    assert again == report


def test_render_and_figure(report: ImportanceReport, tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=140)
    render_importance(report, console)
    text = console.export_text()
    for needle in ("objective: throughput", "crash rules", "invalid_config", "oom",
                   "violates latency_ms <= 25", "binding constraints"):
        assert needle in text
    path = write_importance_figure(report, tmp_path / "sub" / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = report.text()
    assert "mode = bad -> invalid_config" in plain and "threads" in plain


# ------------------------------------------------------------------------ synthetic records


def _rec(n: int, config: dict[str, Any], status: Status, kind: CrashKind | None = None,
         value: float | None = None, violations: dict[str, float] | None = None) -> TrialRecord:
    return TrialRecord(number=n, config=config, status=status, crash_kind=kind, metrics={},
                       value=value, violations=violations or {}, error=None, cost_s=0.0)


def test_rules_read_as_value_sets() -> None:
    space = Space.from_dict({
        "kv_type": {"type": "categorical", "choices": ["f16", "q8_0", "q4_0", "q5_1"]},
        "flash_attn": {"type": "categorical", "choices": [True, False]},
        "threads": {"type": "int", "low": 1, "high": 8},
    })
    trials = []
    for n, (kv, fa, th) in enumerate(itertools.product(["f16", "q8_0", "q4_0", "q5_1"],
                                                       [True, False], [1, 3, 6, 8])):
        config = {"kv_type": kv, "flash_attn": fa, "threads": th}
        if kv in ("q8_0", "q4_0") and not fa:
            trials.append(_rec(n, config, Status.CRASHED, CrashKind.INVALID_CONFIG))
        else:
            trials.append(_rec(n, config, Status.FEASIBLE, value=float(th)))
    report = importance(trials, space, Objective("tps"), seed=0)
    assert [str(r) for r in report.crash_rules] == [
        "kv_type in {q8_0, q4_0} and flash_attn = false -> invalid_config (8/8)"]
    assert report.crash.top in ("kv_type", "flash_attn")
    assert report.objective.top == "threads"
    assert not report.crash_kinds  # one kind only: the crash ranking is that kind's
    assert not report.infeasibility.available
    assert report.infeasibility.note == "the study has no constraints"


def test_conditional_parameters_are_encoded_as_inactive() -> None:
    space = Space.from_dict({
        "mode": {"type": "categorical", "choices": ["a", "b", "fast"]},
        "fuse": {"type": "categorical", "choices": [True, False], "when": {"mode": ["fast"]}},
        "unroll": {"type": "int", "low": 1, "high": 4, "when": {"mode": ["b"]}},
        "threads": {"type": "int", "low": 1, "high": 8},
    })
    configs: list[dict[str, Any]] = []
    for th in range(1, 9):
        configs.append({"mode": "a", "threads": th})
        configs += [{"mode": "fast", "fuse": f, "threads": th} for f in (True, False)]
        configs += [{"mode": "b", "unroll": u, "threads": th} for u in (1, 2, 3, 4)]
    trials = []
    for n, c in enumerate(configs):
        if c.get("fuse") is True:
            trials.append(_rec(n, c, Status.CRASHED, CrashKind.RUNTIME_ERROR))
        elif c.get("unroll", 0) >= 3:
            trials.append(_rec(n, c, Status.CRASHED, CrashKind.TIMEOUT))
        else:
            trials.append(_rec(n, c, Status.FEASIBLE, value=c["threads"] + c.get("unroll", 0)))
    report = importance(trials, space, Objective("tps"), seed=3)
    rules = {r.outcome: str(r) for r in report.crash_rules}
    assert rules["runtime_error"] == "fuse = true -> runtime_error (8/8)"
    assert rules["timeout"] == "unroll >= 3 -> timeout (16/16)"
    assert report.crash_kinds["runtime_error"].top == "fuse"
    assert report.crash_kinds["timeout"].top == "unroll"
    assert report.objective.top == "threads"
    for r in (report.objective, report.crash):
        assert set(r.importances) == set(space.names)
        assert math.isclose(sum(r.importances.values()), 1.0)


def test_too_few_trials_are_said_not_ranked() -> None:
    space = Space.from_dict({"x": {"type": "int", "low": 1, "high": 8},
                             "y": {"type": "float", "low": 0.0, "high": 1.0}})
    trials = [_rec(0, {"x": 1, "y": 0.5}, Status.FEASIBLE, value=1.0),
              _rec(1, {"x": 2, "y": 0.1}, Status.FEASIBLE, value=2.0),
              _rec(2, {"x": 3, "y": 0.9}, Status.INFEASIBLE, value=3.0,
                   violations={"lat_max": 0.5}),
              _rec(3, {"x": 8, "y": 0.2}, Status.CRASHED, CrashKind.OOM),
              _rec(4, {"x": 7, "y": 0.3}, Status.CRASHED, CrashKind.TRANSIENT)]
    report = importance(trials, space, Objective("tps"),
                        constraints=[Constraint.parse("lat <= 10")])
    assert not report.any_available
    assert report.objective.note is not None and f"at least {MIN_FEASIBLE}" in \
        report.objective.note
    assert report.crash.n_trials == 4  # the transient failure says nothing: left out
    assert report.crash.note == ("1 crashed and 3 other trial(s); a ranking needs at least 3 "
                                 "of each")
    assert report.infeasibility.n_positive == 1 and not report.infeasibility.importances
    assert report.crash_rules == [] and report.infeasibility_rules == []
    assert "needs at least" in report.text()


def test_a_constant_objective_has_no_ranking() -> None:
    space = Space.from_dict({"x": {"type": "int", "low": 1, "high": 8}})
    trials = [_rec(i, {"x": i + 1}, Status.FEASIBLE, value=5.0) for i in range(6)]
    report = importance(trials, space, Objective("tps"))
    assert not report.objective.available
    assert report.objective.note == "tps does not vary with the parameters among the " \
                                    "feasible trials"


# -------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_prints_the_rankings_and_writes_the_figure(study_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    result = runner.invoke(app, ["importance", str(study_db), "--out", str(out), "--seed", "0"],
                           env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for needle in ("objective: throughput", "crash: crashed vs not crashed", "batch_size",
                   "crash rules", "mode = bad -> invalid_config", "infeasibility",
                   "violates power_w <= 84"):
        assert needle in result.output, needle
    png = out / f"{STUDY}-importance.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"figure: {png}" in result.output.replace("\n", "")


@pytest.mark.slow
def test_cli_default_figure_goes_next_to_the_study(study_db: Path) -> None:
    result = runner.invoke(app, ["importance", f"sqlite:///{study_db}", "--study-name", STUDY])
    assert result.exit_code == 0, result.output
    assert (study_db.parent / f"{STUDY}-importance.png").exists()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["importance", str(tmp_path / "missing.db")])
    assert result.exit_code == 2 and "no such file" in result.output
    assert "Traceback" not in result.output
    db = tmp_path / "tiny.db"
    deploytune.optimize(evaluate, SPACE, objective="throughput", constraints=CONSTRAINTS,
                        budget=2, sampler="random", seed=0, storage=f"sqlite:///{db}",
                        study_name="tiny")
    result = runner.invoke(app, ["importance", str(db)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: study 'tiny' has too few trials")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    result = runner.invoke(app, ["importance", str(db), "--study-name", "nope"])
    assert result.exit_code == 2 and "no study named 'nope'" in result.output
    assert not list(tmp_path.glob("*.png"))


def test_dollar_names_markup_and_huge_values(tmp_path: Path) -> None:
    """``$`` in names is drawn literally (not mathtext), ``[/x]`` printed as it is, and values
    of 1e308 (whose squares overflow) still get an objective ranking."""
    from rich.console import Console

    space = Space.from_dict({"$a$": {"type": "categorical", "choices": ["p", "q"]},
                             "b_$x[/x]": {"type": "int", "low": 1, "high": 8}})
    trials = []
    for n, (a, b) in enumerate(itertools.product(["p", "q"], range(1, 9))):
        value = (1e308 if a == "p" else -1e308) * (0.5 + b / 20)
        trials.append(_rec(n, {"$a$": a, "b_$x[/x]": b}, Status.FEASIBLE, value=value))
        if b % 3 == 0:
            trials.append(_rec(100 + n, {"$a$": a, "b_$x[/x]": b}, Status.CRASHED,
                               CrashKind.OOM))
    report = importance(trials, space, Objective("$\\frac$", "maximize"))
    assert report.objective.available and report.objective.top == "$a$"
    assert report.crash.available and report.crash.top == "b_$x[/x]"
    console = Console(record=True, width=140)
    render_importance(report, console)
    text = console.export_text()
    assert "b_$x[/x]" in text and "$\\frac$" in text
    path = write_importance_figure(report, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
