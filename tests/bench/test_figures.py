"""DeployBench's cross-problem overview figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image

from deploybench.figures import overview_figure


def _run(problem: str, sampler: str, budget: int, regret: float,
         wasted: float) -> dict[str, Any]:
    return {"problem": problem, "sampler": sampler, "budget": budget, "seed": 0,
            "metrics": {"regret": regret, "wasted_seconds": wasted}}


def test_overview_draws_every_budget_and_skips_nothing_to_draw(tmp_path: Path) -> None:
    runs = [_run(p, s, b, 0.5 / b + (0.1 if s == "b" else 0.0), 100.0 * (2 if s == "b" else 1))
            for p in ("p", "q") for s in ("a", "b") for b in (15, 25)]
    runs.append(_run("p", "c", 15, 0.9, 50.0))  # only one cell: its mean covers that one
    path = overview_figure(runs, ["a", "b", "c"], [15, 25], tmp_path / "o" / "overview.png")
    assert path == tmp_path / "o" / "overview.png"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 500
    assert overview_figure([], ["a"], [15], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
