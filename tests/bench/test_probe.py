"""``deploytune bench probe``: fresh-process runs, their statistics and the CLI surface."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploybench import probe
from deploybench.probe import (
    ProbeCase,
    boundary_limit,
    flip_rate,
    probe_runs,
    run_probe,
    summarize_case,
)
from deploytune.cli import app

ROOT = str(Path(__file__).resolve().parents[2])
TARGET = "tests.bench.probe_target:evaluate"
runner = CliRunner()


def _case(label: str, folder: Path, values: list[float], **extra: Any) -> ProbeCase:
    folder.mkdir(parents=True, exist_ok=True)
    return ProbeCase(label=label, target=TARGET,
                     config={"dir": str(folder), "values": values, **extra},
                     timeout_s=30, sys_path=(ROOT,))


def _records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("run-*.json"))]


def test_flip_rate_counts_the_minority_side() -> None:
    assert flip_rate([1, 2, 3, 4], 10) == 0.0  # all feasible
    assert flip_rate([11, 12], 10) == 0.0  # all infeasible
    assert flip_rate([9, 11, 12, 13], 10) == 0.25
    assert flip_rate([9, 9, 11, 11], 10) == 0.5
    assert flip_rate([10, 11], 10) == 0.5  # equal to the limit is feasible
    assert math.isnan(flip_rate([], 10))


def test_boundary_limit_puts_the_median_below_it() -> None:
    assert boundary_limit([19.0, 20.0, 100.0], headroom=0.2) == pytest.approx(25.0)
    assert boundary_limit([19.7]) == pytest.approx(19.7 / 0.985)
    assert math.isnan(boundary_limit([]))
    with pytest.raises(ValueError, match="headroom"):
        boundary_limit([1.0], headroom=1.0)


@pytest.mark.slow
def test_every_run_is_a_fresh_process_and_cases_interleave(tmp_path: Path) -> None:
    a = _case("a", tmp_path / "a", [1.0, 2.0, 3.0, 4.0])
    b = _case("b", tmp_path / "b", [5.0, 6.0, 7.0, 8.0])
    seen: list[tuple[str, int, int]] = []
    runs = probe_runs([a, b], 4, on_run=lambda r, done, total: seen.append(
        (r.case, done, total)))
    assert [r.case for r in runs] == ["a", "b"] * 4
    assert seen == [(r.case, i, 8) for i, r in enumerate(runs, start=1)]
    assert [r.index for r in runs] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [r.p95_ms for r in runs if r.case == "a"] == [1.0, 2.0, 3.0, 4.0]
    # the evaluator's child processes: all distinct, none of them this process
    pids = [r.pid for r in runs]
    assert None not in pids and len(set(pids)) == 8 and os.getpid() not in pids
    # what the function itself saw: a new interpreter every time (first call, new pid)
    records = _records(tmp_path / "a") + _records(tmp_path / "b")
    assert len(records) == 8
    assert [r["calls"] for r in records] == [1] * 8
    assert len({r["pid"] for r in records}) == 8 and os.getpid() not in {
        r["pid"] for r in records}
    for r in runs:
        assert r.error is None and r.seconds > 0
        assert r.load1_before >= 0 and r.load1_after >= 0 and r.foreign_cpu_s >= 0


def test_summary_statistics_against_the_boundary_and_the_margins(tmp_path: Path) -> None:
    values = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.4, 11.5, 13.0, 9.0]
    case = _case("c", tmp_path / "c", values, sleep_s=0.0)
    runs = probe_runs([case], len(values))
    s = summarize_case("c", runs)
    assert s["runs"] == 10 and s["failed"] == 0 and s["distinct_pids"] == 10
    assert s["p95"]["mean"] == pytest.approx(statistics.fmean(values))
    assert s["p95"]["std"] == pytest.approx(statistics.stdev(values))
    assert s["p95"]["cv"] == pytest.approx(statistics.stdev(values) / statistics.fmean(values))
    assert s["p95"]["median"] == 10.0 and s["p95"]["min"] == 9.0 and s["p95"]["max"] == 13.0
    assert s["p50"]["mean"] == pytest.approx(statistics.fmean(values) / 2)
    assert s["memory_mb"]["mean"] == pytest.approx(14.5)  # 10 + index, index 0..9
    # boundary limit 10 / 0.985 = 10.15: 10.4, 11.5 and 13.0 are over it
    assert s["limit_rule"] == "boundary" and s["limit_ms"] == pytest.approx(10 / 0.985)
    assert s["above_limit"] == 3 and s["flip_rate"] == pytest.approx(0.3)
    # margins: limits 10/0.95 = 10.53 (2 over), 10/0.9 = 11.1 (2 over), 10/0.75 = 13.3 (none)
    assert s["margins"] == {"0.05": pytest.approx(0.2), "0.1": pytest.approx(0.2),
                            "0.25": 0.0}
    absolute = summarize_case("c", runs, limit_ms=9.5)
    assert absolute["limit_rule"] == "absolute" and absolute["limit_ms"] == 9.5
    assert absolute["above_limit"] == 9 and absolute["flip_rate"] == pytest.approx(0.1)


def test_failed_runs_are_counted_not_measured(tmp_path: Path) -> None:
    bad = _case("bad", tmp_path / "bad", [1.0], crash=True)
    good = _case("good", tmp_path / "good", [5.0, 7.0])
    result = run_probe([bad, good], repeats=2, out_dir=tmp_path / "out", command="cmd")
    by_case = {s["case"]: s for s in result["cases"]}
    assert by_case["bad"]["runs"] == 0 and by_case["bad"]["failed"] == 2
    assert "always crashes" in by_case["bad"]["errors"][0]
    assert by_case["bad"]["flip_rate"] is None and by_case["bad"]["p95"]["mean"] is None
    assert by_case["good"]["runs"] == 2 and by_case["good"]["p95"]["mean"] == 6.0
    written = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert written["command"] == "cmd" and len(written["runs"]) == 4
    assert written["configs"]["good"]["values"] == [5.0, 7.0]
    md = (tmp_path / "out" / "probe.md").read_text()
    assert "| good | 2 | 6.0 ± 1.4 |" in md and "bad: 2 (" in md and "always crashes" in md


def test_contention_of_other_processes_is_recorded(tmp_path: Path) -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        (run,) = probe_runs([_case("busy", tmp_path / "busy", [1.0], sleep_s=0.8)], 1)
    finally:
        spinner.kill()
        spinner.wait()
    # the spinner alone keeps a core busy for most of the run, and it is not ours to count
    assert run.foreign_cpu_s > 0.1 * run.seconds and run.foreign_cores > 0.1


def test_probe_rejects_bad_arguments(tmp_path: Path) -> None:
    case = _case("x", tmp_path / "x", [1.0])
    with pytest.raises(ValueError, match="repeats"):
        probe_runs([case], 0)
    with pytest.raises(ValueError, match="unique"):
        probe_runs([case, case], 1)
    with pytest.raises(ValueError, match="limit_ms"):
        run_probe([case], 1, limit_ms=-1.0)


def test_default_cases_cover_the_brief() -> None:
    configs = [c.config for c in probe.default_cases()]
    assert {(c["backend"], c["precision"], c["threads"]) for c in configs} == {
        (b, p, t) for b in ("eager", "onnxruntime") for p in ("fp32", "int8") for t in (1, 2)}
    assert all(c["variant"] == "lite0" and 1 <= c["batch_size"] <= 4 for c in configs)
    assert {c.target for c in probe.default_cases()} == {
        "deploytune.workloads.efficientnet:evaluate"}


def test_cli_probe_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "default_cases", lambda: [
        _case("toy", tmp_path / "toy", [3.0, 4.0, 5.0])])
    out = tmp_path / "out"
    result = runner.invoke(app, ["bench", "probe", "--repeats", "3", "--limit", "4.5",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "probe.json").read_text())
    assert report["repeats"] == 3 and report["limit_ms"] == 4.5
    assert report["command"] == f"deploytune bench probe --repeats 3 --limit 4.5 --out {out}"
    (s,) = report["cases"]
    assert s["above_limit"] == 1 and s["flip_rate"] == pytest.approx(1 / 3)
    assert "[3/3] toy run 3: p95 5.0 ms" in result.output
    assert "bench probe --repeats 3" in (out / "probe.md").read_text()


def test_cli_probe_option_checks(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    stray = runner.invoke(app, ["bench", "--limit", "20", "--out", out])
    assert stray.exit_code == 2 and "--limit" in stray.output  # a probe option
    resumed = runner.invoke(app, ["bench", "probe", "--resume", "--out", out])
    assert resumed.exit_code == 2 and "--resume" in resumed.output
    assert not (tmp_path / "out").exists()
