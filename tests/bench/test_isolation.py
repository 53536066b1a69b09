"""The isolation-overhead and early-abort benchmarks, on tiny settings (fast)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from deploybench.early_abort import (
    AbortProblem,
    compare_early_abort,
    counterfactual,
    default_spec_path,
    early_abort_markdown,
    problem_from_spec,
)
from deploybench.isolation import (
    IsolationCase,
    default_cases,
    isolation_overhead,
    percentile,
    time_trials,
    trivial,
)
from deploytune.cli import app
from deploytune.early_abort import OFF, EarlyAbort
from deploytune.evaluators.base import FunctionEvaluator, Report
from deploytune.outcome import Objective, parse_constraints
from deploytune.space import Space
from deploytune.spec import load_spec

runner = CliRunner()

SLOW_HEAD_S = 0.03
"""Seconds a slow configuration takes before its first report (progress 0.25)."""
SLOW_TAIL_S = 0.12
"""Seconds it takes after that report to finish."""


def streaming_target(config: dict[str, Any], report: Report) -> dict[str, float]:
    """A fast configuration, or a slow one whose first streamed p95 is already hopeless."""
    if config["mode"] == "slow":
        time.sleep(SLOW_HEAD_S)
        report(p95_ms=500.0, progress=0.25)
        time.sleep(SLOW_TAIL_S)
        return {"score": config["x"] + 10.0, "p95_ms": 500.0}
    report(p95_ms=5.0, progress=0.5)
    return {"score": config["x"], "p95_ms": 5.0}


def _broken(config: dict[str, Any]) -> dict[str, float]:
    raise RuntimeError("broken on purpose")


SPACE = {"mode": {"type": "categorical", "choices": ["fast", "slow"]},
         "x": {"type": "float", "low": 0.0, "high": 1.0}}


def tiny_problem() -> AbortProblem:
    """Maximise score with p95_ms <= 20: slow configurations stream p95 = 500 first."""
    return AbortProblem(
        "tiny", lambda: FunctionEvaluator(streaming_target), Space.from_dict(SPACE),
        Objective("score", "maximize"), tuple(parse_constraints(["p95_ms <= 20"])),
        retries=0, sampler="random")


# ------------------------------------------------------------------------------- isolation
def test_trivial_and_percentile() -> None:
    assert trivial({"anything": 1}) == {"x": 1.0}
    values = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    for q in (0, 25, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


def test_isolation_overhead_table(tmp_path: Path) -> None:
    report = isolation_overhead(repeats=3, out_dir=tmp_path, command="deploytune bench ...")
    rows = report["rows"]
    assert [r["case"] for r in rows] == ["function", "isolated", "isolated+memory",
                                         "command-python", "command-echo"]
    for r in rows:
        assert r["error"] is None, r
        assert r["repeats"] == 3 and r["evaluator"]
        for key in ("median_ms", "p95_ms", "min_ms", "max_ms", "mean_ms"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["case"], key)
        assert r["min_ms"] <= r["median_ms"] <= r["p95_ms"] <= r["max_ms"]
    reference = rows[0]
    assert reference["overhead_ms"] == 0
    for r in rows[1:]:  # a child process per trial costs more than a function call
        assert r["median_ms"] > reference["median_ms"]
        assert r["overhead_ms"] == pytest.approx(r["median_ms"] - reference["median_ms"])
    assert "memory_mb=" in rows[2]["label"] and "MB" in rows[2]["evaluator"]
    assert report["machine"]["cpus"] >= 1 and report["machine"]["date"]

    saved = json.loads((tmp_path / "isolation.json").read_text())
    assert saved["repeats"] == 3 and len(saved["rows"]) == 5
    md = (tmp_path / "isolation.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 5  # header, rule, one row per case
    assert "| evaluator | median ms | p95 ms | min ms |" in table[0]
    assert "deploytune bench ..." in md and "3 timed trials" in md


def test_a_broken_case_is_reported_not_timed(tmp_path: Path) -> None:
    cases = [default_cases()[0],
             IsolationCase("broken", "raises", lambda: FunctionEvaluator(_broken))]
    report = isolation_overhead(repeats=2, cases=cases, out_dir=tmp_path)
    broken = report["rows"][1]
    assert broken["median_ms"] is None and broken["overhead_ms"] is None
    assert "RuntimeError" in broken["error"] and "crashed" in broken["error"]
    assert "Errors:" in (tmp_path / "isolation.md").read_text()
    with pytest.raises(ValueError, match="repeats"):
        time_trials(FunctionEvaluator(trivial), 0)
    with pytest.raises(ValueError, match="repeats"):
        isolation_overhead(repeats=0)


# ----------------------------------------------------------------------------- early abort
def test_compare_early_abort_on_a_synthetic_problem(tmp_path: Path) -> None:
    report = compare_early_abort(tiny_problem(), seeds=[0], budget=8, out_dir=tmp_path,
                                 command="deploytune bench early-abort ...")
    (seed,) = report["per_seed"]
    on, off = seed["on"], seed["off"]
    assert on["trials"] == off["trials"] == 8
    assert on["aborted"] >= 1 and off["aborted"] == 0
    # The random sampler ignores outcomes: both runs evaluate the same configurations.
    assert [t["config"] for t in on["trial_list"]] == [t["config"] for t in off["trial_list"]]
    rows = seed["counterfactual"]
    assert len(rows) == on["aborted"]
    for r in rows:
        assert r["config"]["mode"] == "slow" and r["full_status"] == "infeasible"
        assert r["aborted_cost_s"] >= SLOW_HEAD_S * 0.9
        assert r["full_cost_s"] >= SLOW_HEAD_S + SLOW_TAIL_S
        assert r["measured_saved_s"] == pytest.approx(r["full_cost_s"] - r["aborted_cost_s"])
        assert r["measured_saved_s"] > SLOW_TAIL_S * 0.8
        # progress 0.25 after the head: the estimate is 3 x the time spent
        assert r["estimated_saved_s"] == pytest.approx(3 * r["aborted_cost_s"], rel=0.05)
    assert seed["measured_saved_s"] == pytest.approx(sum(r["measured_saved_s"] for r in rows))
    assert on["estimated_saved_s"] == pytest.approx(
        sum(r["estimated_saved_s"] for r in rows), abs=0.01)
    # the slow configurations score higher but are infeasible: the best is a fast one either way
    assert on["best_value"] == off["best_value"] is not None and on["best_value"] < 10
    total = report["total"]
    assert total["aborted"] == on["aborted"] and total["aborted_would_be_feasible"] == 0
    assert total["measured_saved_s"] == pytest.approx(seed["measured_saved_s"])
    assert report["early_abort"] == {"before_feasible": 5.0, "after_feasible": 3.0}

    saved = json.loads((tmp_path / "early_abort.json").read_text())
    assert saved["total"]["aborted"] == on["aborted"]
    md = (tmp_path / "early_abort.md").read_text()
    assert md == early_abort_markdown(report)
    assert "deploytune bench early-abort ..." in md and "diverge" in md
    assert "| total |" in md and "Aborted trials and their counterfactual" in md


def test_counterfactual_needs_no_aborted_trials() -> None:
    assert counterfactual(tiny_problem(), []) == []
    with pytest.raises(ValueError, match="seed"):
        compare_early_abort(tiny_problem(), seeds=[], budget=2)
    with pytest.raises(ValueError, match="budget"):
        compare_early_abort(tiny_problem(), seeds=[0], budget=0)


def test_problem_from_the_matmul_spec() -> None:
    spec = load_spec(default_spec_path())
    problem = problem_from_spec(spec)
    assert problem.name == "matmul" and problem.sampler == spec.sampler
    assert problem.timeout_s == spec.evaluator.timeout_s == 20
    assert problem.early_abort == EarlyAbort(5, 3)
    assert [str(c) for c in problem.constraints] == [str(c) for c in spec.constraints]
    fast = problem_from_spec(spec, timeout_s=5)
    evaluator = fast.make_evaluator()
    assert fast.timeout_s == 5 and getattr(evaluator, "timeout_s", None) == 5
    assert "5 s" in evaluator.describe()
    evaluator.close()
    off = problem_from_spec(dataclasses.replace(spec, early_abort=OFF))
    assert off.early_abort == EarlyAbort()  # the "on" runs need a rule that is on
    with pytest.raises(ValueError, match="timeout"):
        problem_from_spec(spec, timeout_s=0)


# ------------------------------------------------------------------------------------- CLI
_SCRIPT = """\
import json, sys, time
mode, x = sys.argv[1], float(sys.argv[2])
if mode == 'slow':
    time.sleep(0.05)
    print('DEPLOYTUNE_REPORT', json.dumps(dict(p95_ms=500.0, progress=0.25)), flush=True)
    time.sleep(1.5)
    print(json.dumps(dict(score=x + 10, p95_ms=500.0)))
else:
    print(json.dumps(dict(score=x, p95_ms=5.0)))
"""


@pytest.mark.slow
def test_cli_isolation_and_early_abort(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["bench", "isolation", "--repeats", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "isolation.json").read_text())["repeats"] == 2
    assert "bench isolation --repeats 2" in (out / "isolation.md").read_text()

    spec = {"study": "tiny", "space": SPACE, "objective": {"maximize": "score"},
            "constraints": ["p95_ms <= 20"],
            "evaluator": {"command": {"argv": ["{python}", "-c", _SCRIPT, "{mode}", "{x}"]},
                          "timeout_s": 30, "retries": 0},
            "budget": {"trials": 4}, "sampler": "random", "seed": 0}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["bench", "early-abort", "--spec", str(spec_file),
                                 "--seeds", "1", "--budget", "4", "--timeout", "0.6",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "early_abort.json").read_text())
    assert report["timeout_s"] == 0.6 and report["seeds"] == [0] and report["budget"] == 4
    assert "--timeout 0.6" in report["command"] and "0.6 s" in report["evaluator"]
    (seed,) = report["per_seed"]
    assert seed["on"]["aborted"] >= 1
    for r in seed["counterfactual"]:  # the full run of a slow configuration hits 0.6 s
        assert r["full_status"] == "crashed" and r["full_crash_kind"] == "timeout"

    both = runner.invoke(app, ["bench", "isolation", "--spec", "x.yaml", "--out", str(out)])
    assert both.exit_code == 2 and "--spec" in both.output  # an early-abort option


_HANG_SCRIPT = """\
import json, sys, time
mode, x = sys.argv[1], float(sys.argv[2])
if mode == 'slow':
    time.sleep(1.2)  # no report: only the time limit can stop it
print(json.dumps(dict(score=x, p95_ms=5.0)))
"""


@pytest.mark.slow
def test_cli_limit_counterfactual_measures_what_the_time_limit_saved(tmp_path: Path) -> None:
    """Real command processes: slow configurations exceed the 0.4 s limit and are re-run
    under 5 s, where they finish (about 1.2 s): the saving is measured, not estimated."""
    out = tmp_path / "out"
    spec = {"study": "hang", "space": SPACE, "objective": {"maximize": "score"},
            "constraints": ["p95_ms <= 20"],
            "evaluator": {"command": {"argv": ["{python}", "-c", _HANG_SCRIPT, "{mode}", "{x}"]},
                          "timeout_s": 30, "retries": 0},
            "budget": {"trials": 6}, "sampler": "random", "seed": 0}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["bench", "early-abort", "--spec", str(spec_file),
                                 "--seeds", "1", "--budget", "6", "--timeout", "0.4",
                                 "--limit-counterfactual", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "early_abort.json").read_text())
    assert "--limit-counterfactual 5" in report["command"]
    (seed,) = report["per_seed"]
    timeouts = seed["on"]["timeouts"]
    assert timeouts >= 1 and seed["on"]["crash_kinds"] == {"timeout": timeouts}
    rows = seed["limit_counterfactual"]
    assert len(rows) == timeouts
    for r in rows:
        assert r["config"]["mode"] == "slow"
        assert r["long_status"] == "feasible" and r["long_crash_kind"] is None
        assert r["long_cost_s"] >= 1.2 > r["limited_cost_s"]
        assert r["measured_saved_s"] == pytest.approx(r["long_cost_s"] - r["limited_cost_s"])
    total = report["total"]
    assert total["limit_saved_s"] == pytest.approx(sum(r["measured_saved_s"] for r in rows))
    assert total["crash_kinds_on"] == {"timeout": timeouts}
    md = (out / "early_abort.md").read_text()
    assert "Time limit counterfactual" in md and f"{timeouts} timeout" in md
