"""The ``deploytune`` command line (typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from deploytune.bench.overhead import sampler_overhead
from deploytune.bench.problem import Problem
from deploytune.cli import app

runner = CliRunner()


def cli_problem() -> Problem:
    """A cheap problem for the CLI tests (importable by spawned workers as ``test_cli``)."""

    def simulate(config: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
        if config["kind"] == "bad":
            raise MemoryError("simulated OOM")
        return {"y": config["x"] + float(rng.normal(0.0, 0.01)), "mem": 10.0 * config["x"]}

    return Problem.build(
        "cli-tiny", {"kind": {"type": "categorical", "choices": ["good", "bad"]},
                     "x": {"type": "float", "low": 0.0, "high": 1.0}},
        "y", "maximize", ["mem <= 6"], simulate, optimum=0.6, reference=0.2,
        families=("kind",), description="A tiny CLI test problem. Second sentence.")


PROBLEM = f"{__name__}:cli_problem"


def _bench(*args: str) -> Any:
    return runner.invoke(app, ["bench", "--no-progress", *args])


def test_bench_on_a_tiny_setup(tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = _bench("--problems", PROBLEM, "--samplers", "random", "--seeds", "2",
                    "--budget", "4", "--jobs", "2", "--out", str(out), "--no-figures")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.rglob("*.jsonl")) == ["seed_0.jsonl", "seed_1.jsonl"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["budget"] == 4
    assert summary["rows"][0]["n_runs"] == 2
    assert (out / "summary.md").exists()
    assert not (out / "figures").exists()
    assert "DeployBench summary" in result.output


def test_unknown_sampler_is_rejected_by_name(tmp_path: Path) -> None:
    result = _bench("--problems", PROBLEM, "--samplers", "random,no-such-sampler",
                    "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "no-such-sampler" in result.output and "--samplers" in result.output
    assert not list(tmp_path.iterdir())


def test_unknown_problem_is_rejected_by_name(tmp_path: Path) -> None:
    result = _bench("--problems", "no_such_module_xyz:factory", "--samplers", "random",
                    "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "no_such_module_xyz" in result.output and "--problems" in result.output


def test_unknown_registered_problem_is_rejected(tmp_path: Path) -> None:
    pytest.importorskip("deploytune.bench.registry")
    result = _bench("--problems", "crashy-branin,no-such-problem", "--samplers", "random",
                    "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "no-such-problem" in result.output


@pytest.mark.parametrize(("option", "value"), [("--seeds", "0"), ("--budget", "0"),
                                               ("--jobs", "0")])
def test_non_positive_counts_are_rejected(tmp_path: Path, option: str, value: str) -> None:
    result = _bench("--problems", PROBLEM, "--samplers", "random", option, value,
                    "--out", str(tmp_path))
    assert result.exit_code == 2
    assert option in result.output


def test_overhead_via_cli(tmp_path: Path) -> None:
    result = _bench("--overhead", "--problems", PROBLEM, "--samplers", "random",
                    "--sizes", "3,6", "--repeats", "1", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "overhead.json").read_text())
    assert [(r["sampler"], r["size"]) for r in data["rows"]] == [("random", 3), ("random", 6)]
    assert all(r["median_ms"] > 0 for r in data["rows"])
    assert "ms/ask @ 6 trials" in (tmp_path / "overhead.md").read_text()


def test_overhead_bad_sizes(tmp_path: Path) -> None:
    result = _bench("--overhead", "--problems", PROBLEM, "--samplers", "random",
                    "--sizes", "3,x", "--out", str(tmp_path))
    assert result.exit_code == 2 and "--sizes" in result.output


def test_sampler_overhead_returns_numbers() -> None:
    rows = sampler_overhead(["random", "no-such-sampler"], sizes=[0, 5, 10],
                            problem=cli_problem(), repeats=2)
    ok = [r for r in rows if r["sampler"] == "random"]
    assert [r["size"] for r in ok] == [0, 5, 10]
    for r in ok:
        assert r["error"] is None
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"]
    bad = [r for r in rows if r["sampler"] == "no-such-sampler"]
    assert len(bad) == 3 and all(r["median_ms"] is None and r["error"] for r in bad)


def test_samplers_command_lists_names() -> None:
    result = runner.invoke(app, ["samplers"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert "random" in names and "default" in names


def test_problems_command() -> None:
    pytest.importorskip("deploytune.bench.registry")
    result = runner.invoke(app, ["problems"])
    assert result.exit_code == 0
    assert "crashy-branin" in result.output


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("bench", "samplers", "problems"):
        assert cmd in result.output
