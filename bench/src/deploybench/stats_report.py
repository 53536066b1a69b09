"""The bench statistics (:mod:`deploybench.stats`) as markdown: the per-cell matrices, one
table per (problem, budget) cell, the scoreboard and the waste-ratio matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploybench._markdown import markdown_table

if TYPE_CHECKING:
    from deploybench.stats import BenchStats, CellStats, SamplerScore

__all__ = ["matrix_markdown", "stats_markdown"]


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else f"{x:{fmt}}"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ttff(x: float | None, budget: int | None = None) -> str:
    if x is None:
        return "—"
    if budget is not None and x > budget:
        return f">{budget}"
    return f"{x:.1f}".removesuffix(".0")


_CELL_COLUMNS = ("sampler", "regret", "median regret", "waste % (trials)", "wasted sim. s",
                 "median TTFF", "discovery", "vs best other", "p", "sig. worse")


def _cell_rows(cell: CellStats) -> list[list[str]]:
    rows = []
    for e in cell.samplers:
        a = e.aggregate
        name = f"**{e.sampler}**" if e.lowest else e.sampler
        mean = "—" if a.regret_mean is None else f"{a.regret_mean:.3f} ± {a.regret_std or 0:.3f}"
        worse = "yes" if e.significantly_worse else ("better" if e.significantly_better else "")
        rows.append([
            name, mean, _num(a.regret_median, ".3f"),
            "—" if a.waste_mean is None else f"{100 * a.waste_mean:.0f}",
            _num(a.wasted_seconds_mean, ".0f"), _ttff(a.ttff_median, cell.budget),
            _num(a.discovery_rate, ".2f"), e.reference or "—",
            _p(e.p_value) + (f" (n={e.n_pairs})" if e.p_value is not None else ""), worse,
        ])
    return rows


_BOARD_COLUMNS = ("sampler", "cells", "cells won", "cells sig. worse", "mean regret rank",
                  "mean wasted-s rank", "median TTFF", "discovery")


def _won(score: SamplerScore) -> str:
    share = score.cells_won_share
    return f"{score.cells_won}" + ("" if share is None else f" ({100 * share:.0f} %)")


def _ratio_cell(score: SamplerScore, other: str) -> str:
    if other == score.sampler:
        return "—"
    t, s = score.waste_ratio.get(other), score.seconds_ratio.get(other)
    return f"{_num(t, '.2f')} / {_num(s, '.2f')}"


def matrix_markdown(stats: BenchStats, metric: str = "regret") -> list[str]:
    """One table row per (problem, budget) cell and one column per sampler: the cell's mean
    regret (``metric="regret"``; bold: lowest; ``*``: significantly worse and ``+``:
    significantly better than the cell's best other sampler), mean wasted simulated seconds
    (``"wasted_seconds"``; bold: lowest), median trials to first feasible (``"ttff"``) or
    discovery rate (``"discovery"``).

    Args:
        stats: From :func:`bench_stats`.
        metric: ``"regret"``, ``"wasted_seconds"``, ``"ttff"`` or ``"discovery"``.

    Returns:
        Markdown table lines.

    Raises:
        ValueError: for an unknown ``metric``.
    """
    getters = {
        "regret": lambda c: c.aggregate.regret_mean,
        "wasted_seconds": lambda c: c.aggregate.wasted_seconds_mean,
        "ttff": lambda c: c.aggregate.ttff_median,
        "discovery": lambda c: c.aggregate.discovery_rate,
    }
    if metric not in getters:
        raise ValueError(f"metric: unknown {metric!r}; choose one of {', '.join(getters)}")
    get = getters[metric]
    names = [s.sampler for s in stats.scoreboard]
    rows = []
    for cell in stats.cells:
        values = {c.sampler: get(c) for c in cell.samplers}
        known = [v for v in values.values() if v is not None]
        best = min(known) if known and metric in ("regret", "wasted_seconds") else None
        row = [cell.problem, str(cell.budget)]
        for n in names:
            c = cell.get(n)
            v = values.get(n)
            if c is None or v is None:
                row.append("—")
                continue
            text = (_ttff(v, cell.budget) if metric == "ttff"
                    else f"{v:.0f}" if metric == "wasted_seconds" else f"{v:.2f}" if
                    metric == "discovery" else f"{v:.3f}")
            if metric == "regret":
                text += "*" if c.significantly_worse else "+" if c.significantly_better else ""
            if best is not None and v <= best + 1e-12:
                text = f"**{text}**"
            row.append(text)
        rows.append(row)
    return markdown_table(("problem", "budget", *names), rows)


def stats_markdown(stats: BenchStats, level: int = 2) -> str:
    """The statistics as markdown: one table per (problem, budget) cell, then the scoreboard
    and the waste-ratio matrix.

    Args:
        stats: From :func:`bench_stats`.
        level: Heading level of the sections (``2`` -> ``##``).

    Returns:
        Markdown text.
    """
    h = "#" * level
    alpha = f"{stats.alpha:g}"
    lines = [
        f"{h} Regret by cell", "",
        "Mean normalised regret per (problem, budget) cell. Bold: lowest; `*`: significantly "
        f"worse, `+`: significantly better than the cell's best other sampler (paired "
        f"Wilcoxon, p < {alpha}; details per cell below).", "",
        *matrix_markdown(stats, "regret"), "",
        f"{h} Wasted simulated seconds by cell", "",
        "Mean seconds spent on trials that were not feasible (crashed, infeasible, aborted). "
        "Bold: lowest.", "",
        *matrix_markdown(stats, "wasted_seconds"), "",
        f"{h} Trials to the first feasible configuration by cell", "",
        "Median over runs (a run that found nothing counts as budget + 1; `>B`: most runs "
        "found nothing).", "",
        *matrix_markdown(stats, "ttff"), "",
        f"{h} Per (problem, budget) cell", "",
        "Bold: lowest mean regret (ties: every tied sampler). Regret: mean ± population std "
        "over seeds. Waste % = trials not feasible; wasted sim. s = mean simulated seconds on "
        "them. Median TTFF: median trials to first feasible over all runs (a run without one "
        "counts as budget + 1; `>B`: most runs found nothing). Discovery: fraction of runs "
        "that evaluated every family value that can be feasible. p: paired two-sided Wilcoxon "
        "signed-rank test (zero differences split) of the per-seed regrets against the best "
        f"other sampler (n = paired seeds); sig. worse: p < {alpha} and a higher mean regret "
        "(better: p < {alpha} and lower).".replace("{alpha}", alpha), ""]
    for cell in stats.cells:
        lines += [f"{h}# {cell.problem}, budget {cell.budget}", "",
                  *markdown_table(_CELL_COLUMNS, _cell_rows(cell)), ""]
    board = stats.scoreboard
    lines += [f"{h} Scoreboard", "",
              f"Over {len(stats.cells)} cells. Cells won: lowest mean regret (ties count for "
              f"every tied sampler). Cells sig. worse: significantly worse (p < {alpha}) than "
              "the cell's best other sampler. Ranks: 1 = best, ties averaged. Median TTFF and "
              "discovery: over all the sampler's runs.", "",
              *markdown_table(_BOARD_COLUMNS, ([
                  s.sampler, str(s.n_cells),
                  _won(s),
                  str(s.cells_significantly_worse), _num(s.regret_rank_mean, ".2f"),
                  _num(s.wasted_seconds_rank_mean, ".2f"), _ttff(s.ttff_median),
                  _num(s.discovery_rate, ".2f")] for s in board)), ""]
    if len(board) > 1:
        names = [s.sampler for s in board]
        lines += [f"{h} Waste relative to each other sampler", "",
                  "Row sampler's mean wasted trials / column sampler's, then the same for "
                  "wasted simulated seconds (ratios of means over the cells both ran; below 1 "
                  "= the row sampler wastes less).", "",
                  *markdown_table(("sampler", *(f"vs {n}" for n in names)),
                                  ([s.sampler, *(_ratio_cell(s, n) for n in names)]
                                   for s in board)), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
