"""Per-(problem, budget) sampler statistics: Wilcoxon tests, lowest samplers, scoreboard."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from deploybench.metrics import RunMetrics
from deploybench.stats import (
    bench_stats,
    cell_stats,
    discovery_fraction,
    lowest_samplers,
    matrix_markdown,
    ratio,
    stats_markdown,
    wilcoxon_p,
)


def _metrics(regret: float, wasted: int = 2, n: int = 10, wasted_s: float = 100.0,
             ttff: int | None = 1, discovered: bool | None = True) -> RunMetrics:
    """A run's metrics with just the numbers the statistics read."""
    families_discoverable = {} if discovered is None else {"model": ["a", "b"]}
    evaluated = {"model": ["a", "b"] if discovered else ["a"]}
    return RunMetrics(
        n_trials=n, best_value=None if regret >= 1.0 else 1.0 - regret, regret=regret,
        best_so_far=[], regret_curve=[], status_counts={"feasible": n - wasted,
                                                        "crashed": wasted},
        crash_counts={}, waste=wasted / n, trials_to_first_feasible=ttff,
        wasted_seconds=wasted_s, total_seconds=wasted_s + 60.0 * (n - wasted),
        families_evaluated=evaluated, families_discoverable=families_discoverable)


def _run(sampler: str, seed: int, regret: float, problem: str = "p", budget: int = 10,
         **kw: Any) -> dict[str, Any]:
    return {"problem": problem, "sampler": sampler, "seed": seed, "budget": budget,
            "metrics": _metrics(regret, n=budget, **kw).to_dict()}


# --------------------------------------------------------------------------------- wilcoxon
def test_clearly_worse_sampler_is_significant_with_20_seeds() -> None:
    rng = np.random.default_rng(0)
    good = rng.uniform(0.0, 0.3, 20)
    bad = good + rng.uniform(0.1, 0.4, 20)  # worse on every seed
    p = wilcoxon_p(list(bad), list(good))
    assert p is not None and p < 0.05
    assert wilcoxon_p(list(good), list(bad)) == pytest.approx(p)  # two-sided


def test_identical_regrets_give_p_one() -> None:
    xs = [0.1, 0.5, 0.0, 1.0, 0.3]
    assert wilcoxon_p(xs, list(xs)) == 1.0
    assert wilcoxon_p([0.1 + 1e-15], [0.1]) == 1.0  # floating-point noise is a tie


def test_ties_and_zero_differences_are_handled() -> None:
    # ten equal seeds (zero differences) and ten seeds with the same positive difference
    x = [0.1] * 10 + [0.5] * 10
    y = [0.1] * 10 + [0.3] * 10
    p = wilcoxon_p(x, y)
    assert p is not None and math.isfinite(p) and 0.0 < p <= 1.0
    # the zeros are split between the signs: less evidence than without them
    p_no_zeros = wilcoxon_p(x[10:], y[10:])
    assert p_no_zeros is not None and p_no_zeros < p
    # one non-zero difference among ties: a valid, unremarkable p
    single = wilcoxon_p([0.2, 0.2, 0.2], [0.2, 0.2, 0.1])
    assert single is not None and 0.0 < single <= 1.0


def test_wilcoxon_edge_cases() -> None:
    assert wilcoxon_p([], []) is None
    with pytest.raises(ValueError, match="paired"):
        wilcoxon_p([0.1, 0.2], [0.1])


# --------------------------------------------------------------------------- building blocks
def test_lowest_samplers_with_ties() -> None:
    assert lowest_samplers({"a": 0.3, "b": 0.1, "c": 0.2}) == ["b"]
    assert lowest_samplers({"a": 0.1, "b": 0.3, "c": 0.1}) == ["a", "c"]
    assert lowest_samplers({"a": 0.1 + 1e-15, "b": 0.1}) == ["a", "b"]
    assert lowest_samplers({"a": None, "b": 0.5}) == ["b"]
    assert lowest_samplers({"a": None}) == []


def test_ratio() -> None:
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(3.0, 0.0) is None
    assert ratio(None, 1.0) is None


def test_discovery_fraction() -> None:
    runs = [_metrics(0.1, discovered=True), _metrics(0.1, discovered=False),
            _metrics(0.1, discovered=True), _metrics(0.1, discovered=True)]
    assert discovery_fraction(runs) == pytest.approx(0.75)
    assert discovery_fraction([_metrics(0.1, discovered=None)]) is None
    assert discovery_fraction([]) is None


# ---------------------------------------------------------------------------------- one cell
def _cell_runs(n_seeds: int = 20) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    good = rng.uniform(0.0, 0.3, n_seeds)
    runs = []
    for seed in range(n_seeds):
        runs.append(_run("good", seed, float(good[seed]), wasted=2, wasted_s=100.0))
        runs.append(_run("twin", seed, float(good[seed]), wasted=4, wasted_s=300.0))
        runs.append(_run("bad", seed, float(good[seed]) + 0.3, wasted=8, wasted_s=200.0,
                         ttff=None if seed % 2 else 5, discovered=seed % 4 == 0))
    return runs


def test_cell_lowest_reference_and_significance() -> None:
    cell = cell_stats(_cell_runs(), "p", 10, ["good", "twin", "bad"])
    assert cell.lowest == ["good", "twin"]  # tied: both count as lowest
    good, twin, bad = (cell.get(s) for s in ("good", "twin", "bad"))
    assert good is not None and twin is not None and bad is not None
    assert good.lowest and twin.lowest and not bad.lowest
    # each is tested against the best *other* sampler
    assert (good.reference, twin.reference, bad.reference) == ("twin", "good", "good")
    assert good.p_value == 1.0 and twin.p_value == 1.0
    assert not good.significantly_worse and not good.significantly_better
    assert bad.p_value is not None and bad.p_value < 0.05 and bad.n_pairs == 20
    assert bad.significantly_worse and not bad.significantly_better
    assert bad.regrets == pytest.approx([r + 0.3 for r in good.regrets])
    # waste: ratios of mean wasted trials and seconds
    assert cell.waste_ratio["bad"]["good"] == pytest.approx(4.0)
    assert cell.seconds_ratio["bad"]["twin"] == pytest.approx(2 / 3)
    # median trials to first feasible: a run without a feasible one counts as budget + 1
    assert bad.aggregate.ttff_median == pytest.approx((5 + 11) / 2)
    assert bad.aggregate.discovery_rate == pytest.approx(5 / 20)
    assert cell.get("nobody") is None


def test_the_lowest_sampler_can_be_significantly_better() -> None:
    runs = [r for r in _cell_runs() if r["sampler"] != "twin"]
    cell = cell_stats(runs, "p", 10)
    good = cell.get("good")
    assert good is not None and good.reference == "bad"
    assert good.significantly_better and not good.significantly_worse


def test_pairs_by_seed_and_ignores_other_cells() -> None:
    runs = [_run("a", s, 0.1) for s in range(5)] + [_run("b", s, 0.4) for s in (1, 3, 7)]
    runs += [_run("a", 0, 0.9, budget=20), _run("a", 0, 0.9, problem="q")]
    cell = cell_stats(runs, "p", 10, ["a", "b"])
    a, b = cell.get("a"), cell.get("b")
    assert a is not None and b is not None
    assert a.seeds == [0, 1, 2, 3, 4] and b.seeds == [1, 3, 7]
    assert a.n_pairs == b.n_pairs == 2  # seeds 1 and 3
    assert a.aggregate.regret_mean == pytest.approx(0.1)


def test_a_lone_sampler_has_no_test() -> None:
    cell = cell_stats([_run("a", 0, 0.2)], "p", 10)
    only = cell.get("a")
    assert only is not None and only.lowest and only.reference is None
    assert only.p_value is None and not only.significantly_worse


# -------------------------------------------------------------------------------- scoreboard
def test_scoreboard_across_cells() -> None:
    runs = _cell_runs(10)  # cell (p, 10): good and twin tie, bad significantly worse
    runs += [_run(s, seed, reg, problem="q", budget=10, wasted=w, wasted_s=ws)
             for seed in range(10)
             for s, reg, w, ws in (("good", 0.5, 6, 600.0), ("twin", 0.2, 2, 100.0),
                                   ("bad", 0.3, 2, 50.0))]
    stats = bench_stats(runs, ["p", "q"], ["good", "twin", "bad"], [10])
    assert [(c.problem, c.budget) for c in stats.cells] == [("p", 10), ("q", 10)]
    good, twin, bad = (stats.score(s) for s in ("good", "twin", "bad"))
    assert good is not None and twin is not None and bad is not None
    assert (good.cells_won, twin.cells_won, bad.cells_won) == (1, 2, 0)
    assert twin.cells_won_share == 1.0 and good.cells_won_share == 0.5
    # in q every seed of good and bad is worse than twin's: both significantly worse there
    assert (good.cells_significantly_worse, twin.cells_significantly_worse,
            bad.cells_significantly_worse) == (1, 0, 2)
    q = stats.cell("q", 10)
    assert q is not None and q.lowest == ["twin"]
    q_twin = q.get("twin")
    assert q_twin is not None and q_twin.reference == "bad" and q_twin.significantly_better
    # regret ranks: p -> good 1.5, twin 1.5, bad 3; q -> twin 1, bad 2, good 3
    assert good.regret_rank_mean == pytest.approx((1.5 + 3) / 2)
    assert twin.regret_rank_mean == pytest.approx((1.5 + 1) / 2)
    # wasted seconds ranks: p -> good 1, bad 2, twin 3; q -> bad 1, twin 2, good 3
    assert good.wasted_seconds_rank_mean == pytest.approx(2.0)
    assert bad.wasted_seconds_rank_mean == pytest.approx(1.5)
    # ratio of means over both cells: good (2 + 6) / 2 vs twin (4 + 2) / 2 wasted trials
    assert good.waste_ratio["twin"] == pytest.approx(8 / 6)
    assert good.seconds_ratio["bad"] == pytest.approx((100 + 600) / (200 + 50))
    assert twin.ttff_median == 1.0
    d = stats.to_dict()
    assert len(d["cells"]) == 2 and d["scoreboard"][0]["sampler"] == "good"


def test_stats_markdown() -> None:
    stats = bench_stats(_cell_runs(10), samplers=["good", "twin", "bad"])
    md = stats_markdown(stats)
    assert "### p, budget 10" in md and "## Scoreboard" in md
    assert "| **good** |" in md and "| **twin** |" in md and "| bad |" in md
    assert "| yes |" in md  # bad is significantly worse
    assert "vs twin" in md  # the waste-ratio matrix


def test_matrices_mark_the_best_and_the_significantly_worse() -> None:
    runs = _cell_runs(10) + [
        {**r, "problem": "q"} for r in _cell_runs(10) if r["sampler"] != "twin"]
    stats = bench_stats(runs, samplers=["good", "twin", "bad"])
    regret = matrix_markdown(stats, "regret")
    assert regret[0] == "| problem | budget | good | twin | bad |"
    p_row = next(r for r in regret if r.startswith("| p |"))
    q_row = next(r for r in regret if r.startswith("| q |"))
    cells = [c.strip() for c in p_row.strip("|").split("|")]
    assert cells[2].startswith("**") and cells[3].startswith("**")  # good and twin tie
    assert cells[4].endswith("*") and not cells[4].startswith("**")  # bad: sig. worse
    assert "—" in q_row  # twin has no runs on q
    seconds = [c.strip() for c in next(r for r in matrix_markdown(stats, "wasted_seconds")
                                       if r.startswith("| p |")).strip("|").split("|")]
    assert seconds[2:] == ["**100**", "300", "200"]
    assert "| p | 10 | 1 | 1 |" in "\n".join(matrix_markdown(stats, "ttff"))
    with pytest.raises(ValueError, match="metric: unknown 'speed'"):
        matrix_markdown(stats, "speed")
    assert "## Regret by cell" in stats_markdown(stats)
