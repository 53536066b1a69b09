"""``deploytune bench fidelity``: the staged simulations, the cost of a stop at a rung, and a
tiny run of every method (structure, caps, the report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from deploybench.fidelity_bench import METHODS, FidelitySettings, regret_at, run_fidelity_bench
from deploybench.fidelity_smac import run_smac_mf
from deploybench.runs import resolve_problem
from deploytune.outcome import Status


@pytest.mark.parametrize("name", ["llm-sim-8b-24gb", "llm-sim-70b-4xh100", "gen-dev-03",
                                  "gen-noisy-test-01"])
def test_a_staged_evaluation_ends_as_the_single_fidelity_one(name: str) -> None:
    problem = resolve_problem(name)
    assert problem.staged is not None
    reported = 0
    rungs: list[Any] = []

    def report(metrics: Any, step: Any = None, rung: Any = None) -> None:
        rungs.append(rung)

    for i in range(60):
        config = problem.space.sample(np.random.default_rng(i))
        rungs.clear()
        outcomes = []
        for staged in (False, True):
            rng = np.random.default_rng([5, i])
            try:
                if staged:
                    out: Any = problem.staged(dict(config), rng, report)
                else:
                    out = problem.simulate(dict(config), rng)
            except Exception as exc:  # the same crash, with the same message
                out = f"{type(exc).__name__}: {exc}"
            outcomes.append(out)
        assert outcomes[0] == outcomes[1]
        assert rungs in ([], ["short"], ["boot"], ["boot", "short"])
        reported += "short" in rungs
    assert reported > 0


def test_a_stop_at_a_rung_costs_that_rung() -> None:
    problem = resolve_problem("llm-sim-8b-24gb")
    from deploybench.llm_sim import OPTIMAL_CONFIGS

    config = OPTIMAL_CONFIGS["llm-sim-8b-24gb"]
    full = problem.cost.seconds(config, Status.FEASIBLE, None)
    short = problem.cost.seconds(config, Status.ABORTED, None, "short")
    boot = problem.cost.seconds(config, Status.ABORTED, None, "boot")
    assert boot < short < full
    gen = resolve_problem("gen-dev-00")
    assert gen.cost.seconds({}, Status.ABORTED, None, "short") == pytest.approx(
        gen.cost.feasible_s / 4)


def test_smac_multi_fidelity_runs_at_both_budgets() -> None:
    rows = run_smac_mf(resolve_problem("llm-sim-8b-24gb"), 0, 4000.0, 60)
    assert (rows and rows[-1]["cum_s"] >= 4000.0) or len(rows) == 60
    assert {r["status"] for r in rows} & {"aborted"}  # runs SMAC stopped at budget 1
    assert any(r["error"] is None and r["status"] != "crashed" for r in rows)  # full runs


@pytest.mark.slow
def test_every_method_runs_and_the_report_is_written(tmp_path: Path) -> None:
    settings = FidelitySettings(problems=("llm-sim-8b-24gb", "llm-sim-70b-2xh100"),
                                methods=tuple(METHODS), seeds=2, trials=8,
                                promote_below=(0.0, 0.05), jobs=2, max_trials=40)
    results = run_fidelity_bench(settings, tmp_path, "test")
    labels = {r["method"] for r in results["runs"]}
    assert labels == {"cabo", "cabo-rungs[0]", "cabo-rungs[0.05]", "cabo-estimate[0]",
                      "cabo-estimate[0.05]", "ctpe-hyperband", "ctpe-sh", "random-asha",
                      "smac3-mf"}
    for run in results["runs"]:
        cap = results["caps"][run["problem"]]
        if run["method"] == "cabo":
            assert len(run["rows"]) == 8
        else:  # stops once its simulated seconds reach the cap (or at 40 trials)
            assert run["rows"][-1]["cum_s"] >= cap or len(run["rows"]) == 40
            assert all(r["cum_s"] < cap for r in run["rows"][:-1])
    problem = resolve_problem("llm-sim-70b-2xh100")
    run = next(r for r in results["runs"] if r["problem"] == "llm-sim-70b-2xh100")
    assert regret_at(run, 0.0, problem.regret, problem.objective.direction == "maximize") == 1.0
    summary = json.loads((tmp_path / "fidelity.json").read_text())["summary"]
    assert set(summary["pooled"]["goals"]) == {"cabo-rungs[0]", "cabo-rungs[0.05]",
                                               "cabo-estimate[0]", "cabo-estimate[0.05]"}
    markdown = (tmp_path / "fidelity.md").read_text()
    assert "**All 2 problems pooled**" in markdown and "| `smac3-mf` |" in markdown
    assert (tmp_path / "fidelity.png").stat().st_size > 10_000


def test_the_command_refuses_bad_options(tmp_path: Path) -> None:
    from deploytune.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "fidelity", "--methods", "cabo-rungs", "--out",
                              str(tmp_path)])
    assert bad.exit_code != 0 and "--methods" in bad.output
    bad = runner.invoke(app, ["bench", "fidelity", "--promote-below", "0.5,2", "--out",
                              str(tmp_path)])
    assert bad.exit_code != 0 and "--promote-below" in bad.output
    bad = runner.invoke(app, ["bench", "fidelity", "--problems", "crashy-branin", "--out",
                              str(tmp_path)])
    assert bad.exit_code != 0 and "no fidelity rungs" in " ".join(
        bad.output.replace("│", " ").split())
