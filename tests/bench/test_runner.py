"""The bench runner: runs in their own processes, strict JSON output, summary, figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from deploytune.bench.problem import Problem
from deploytune.bench.runner import (
    dumps_strict,
    expand_problems,
    jsonable,
    run_bench,
    run_one,
    run_path,
)
from deploytune.cli import app


def tiny_problem() -> Problem:
    """A cheap problem with every outcome: oom crashes, infeasible and feasible trials."""

    def simulate(config: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        x = config["x"]
        if config["model"] == "big" and x > 0.5:
            raise MemoryError("simulated OOM")
        latency = 10.0 * x + float(rng.normal(0.0, 0.1))
        gain = {"small": 0.0, "mid": 0.3, "big": 0.6}[config["model"]]
        return {"score": x + gain, "latency_ms": latency, "inf_metric": float("inf")}

    return Problem.build(
        "tiny", {"model": {"type": "categorical", "choices": ["small", "mid", "big"]},
                 "x": {"type": "float", "low": 0.0, "high": 1.0}},
        "score", "maximize", ["latency_ms <= 7"], simulate, optimum=1.3, reference=0.5,
        families=("model",), description="A tiny test problem.")


def tiny_min_problem() -> Problem:
    """The same landscape, minimised (score is negated)."""
    base = tiny_problem()

    def simulate(config: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        m = dict(base.simulate(config, rng))
        m["score"] = -m["score"]
        return m

    return Problem.build("tiny-min", base.space, "score", "minimize", ["latency_ms <= 7"],
                         simulate, optimum=-1.3, reference=-0.5, families=("model",))


def broken_problem() -> Problem:
    """A factory that fails inside the worker."""
    raise RuntimeError("this problem cannot be built")


def dying_problem() -> Problem:
    """A factory that kills its worker process outright."""
    import os

    os._exit(3)


TINY = f"{__name__}:tiny_problem"
TINY_MIN = f"{__name__}:tiny_min_problem"
BROKEN = f"{__name__}:broken_problem"
DYING = f"{__name__}:dying_problem"


def _strict_loads(text: str) -> Any:
    def reject(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("bench")
    console = Console(file=open(out / "console.txt", "w"), width=200)  # noqa: SIM115
    result = run_bench([TINY, TINY_MIN], ["random"], [0, 1], budget=8, jobs=2, out_dir=out,
                       console=console)
    console.file.close()
    return out, result


def test_writes_one_strict_jsonl_file_per_run(bench: tuple[Path, Any]) -> None:
    out, result = bench
    assert not result.failures
    files = sorted((out / "runs").rglob("*.jsonl"))
    assert len(files) == 4
    for f in files:
        lines = f.read_text().splitlines()
        assert len(lines) == 8
        rows = [_strict_loads(line) for line in lines]
        assert [r["trial"] for r in rows] == list(range(1, 9))
        for r in rows:
            assert r["status"] in {"feasible", "infeasible", "crashed", "aborted"}
            assert set(r["config"]) <= {"model", "x"}
            assert r["sim_cost_s"] > 0
            if r["status"] == "crashed":
                assert r["crash_kind"] == "oom"
            else:
                assert r["metrics"]["inf_metric"] is None  # inf became null
        cum = [r["cum_wasted_s"] for r in rows]
        assert cum == sorted(cum)
        wasted = sum(r["sim_cost_s"] for r in rows if r["status"] != "feasible")
        assert cum[-1] == pytest.approx(wasted)


def test_summary_files(bench: tuple[Path, Any]) -> None:
    out, _ = bench
    summary = _strict_loads((out / "summary.json").read_text())
    assert len(summary["rows"]) == 2 and len(summary["runs"]) == 4
    assert summary["failures"] == []
    for row in summary["rows"]:
        assert row["n_runs"] == 2 and row["n_failed"] == 0
        assert 0.0 <= row["regret_mean"] <= 1.0
        assert 0.0 <= row["waste_mean"] <= 1.0
    md = (out / "summary.md").read_text()
    assert "| problem | sampler |" in md
    table = md.split("\n## ")[0]  # the summary table, before the statistics sections
    assert table.count("| random |") == 2
    assert "## Per (problem, budget) cell" in md and "## Scoreboard" in md
    assert f"### {TINY}, budget 8" in md
    assert summary["budget"] == 8 and summary["budgets"] == [8]
    assert [(c["problem"], c["budget"]) for c in summary["stats"]["cells"]] == [
        (TINY, 8), (TINY_MIN, 8)]
    assert "budget" not in summary["rows"][0]  # the single-budget rows are unchanged
    assert "DeployBench summary" in (out / "console.txt").read_text()


def test_figures_are_pngs(bench: tuple[Path, Any]) -> None:
    out, result = bench
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) == 4  # regret + waste per problem
    assert set(pngs) == set(result.figures)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_are_reproducible_across_processes(bench: tuple[Path, Any]) -> None:
    out, _ = bench
    files = {p.name: p for p in (out / "runs").rglob("seed_*.jsonl") if "min" not in str(p)}
    seed0 = [_strict_loads(x) for x in files["seed_0.jsonl"].read_text().splitlines()]
    seed1 = [_strict_loads(x) for x in files["seed_1.jsonl"].read_text().splitlines()]
    here = run_one(TINY, "random", 0, 8)  # in this process, with its own hash seed
    assert [r["config"] for r in here["rows"]] == [r["config"] for r in seed0]
    assert [r["value"] for r in here["rows"]] == [r["value"] for r in seed0]
    assert [r["config"] for r in seed1] != [r["config"] for r in seed0]


def test_run_one_summary_matches_rows() -> None:
    run = run_one(TINY, "random", 3, 6)
    rows, m = run["rows"], run["metrics"]
    assert len(rows) == 6 and m["n_trials"] == 6
    feasible = [r["value"] for r in rows if r["status"] == "feasible"]
    assert m["best_value"] == (max(feasible) if feasible else None)
    assert rows[-1]["best_feasible_so_far"] == m["best_value"]
    assert m["waste"] == pytest.approx(sum(r["status"] != "feasible" for r in rows) / 6)
    assert all(r["wall_s"] is not None and r["wall_s"] >= 0 for r in rows)
    dumps_strict(run)  # the whole run is standard JSON


def test_failed_runs_are_reported_not_fatal(tmp_path: Path) -> None:
    console = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
    result = run_bench([TINY, BROKEN, DYING], ["random"], [0], budget=3, jobs=2,
                       out_dir=tmp_path, figures=False, console=console, progress=False)
    console.file.close()
    assert len(result.runs) == 1 and len(result.failures) == 2
    errors = {f["problem"]: f["error"] for f in result.failures}
    assert "cannot be built" in errors[BROKEN]
    assert "worker process failed" in errors[DYING]
    summary = _strict_loads((tmp_path / "summary.json").read_text())
    assert [r["n_failed"] for r in summary["rows"]] == [0, 1, 1]
    assert "Failed runs" in (tmp_path / "summary.md").read_text()
    assert len(list((tmp_path / "runs").rglob("*.jsonl"))) == 1


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no-such-sampler"):
        run_bench([TINY], ["no-such-sampler"], [0], budget=3, out_dir=tmp_path)
    with pytest.raises(ValueError, match="budget"):
        run_bench([TINY], ["random"], [0], budget=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="no_such_module_xyz"):
        expand_problems(["no_such_module_xyz:factory"])
    with pytest.raises(ValueError, match="not both"):
        run_bench([TINY], ["random"], [0], budget=3, budgets=[3, 5], out_dir=tmp_path)
    with pytest.raises(ValueError, match="budget"):
        run_bench([TINY], ["random"], [0], out_dir=tmp_path)
    with pytest.raises(ValueError, match="budget"):
        run_bench([TINY], ["random"], [0], budgets=[5, 0], out_dir=tmp_path)
    assert not list(tmp_path.rglob("*.jsonl"))


def test_run_path_layouts(tmp_path: Path) -> None:
    assert run_path(tmp_path, "p", "s", 3) == tmp_path / "runs" / "p" / "s" / "seed_3.jsonl"
    assert run_path(tmp_path, "p", "s", 3, 25) == (
        tmp_path / "runs" / "p" / "b25" / "s" / "seed_3.jsonl")


def test_cli_budgets_runs_every_budget_and_compares_per_cell(tmp_path: Path) -> None:
    pytest.importorskip("deploytune.bench.registry")
    out = tmp_path / "res"
    result = CliRunner().invoke(app, [
        "bench", "--no-progress", "--no-figures", "--problems", "crashy-branin",
        "--samplers", "random,ctpe", "--seeds", "3", "--budgets", "5,8", "--jobs", "4",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(out / "runs").as_posix() for p in out.rglob("*.jsonl"))
    assert files == [f"crashy-branin/b{b}/{s}/seed_{i}.jsonl"
                     for b in (5, 8) for s in ("ctpe", "random") for i in range(3)]
    for f in out.rglob("*.jsonl"):
        budget = int(f.parent.parent.name[1:])
        assert len(f.read_text().splitlines()) == budget
    summary = _strict_loads((out / "summary.json").read_text())
    assert summary["budget"] is None and summary["budgets"] == [5, 8]
    assert [(r["budget"], r["sampler"]) for r in summary["rows"]] == [
        (5, "random"), (5, "ctpe"), (8, "random"), (8, "ctpe")]
    assert all(r["n_runs"] == 3 for r in summary["rows"])
    assert sorted((r["budget"], r["sampler"], r["seed"]) for r in summary["runs"]) == sorted(
        (b, s, i) for b in (5, 8) for s in ("random", "ctpe") for i in range(3))
    stats = summary["stats"]
    assert [(c["problem"], c["budget"]) for c in stats["cells"]] == [
        ("crashy-branin", 5), ("crashy-branin", 8)]
    for cell in stats["cells"]:
        assert cell["lowest"] and set(cell["lowest"]) <= {"random", "ctpe"}
        for entry in cell["samplers"]:
            assert entry["n_pairs"] == 3 and 0.0 < entry["p_value"] <= 1.0
            assert entry["reference"] in {"random", "ctpe"} - {entry["sampler"]}
            assert entry["discovery_rate"] is not None
    board = {s["sampler"]: s for s in stats["scoreboard"]}
    assert set(board) == {"random", "ctpe"}
    assert sum(s["cells_won"] for s in board.values()) >= 2
    assert all(s["n_cells"] == 2 for s in board.values())
    assert set(board["random"]["waste_ratio"]) == {"ctpe"}
    md = (out / "summary.md").read_text()
    assert "| problem | budget | sampler |" in md
    assert "### crashy-branin, budget 5" in md and "### crashy-branin, budget 8" in md
    assert "## Scoreboard" in md and "Waste relative to each other sampler" in md
    assert "crashy-branin, budget 8" in result.output and "scoreboard" in result.output


def test_cli_budget_and_budgets_conflict(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--no-progress", "--problems", TINY, "--samplers",
                                 "random", "--budget", "5", "--budgets", "5,8", "--out",
                                 str(tmp_path)])
    assert result.exit_code == 2
    assert "--budget" in result.output and "--budgets" in result.output
    assert "not both" in result.output
    result = runner.invoke(app, ["bench", "--no-progress", "--problems", TINY, "--samplers",
                                 "random", "--budgets", "5,x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "budgets" in result.output
    result = runner.invoke(app, ["bench", "--overhead", "--budgets", "5,8", "--out",
                                 str(tmp_path)])
    assert result.exit_code == 2 and "--budgets" in result.output
    assert not list(tmp_path.rglob("*.jsonl"))


def test_jsonable_makes_standard_json() -> None:
    data = {"a": float("nan"), "b": [float("inf"), -float("inf")], "c": np.float64(1.5),
            "d": np.int64(3), "e": (1, 2), 4: np.bool_(True), "f": np.array([1.0, np.nan])}
    text = dumps_strict(data)
    assert _strict_loads(text) == {"a": None, "b": [None, None], "c": 1.5, "d": 3,
                                   "e": [1, 2], "4": True, "f": [1.0, None]}
    assert jsonable(float("nan")) is None


def test_smoke_registered_problem() -> None:
    pytest.importorskip("deploytune.bench.registry")
    run = run_one("crashy-branin", "random", 0, 5)
    assert len(run["rows"]) == 5
    dumps_strict(run)
