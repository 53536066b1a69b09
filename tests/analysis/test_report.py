"""Tests of deploytune.analysis.write_report on real Optuna studies."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

import deploytune
from deploytune.analysis import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT = "<script>alert('x')</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
SPACE: dict[str, Any] = {
    "backend": {"type": "categorical", "choices": ["eager", SCRIPT]},
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
}


def _evaluate(config: dict[str, Any]) -> dict[str, float]:
    """Big batches run out of memory, the hostile backend is invalid at batch < 4."""
    bs = config["batch_size"]
    if bs > 40:
        raise MemoryError(f"<b>needs</b> {bs * 100} MB")
    if config["backend"] == SCRIPT and bs < 4:
        raise deploytune.InvalidConfig(f"{SCRIPT} rejects batch {bs}")
    return {"throughput": 40.0 * bs, "latency_ms": 1.5 * bs}


def _check_pngs(out: Path) -> None:
    for name in ("best_so_far.png", "timeline.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 5_000, name


def _trial_numbers(page: str) -> list[int]:
    table = page.split("<h2>trials</h2>", 1)[1]
    return [int(n) for n in re.findall(r'<tr><td class="num">(\d+)</td>', table)]


def test_report_files_and_escaping(tmp_path: Path) -> None:
    result = deploytune.optimize(_evaluate, SPACE, objective="throughput",
                                 constraints=["latency_ms <= 30"], budget=14, sampler="random",
                                 seed=3)
    study = result.study
    assert study is not None
    assert any(t.config["backend"] == SCRIPT for t in result.trials)
    spec = {"objective": "throughput", "space": SPACE, "note": "</pre><script>x</script>"}
    out = tmp_path / "report"
    path = write_report(study, out, spec=spec)
    assert path == out / "report.html"
    _check_pngs(out)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower()
    assert ESCAPED_SCRIPT in page
    assert "&lt;b&gt;needs&lt;/b&gt;" in page and "<b>needs" not in page
    assert page.count('src="data:image/png;base64,') == 2
    assert _trial_numbers(page) == [t.number for t in result.trials] == list(range(14))
    assert "<h2>spec</h2>" in page and "&quot;objective&quot;: &quot;throughput&quot;" in page
    for status in ("feasible", "crashed"):
        assert status in page
    best = result.best_trial
    assert best is not None
    assert f"(trial {best.number})" in page and "margins" in page


def test_report_of_an_all_crashed_study(tmp_path: Path) -> None:
    def crash(config: dict[str, Any]) -> dict[str, float]:
        raise (MemoryError if config["batch_size"] > 8 else TimeoutError)("boom")

    result = deploytune.optimize(crash, SPACE, objective="throughput",
                                 constraints=["latency_ms <= 30"], budget=10, sampler="random",
                                 seed=0)
    assert result.study is not None
    page = write_report(result.study, tmp_path).read_text(encoding="utf-8")
    _check_pngs(tmp_path)
    assert "no feasible configuration found" in page
    assert "no trial produced metrics: every trial crashed" in page
    assert _trial_numbers(page) == list(range(10))
    assert "<h2>spec</h2>" not in page


def test_report_of_an_empty_study_with_a_running_trial(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="fresh")
    study.set_user_attr("dt.setup", {"objective": "acc", "direction": "maximize",
                                     "constraints": ["lat <= 10"], "space": {}})
    study.ask()  # running: skipped
    page = write_report(study, tmp_path / "a" / "b", spec={}).read_text(encoding="utf-8")
    _check_pngs(tmp_path / "a" / "b")
    assert "0 trials: 0 feasible" in page
    assert _trial_numbers(page) == []
    assert "deploytune report: fresh" in page


def test_report_with_nan_and_infinite_values(tmp_path: Path) -> None:
    script = [
        {"throughput": math.inf, "latency_ms": 1.0},  # feasible, infinite objective
        {"throughput": 5.0, "latency_ms": math.inf},  # infeasible, infinite violation
        {"throughput": -math.inf, "latency_ms": 2.0},
        {"throughput": math.nan, "latency_ms": 2.0},  # crashed: NaN objective
        {"throughput": 7.0, "latency_ms": 3.0},
    ]
    calls: list[int] = []

    def fn(config: dict[str, Any]) -> dict[str, float]:
        calls.append(1)
        return script[(len(calls) - 1) % len(script)]

    result = deploytune.optimize(fn, SPACE, objective="throughput",
                                 constraints=["latency_ms <= 30"], budget=10, sampler="random",
                                 seed=0)
    assert result.study is not None
    page = write_report(result.study, tmp_path).read_text(encoding="utf-8")
    _check_pngs(tmp_path)
    assert _trial_numbers(page) == list(range(10))
    assert "inf" in page and "NaN" in page


def test_report_marks_interrupted_and_aborted_trials(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="mixed", direction="maximize")
    study.set_user_attr("dt.setup", {"objective": "acc", "direction": "maximize",
                                     "constraints": ["lat <= 10"], "space": {}})
    dist = {"v": CategoricalDistribution(["p", "q"])}
    study.add_trial(create_trial(
        state=TrialState.COMPLETE, value=0.9, params={"v": "p"}, distributions=dist,
        constraints={"lat_max": -0.5},
        user_attrs={"dt.status": "feasible", "dt.metrics": {"acc": 0.9, "lat": 5.0},
                    "dt.cost_s": 3.0}))
    study.add_trial(create_trial(
        state=TrialState.PRUNED, params={"v": "q"}, distributions=dist,
        intermediate_values={0: 0.2}, constraints={"lat_max": 5.0},
        user_attrs={"dt.status": "aborted", "dt.metrics": {"lat": 60.0}, "dt.cost_s": 1.0,
                    "dt.seconds_saved": 20.0, "dt.error": "early abort: lat = 60"}))
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"v": "q"}, distributions=dist,
        user_attrs={"dt.status": "crashed", "dt.crash_kind": "transient", "dt.attempts": 3,
                    "dt.error": "port in use", "dt.log": "bind: <port> in use\n"}))
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"v": "p"}, distributions=dist,
        user_attrs={"dt.interrupted": True, "dt.error": "interrupted: Ctrl-C"}))
    page = write_report(study, tmp_path).read_text(encoding="utf-8")
    _check_pngs(tmp_path)
    assert _trial_numbers(page) == [0, 1, 2, 3]
    assert "3 trials: 1 feasible, 0 infeasible, 1 crashed (transient 1), 1 aborted; " \
           "1 interrupted (not counted)" in page
    assert "early abort saved about 20.0 s" in page
    assert "(3 attempts)" in page and "bind: &lt;port&gt; in use" in page
    assert ">interrupted</td>" in page


def test_report_needs_a_deploytune_study(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="plain")
    with pytest.raises(ValueError, match="study 'plain' was not written by deploytune"):
        write_report(study, tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_report_with_extreme_finite_values_and_mathtext_names(tmp_path: Path) -> None:
    """1e308 and -1e308 overflow matplotlib's axis arithmetic; ``$\\frac$`` is no mathtext."""
    values = iter([1e308, -1e308, 1.0, 1e308, -1.7e308, 5e-324, 2.0, 3.0])

    def fn(config: dict[str, Any]) -> dict[str, float]:
        return {"$\\frac$": next(values), "latency_ms": 1.0}

    result = deploytune.optimize(fn, SPACE, objective="$\\frac$",
                                 constraints=["latency_ms <= 30"], budget=8, sampler="random",
                                 seed=0)
    assert result.study is not None
    page = write_report(result.study, tmp_path).read_text(encoding="utf-8")
    _check_pngs(tmp_path)
    assert _trial_numbers(page) == list(range(8))
    assert "best $\\frac$ = <b>1e+308</b>" in page


def test_report_keeps_a_lone_surrogate_of_an_error(tmp_path: Path) -> None:
    def fn(config: dict[str, Any]) -> dict[str, float]:
        raise RuntimeError("undecodable \udc80 byte")

    result = deploytune.optimize(fn, SPACE, objective="throughput", budget=2,
                                 sampler="random", seed=0)
    assert result.study is not None
    page = write_report(result.study, tmp_path).read_text(encoding="utf-8")
    assert "undecodable \\udc80 byte" in page
