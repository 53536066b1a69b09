"""The bench runner: runs in spawned processes, strict JSON output, summary, figures, resume."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from deploybench.problem import Problem
from deploybench.runner import (
    dumps_strict,
    expand_problems,
    jsonable,
    run_bench,
    run_one,
    run_path,
    summary_path,
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


_BUILT = [0]
"""Problems built in this process (each run builds its own)."""


def pid_problem() -> Problem:
    """The tiny problem, with the evaluating process's id as a metric."""
    base = tiny_problem()

    def simulate(config: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        return {**base.simulate(config, rng), "pid": float(os.getpid())}

    return Problem.build("pid", base.space, "score", "maximize", ["latency_ms <= 7"], simulate,
                         optimum=1.3, reference=0.5)


def fails_second_problem() -> Problem:
    """The tiny problem, but the second one built in a process fails."""
    _BUILT[0] += 1
    if _BUILT[0] == 2:
        raise RuntimeError("the second problem of this process cannot be built")
    return tiny_problem()


def dies_second_problem() -> Problem:
    """The tiny problem, but building the second one in a process kills that process."""
    _BUILT[0] += 1
    if _BUILT[0] == 2:
        os._exit(5)
    return tiny_problem()


TINY = f"{__name__}:tiny_problem"
TINY_MIN = f"{__name__}:tiny_min_problem"
BROKEN = f"{__name__}:broken_problem"
DYING = f"{__name__}:dying_problem"
PID = f"{__name__}:pid_problem"
FAILS_SECOND = f"{__name__}:fails_second_problem"
DIES_SECOND = f"{__name__}:dies_second_problem"


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_budgets_runs_every_budget_and_compares_per_cell(tmp_path: Path) -> None:
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
    result = runner.invoke(app, ["bench", "overhead", "--budgets", "5,8", "--out",
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
    run = run_one("crashy-branin", "random", 0, 5)
    assert len(run["rows"]) == 5
    dumps_strict(run)


# ---------------------------------------------------------------------------- runs per process
def _quiet(path: Path) -> Console:
    return Console(file=open(path, "w"), width=200)  # closed by the caller


def _null() -> Console:
    return Console(file=io.StringIO(), width=200)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [_strict_loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_runs_per_process_does_not_change_results(tmp_path: Path) -> None:
    results = {}
    for n in (1, 3):
        console = _quiet(tmp_path / f"console{n}.txt")
        results[n] = run_bench(["crashy-branin"], ["random", "tba-tpe"], [0, 1, 2], budget=8,
                               jobs=2, out_dir=tmp_path / f"rpp{n}", figures=False,
                               console=console, progress=False, runs_per_process=n)
        console.file.close()
        assert not results[n].failures and len(results[n].runs) == 6
    for sampler in ("random", "tba-tpe"):
        for seed in (0, 1, 2):
            one, three = (_rows(run_path(tmp_path / f"rpp{n}", "crashy-branin", sampler, seed))
                          for n in (1, 3))
            assert len(one) == 8
            keys = ("config", "status", "crash_kind", "value", "metrics", "sim_cost_s",
                    "eval_s")
            assert [{k: r[k] for k in keys} for r in one] == [
                {k: r[k] for k in keys} for r in three], (sampler, seed)
    assert [r["metrics"] for r in results[1].runs] == [r["metrics"] for r in results[3].runs]
    assert results[1].rows == results[3].rows


@pytest.mark.slow
def test_runs_share_processes_by_chunk(tmp_path: Path) -> None:
    console = _quiet(tmp_path / "console.txt")
    result = run_bench([PID], ["random"], [0, 1, 2, 3, 4], budget=3, jobs=2, out_dir=tmp_path,
                       figures=False, console=console, progress=True, runs_per_process=2)
    console.file.close()
    assert not result.failures
    pids = {}
    for seed in range(5):
        rows = _rows(run_path(tmp_path, PID, "random", seed))
        seen = {r["metrics"]["pid"] for r in rows if "pid" in r["metrics"]}  # not crashes
        assert len(seen) == 1, rows
        pids[seed] = seen.pop()
    # 5 seeds by at most 2 per process: (0, 1), (2, 3), (4), each chunk in a fresh process
    assert pids[0] == pids[1] and pids[2] == pids[3]
    assert len({pids[0], pids[2], pids[4]}) == 3
    assert os.getpid() not in pids.values()
    assert "5/5" in (tmp_path / "console.txt").read_text()  # the progress counts runs


@pytest.mark.slow
def test_a_failed_run_does_not_fail_its_chunk(tmp_path: Path) -> None:
    result = run_bench([FAILS_SECOND], ["random"], [0, 1, 2], budget=3, jobs=1,
                       out_dir=tmp_path, figures=False, console=_null(),
                       progress=False, runs_per_process=3)
    assert [r["seed"] for r in result.runs] == [0, 2]
    assert [f["seed"] for f in result.failures] == [1]
    assert "second problem of this process" in result.failures[0]["error"]
    assert not run_path(tmp_path, FAILS_SECOND, "random", 1).exists()
    assert run_path(tmp_path, FAILS_SECOND, "random", 2).exists()


@pytest.mark.slow
def test_a_dying_worker_fails_the_rest_of_its_chunk(tmp_path: Path) -> None:
    result = run_bench([DIES_SECOND], ["random"], [0, 1, 2], budget=3, jobs=1,
                       out_dir=tmp_path, figures=False, console=_null(),
                       progress=False, runs_per_process=3)
    assert [r["seed"] for r in result.runs] == [0]
    assert [f["seed"] for f in result.failures] == [1, 2]
    for f in result.failures:
        assert "worker process failed (exit code 5)" in f["error"]
    assert summary_path(run_path(tmp_path, DIES_SECOND, "random", 0)).exists()
    for seed in (1, 2):
        assert not run_path(tmp_path, DIES_SECOND, "random", seed).exists()
        assert not summary_path(run_path(tmp_path, DIES_SECOND, "random", seed)).exists()


def test_rejects_bad_runs_per_process(tmp_path: Path) -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="runs_per_process"):
            run_bench([TINY], ["random"], [0], budget=3, out_dir=tmp_path,
                      runs_per_process=bad)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- resume
def _mtimes(paths: list[Path]) -> list[int]:
    return [p.stat().st_mtime_ns for p in paths]


@pytest.mark.slow
def test_resume_runs_only_the_missing_runs(tmp_path: Path) -> None:
    first = run_bench([TINY], ["random"], [0, 1, 2], budget=5, jobs=2, out_dir=tmp_path,
                      figures=False, console=_null(), progress=False)
    assert not first.failures
    jsonl = [run_path(tmp_path, TINY, "random", s) for s in range(3)]
    done = [summary_path(p) for p in jsonl]
    for p, d, run in zip(jsonl, done, first.runs, strict=True):
        summary = _strict_loads(d.read_text())  # the run's summary, written next to its rows
        assert summary == {**run, "path": str(p)}
        assert "rows" not in summary
    jsonl[1].unlink()
    done[1].unlink()  # seed 1: no files at all
    done[2].unlink()  # seed 2: rows without a summary, as when interrupted in between
    kept = _mtimes([jsonl[0], done[0]])
    stale = _mtimes([jsonl[2]])

    console = _quiet(tmp_path / "c2.txt")
    again = run_bench([TINY], ["random"], [0, 1, 2], budget=5, jobs=2, out_dir=tmp_path,
                      figures=False, console=console, progress=True, resume=True)
    console.file.close()
    assert _mtimes([jsonl[0], done[0]]) == kept  # seed 0 was not run again
    assert _mtimes([jsonl[2]]) != stale  # seed 2 was
    assert all(p.exists() for p in jsonl + done)
    assert [(r["seed"], r["metrics"]) for r in again.runs] == [
        (r["seed"], r["metrics"]) for r in first.runs]
    assert again.runs[0]["wall_s"] == first.runs[0]["wall_s"]  # read back, not re-measured
    assert again.rows == first.rows and not again.failures
    summary = _strict_loads((tmp_path / "summary.json").read_text())
    assert [r["seed"] for r in summary["runs"]] == [0, 1, 2]
    text = (tmp_path / "c2.txt").read_text()
    assert "resumed 1 of 3 runs" in text and "3/3" in text

    # everything complete: nothing runs; without resume, everything runs again
    before = _mtimes(jsonl + done)
    third = run_bench([TINY], ["random"], [0, 1, 2], budget=5, out_dir=tmp_path,
                      figures=False, console=_null(), progress=False,
                      resume=True)
    assert _mtimes(jsonl + done) == before and third.rows == first.rows
    before = _mtimes(jsonl)
    run_bench([TINY], ["random"], [0, 1, 2], budget=5, out_dir=tmp_path, figures=False,
              console=_null(), progress=False)
    assert all(a != b for a, b in zip(_mtimes(jsonl), before, strict=True))


@pytest.mark.slow
def test_resume_reruns_runs_of_another_budget(tmp_path: Path) -> None:
    run_bench([TINY], ["random"], [0], budget=4, out_dir=tmp_path, figures=False,
              console=_null(), progress=False)
    again = run_bench([TINY], ["random"], [0], budget=5, out_dir=tmp_path, figures=False,
                      console=_null(), progress=False, resume=True)
    assert again.runs[0]["metrics"]["n_trials"] == 5
    assert len(_rows(run_path(tmp_path, TINY, "random", 0))) == 5


@pytest.mark.slow
def test_resume_recomputes_runs_of_a_folder_without_summaries(tmp_path: Path) -> None:
    first = run_bench([TINY, TINY_MIN], ["random"], [0, 1], budget=5, jobs=2,
                      out_dir=tmp_path, figures=False, console=_null(),
                      progress=False)
    jsonl = sorted((tmp_path / "runs").rglob("*.jsonl"))
    assert len(jsonl) == 4
    for p in jsonl:  # as written before summary files existed
        summary_path(p).unlink()
    before = _mtimes(jsonl)
    again = run_bench([TINY, TINY_MIN], ["random"], [0, 1], budget=5, jobs=2,
                      out_dir=tmp_path, figures=False, console=_null(),
                      progress=False, resume=True)
    assert _mtimes(jsonl) == before  # nothing ran again
    assert [r["metrics"] for r in again.runs] == [r["metrics"] for r in first.runs]
    assert again.rows == first.rows
    for run in again.runs:  # wall seconds: the sum of the trials' wall seconds
        rows = _rows(Path(run["path"]))
        assert run["wall_s"] == pytest.approx(sum(r["wall_s"] for r in rows))
        assert summary_path(run["path"]).exists()  # written back


@pytest.mark.slow
def test_cli_runs_per_process_and_resume(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["bench", "--no-progress", "--no-figures", "--problems", TINY, "--samplers",
            "random", "--seeds", "2", "--budget", "3", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--runs-per-process", "2"])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "runs").rglob("seed_*"))
    assert [p.name for p in files] == ["seed_0.json", "seed_0.jsonl", "seed_1.json",
                                       "seed_1.jsonl"]
    before = _mtimes(files)
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "resumed 2 of 2 runs" in result.output and _mtimes(files) == before
    result = runner.invoke(app, [*args, "--runs-per-process", "0"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["bench", "overhead", "--resume", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--resume" in result.output


@pytest.mark.slow
def test_cli_sampler_names_with_options(tmp_path: Path) -> None:
    """A ``name[key=value;...]`` sampler runs and is reported under its full name; commas
    inside the brackets do not split the list."""
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--no-progress", "--problems", TINY, "--samplers",
                                 "random,cabo[coverage_until=0.5;n_random=64]", "--seeds", "1",
                                 "--budget", "4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "cabo[coverage_until=0.5;n_random=64]" in json.dumps(summary)
    assert len(list(tmp_path.rglob("seed_0.jsonl"))) == 2
    result = runner.invoke(app, ["bench", "--no-progress", "--problems", TINY, "--samplers",
                                 "cabo[coverage_until]", "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and "cabo[coverage_until]" in result.output
