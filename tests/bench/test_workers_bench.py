"""``deploytune bench workers``: real worker processes on one study, tiny settings; the results'
structure and exact counts (budget, duplicates, left-over trials)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from deploybench.workers_bench import WorkersSettings, run_workers_bench
from deploybench.workers_cli import parse_worker_counts
from deploybench.workers_report import summarise, workers_markdown

pytestmark = pytest.mark.slow

_RUN_KEYS = {"workers", "seed", "study", "wall_s", "exit_codes", "failed", "sampler_s",
             "ask_gap_s", "trials", "evaluations", "duplicates", "left_over", "interrupted",
             "regret", "span_s", "trials_per_worker"}


def test_every_run_spends_the_exact_budget_without_duplicates(tmp_path: Path) -> None:
    settings = WorkersSettings(sampler="cabo", seeds=2, workers=(1, 2), budget=6, sleep_s=0.05)
    results = run_workers_bench(settings, tmp_path, "test")
    runs = results["runs"]
    assert [(r["workers"], r["seed"]) for r in runs] == [(1, 0), (2, 0), (1, 1), (2, 1)]
    for run in runs:
        assert set(run) >= _RUN_KEYS, run.get("log_tail")
        assert not run["failed"] and run["exit_codes"] == [0]  # one process forks them
        assert run["evaluations"] == 6 and run["trials"] == 6
        assert run["duplicates"] == 0 and run["left_over"] == 0 and run["interrupted"] == 0
        assert sum(run["trials_per_worker"]) == 6 and len(run["trials_per_worker"]) <= \
            run["workers"]
        assert len(run["sampler_s"]) == 6 and 0.0 <= run["regret"] <= 1.0
        assert (tmp_path / "runs" / f"w{run['workers']}-seed{run['seed']}" / "study.db").exists()
    rows = {r["workers"]: r for r in results["summary"]["rows"]}
    assert rows[1]["speedup"] == pytest.approx(1.0) and rows[1]["regret_p"] is None
    assert rows[2]["exact_budget"] == 2 and rows[2]["duplicates"] == 0
    assert rows[2]["regret_pairs"] == 2 and rows[2]["regret_p"] is not None
    assert results["summary"]["goals"] == []  # the goals are about 4 workers
    written = json.loads((tmp_path / "workers.json").read_text())
    assert written["summary"]["rows"][1]["workers"] == 2
    markdown = (tmp_path / "workers.md").read_text()
    assert "| workers | wall s |" in markdown and "Every run:" in markdown


def test_workers_can_each_start_an_interpreter(tmp_path: Path) -> None:
    settings = WorkersSettings(sampler="random", seeds=1, workers=(2,), budget=4, sleep_s=0.05,
                               launch="exec")
    run, = run_workers_bench(settings, tmp_path, "test")["runs"]
    assert not run["failed"] and run["exit_codes"] == [0, 0], run.get("log_tail")
    assert run["evaluations"] == 4 and run["duplicates"] == 0 and run["left_over"] == 0
    assert len(set(run["trials_per_worker"])) >= 1 and sum(run["trials_per_worker"]) == 4


def test_the_goals_judge_four_workers_against_one() -> None:
    def run(workers: int, seed: int, wall: float, regret: float) -> dict[str, object]:
        return {"workers": workers, "seed": seed, "wall_s": wall, "span_s": wall - 1,
                "regret": regret, "evaluations": 50, "duplicates": 0, "left_over": 0,
                "interrupted": 0, "failed": False, "sampler_s": [0.1], "ask_gap_s": [0.2],
                "trials_per_worker": [13, 13, 12, 12]}

    runs = [run(w, s, 100.0 / w + 3, 0.1 * s) for s in range(6) for w in (1, 4)]
    summary = summarise(runs, (1, 4), 50)
    four = summary["rows"][1]
    assert four["speedup"] == pytest.approx(103 / 28)
    assert four["outside_span_s_mean"] == pytest.approx(1.0)
    assert [g["met"] for g in summary["goals"]] == [True, True, True]
    worse = [{**r, "regret": r["regret"] + 0.5} if r["workers"] == 4 else r for r in runs]
    assert [g["met"] for g in summarise(worse, (1, 4), 50)["goals"]] == [True, False, True]
    five = [r for r in runs if r["seed"] < 5]  # 5 pairs: p >= 0.0625, the test cannot decide
    assert [g["met"] for g in summarise(five, (1, 4), 50)["goals"]] == [True, None, True]
    runs[-1]["duplicates"] = 1
    summary = summarise(runs, (1, 4), 50)
    assert [g["met"] for g in summary["goals"]] == [True, True, False]
    results = {"settings": WorkersSettings().__dict__, "command": "c", "cpus": 2, "runs": runs,
               "summary": summary}
    assert "**missed**" in workers_markdown(results)


def test_the_command_refuses_bad_options(tmp_path: Path) -> None:
    from deploytune.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "workers", "--workers", "0,2", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "worker counts" in bad.output
    bad = runner.invoke(app, ["bench", "workers", "--launch", "ssh", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "--launch" in bad.output
    assert parse_worker_counts("1, 2,4,2") == (1, 2, 4)
    with pytest.raises(typer.BadParameter):
        parse_worker_counts("two")
    live = runner.invoke(app, ["bench", "workers", "--problem", "effnet-edge", "--out",
                               str(tmp_path)])
    assert live.exit_code != 0 and "real evaluations" in live.output
