"""The ``deploytune`` command line (typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from deploybench.overhead import sampler_overhead
from deploybench.problem import Problem
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


@pytest.mark.slow
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
    result = runner.invoke(app, ["bench", "overhead", "--problems", PROBLEM, "--samplers",
                                 "random", "--sizes", "3,6", "--repeats", "1", "--out",
                                 str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "overhead.json").read_text())
    assert [(r["sampler"], r["size"]) for r in data["rows"]] == [("random", 3), ("random", 6)]
    assert all(r["median_ms"] > 0 for r in data["rows"])
    assert "ms/ask @ 6 trials" in (tmp_path / "overhead.md").read_text()


def test_overhead_bad_sizes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "overhead", "--problems", PROBLEM, "--samplers",
                                 "random", "--sizes", "3,x", "--out", str(tmp_path)])
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


def _sampler_lines(*args: str) -> dict[str, str]:
    result = runner.invoke(app, ["samplers", *args])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    # aligned: every description starts in the same column
    starts = {len(line) - len(line.split(maxsplit=1)[1]) for line in lines}
    assert len(starts) == 1, lines
    return {line.split()[0]: line.split(maxsplit=1)[1] for line in lines}


def test_samplers_command_describes_each_sampler() -> None:
    lines = _sampler_lines()
    names = list(lines)
    assert names[0] == "cabo" and lines["cabo"].startswith("the default")
    assert lines["default"].startswith("= cabo")
    assert "random" in names and "ctpe" in names and "tba-tpe-paper" in names
    assert "PyTorch" in lines["gp"]
    assert all(text and text != "(no description)" for text in lines.values())
    # experimental samplers are not in the default list, and nothing is marked experimental
    assert "cabo-no-crash" not in names
    assert not any("experimental" in text for text in lines.values())
    hint = runner.invoke(app, ["samplers"]).stderr
    assert "--all" in hint


def test_samplers_all_lists_the_experimental_ones_marked() -> None:
    lines = _sampler_lines("--all")
    assert next(iter(lines)) == "cabo"
    assert lines["cabo-no-crash"].startswith("(experimental) ablation of cabo")
    assert lines["cabo-no-memory"].startswith("(experimental)")
    assert not lines["cabo"].startswith("(experimental)")
    assert set(_sampler_lines()) < set(lines)
    assert runner.invoke(app, ["samplers", "--all"]).stderr == ""


def test_samplers_command_prints_text_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from deploytune.samplers import available, catalogue

    # a registered name without a catalogue entry still shows; brackets are not markup
    monkeypatch.setattr(catalogue, "available", lambda: [*available(), "x[bold]y"])
    lines = _sampler_lines()
    assert lines["x[bold]y"] == "(no description)"
    assert list(lines)[-1] == "x[bold]y"


def test_bench_accepts_experimental_samplers() -> None:
    from deploybench.cli import _check_samplers

    assert _check_samplers("cabo,cabo-no-crash,cabo[coverage=false]") == [
        "cabo", "cabo-no-crash", "cabo[coverage=false]"]


@pytest.mark.slow
def test_problems_command() -> None:
    result = runner.invoke(app, ["problems"])
    assert result.exit_code == 0
    assert "crashy-branin" in result.output


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("bench", "samplers", "problems"):
        assert cmd in result.output
