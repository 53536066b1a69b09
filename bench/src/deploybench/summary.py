"""The summary of a DeployBench: aggregated rows per (problem, budget, sampler), the markdown
and terminal tables, and the scoreboard across cells (:mod:`deploybench.stats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench._markdown import markdown_table
from deploybench.metrics import Aggregate, RunMetrics, aggregate
from deploybench.stats import BenchStats, stats_markdown

if TYPE_CHECKING:

    from rich.console import Group



__all__ = ["BenchResult", "scoreboard_table", "summary_markdown", "summary_rows",
           "summary_table"]


# ------------------------------------------------------------------------------------ summary
@dataclass
class BenchResult:
    """What :func:`run_bench` produced.

    Attributes:
        out_dir: The output folder.
        rows: One aggregated row per (problem, sampler), or per (problem, budget, sampler)
            with several budgets (see :func:`summary_rows`).
        runs: One summary per successful run (``problem``, ``sampler``, ``seed``, ``budget``,
            ``wall_s``, ``path``, ``metrics``).
        failures: One record per failed run (``problem``, ``sampler``, ``seed``, ``budget``,
            ``error``).
        figures: Paths of the figures written.
        stats: The per-(problem, budget) comparisons and the scoreboard
            (:func:`deploybench.stats.bench_stats`).
        budgets: The budgets run.
    """

    out_dir: Path
    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    stats: BenchStats | None = None
    budgets: list[int] = field(default_factory=list)


def summary_rows(runs: Sequence[Mapping[str, Any]], problems: Sequence[str],
                 samplers: Sequence[str], failures: Sequence[Mapping[str, Any]] = (),
                 budgets: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Aggregate run summaries into one row per (problem, sampler), or per (problem, budget,
    sampler) when ``budgets`` is given.

    Args:
        runs: Run summaries, each with ``problem``, ``sampler`` and ``metrics`` (and
            ``budget`` when ``budgets`` is given).
        problems: Problems, in row order.
        samplers: Samplers, in row order.
        failures: Failed runs, counted per row as ``n_failed``.
        budgets: Budgets, in row order within a problem; ``None``: one row per (problem,
            sampler), whatever the runs' budgets, and no ``budget`` key.

    Returns:
        Dicts with ``problem``, (``budget``,) ``sampler``, ``n_failed`` and the fields of
        :meth:`Aggregate.to_dict`.
    """
    rows = []
    cells: list[tuple[str, int | None]] = [
        (p, b) for p in problems for b in (budgets if budgets is not None else [None])]
    for p, b in cells:
        def here(r: Mapping[str, Any], p: str = p, b: int | None = b) -> bool:
            return r["problem"] == p and (b is None or r.get("budget") == b)

        for s in samplers:
            ms = [RunMetrics.from_dict(r["metrics"]) for r in runs
                  if here(r) and r["sampler"] == s]
            agg: Aggregate = aggregate(ms)
            n_failed = sum(here(f) and f["sampler"] == s for f in failures)
            head: dict[str, Any] = {"problem": p} if b is None else {"problem": p, "budget": b}
            rows.append({**head, "sampler": s, "n_failed": n_failed, **agg.to_dict()})
    return rows


def _pm(mean: float | None, std: float | None, fmt: str = ".4g", std_fmt: str = ".3g",
        sep: str = " ± ") -> str:
    if mean is None:
        return "—"
    return f"{mean:{fmt}}{sep}{std or 0.0:{std_fmt}}"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else f"{x:{fmt}}"


_COLUMNS = ("problem", "sampler", "best value", "regret", "median regret", "waste %",
            "trials to 1st feasible", "wasted sim. s", "nothing feasible", "discovery", "failed")


def _cells(row: Mapping[str, Any], with_budget: bool = False) -> list[str]:
    waste = row["waste_mean"]
    return [
        row["problem"], *([str(row.get("budget", ""))] if with_budget else []), row["sampler"],
        _pm(row["best_value_mean"], row["best_value_std"]),
        _pm(row["regret_mean"], row["regret_std"], ".3f", ".3f"),
        _num(row["regret_median"], ".3f"),
        "—" if waste is None else f"{100 * waste:.0f}",
        _num(row["ttff_mean"], ".1f"),
        _num(row["wasted_seconds_mean"], ".0f"),
        f"{row['n_nothing_feasible']}/{row['n_runs']}",
        _num(row["discovery_mean"], ".2g"),
        str(row["n_failed"]),
    ]


def summary_markdown(rows: Sequence[Mapping[str, Any]],
                     failures: Sequence[Mapping[str, Any]] = (),
                     title: str = "DeployBench summary",
                     stats: BenchStats | None = None) -> str:
    """The summary as a markdown document: one table, then the failed runs if any, then the
    statistics if given.

    Args:
        rows: Rows from :func:`summary_rows` (with a ``budget`` key, the table gets a budget
            column).
        failures: Failed runs.
        title: The heading.
        stats: Per-cell comparisons and scoreboard (:func:`~deploybench.stats.bench_stats`),
            appended as sections.

    Returns:
        Markdown text.
    """
    with_budget = any("budget" in r for r in rows)
    columns = (*_COLUMNS[:1], "budget", *_COLUMNS[1:]) if with_budget else _COLUMNS
    lines = [f"# {title}", "",
             "Mean ± population std over seeds. Best value: over runs that found a feasible "
             "configuration. Regret: normalised (0 = optimum, 1 = reference or nothing "
             "feasible). Trials to 1st feasible: mean over runs that found one. Discovery: "
             "distinct family values evaluated.", "",
             *markdown_table(columns, (_cells(r, with_budget) for r in rows))]
    if failures:
        lines += ["", "## Failed runs", ""]
        for f in failures:
            last = str(f["error"]).strip().splitlines()[-1:] or [""]
            budget = f" / budget {f['budget']}" if with_budget and "budget" in f else ""
            lines.append(f"- {f['problem']}{budget} / {f['sampler']} / seed {f['seed']}: "
                         f"`{last[0]}`")
    if stats is not None and stats.cells:
        lines += ["", stats_markdown(stats).rstrip("\n")]
    return "\n".join(lines) + "\n"


def summary_table(rows: Sequence[Mapping[str, Any]],
                  title: str = "DeployBench summary") -> Group:
    """The summary for a terminal: one compact rich table per problem.

    Args:
        rows: Rows from :func:`summary_rows`.
        title: The heading.

    Returns:
        A :class:`rich.console.Group` of a heading and the tables.
    """
    from rich import box
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    heads = ("sampler", "best value", "regret", "med.", "waste", "TTFF", "wasted s",
             "none", "disc.", "fail")
    show_failed = any(r["n_failed"] for r in rows)
    parts: list[Any] = [f"[bold]{escape(title)}[/bold]: mean±std over seeds; regret 0 = "
                        f"optimum, 1 = reference or nothing feasible (med. = median); TTFF = "
                        f"trials to first feasible; wasted s = simulated seconds on non-feasible "
                        f"trials; none = runs without a feasible trial; disc. = family values "
                        f"evaluated; fail = failed runs"]
    for problem, budget in dict.fromkeys((r["problem"], r.get("budget")) for r in rows):
        name = problem if budget is None else f"{problem}, budget {budget}"
        table = Table(title=escape(name), title_justify="left", box=box.SIMPLE_HEAD,
                      padding=(0, 1), collapse_padding=True, pad_edge=False,
                      show_edge=False)
        for i, head in enumerate(heads if show_failed else heads[:-1]):
            table.add_column(head, justify="left" if i == 0 else "right", no_wrap=True)
        for r in rows:
            if (r["problem"], r.get("budget")) != (problem, budget):
                continue
            waste = r["waste_mean"]
            cells = [
                r["sampler"],
                _pm(r["best_value_mean"], r["best_value_std"], ".3g", ".2g", sep="±"),
                _pm(r["regret_mean"], r["regret_std"], ".2f", ".2f", sep="±"),
                _num(r["regret_median"], ".2f"),
                "—" if waste is None else f"{100 * waste:.0f}%",
                _num(r["ttff_mean"], ".1f"),
                _num(r["wasted_seconds_mean"], ".0f"),
                f"{r['n_nothing_feasible']}/{r['n_runs']}",
                _num(r["discovery_mean"], ".2g"),
                str(r["n_failed"]),
            ]
            table.add_row(*map(escape, cells if show_failed else cells[:-1]))
        parts.append(table)
    return Group(*parts)



def scoreboard_table(stats: BenchStats) -> Any:
    """The scoreboard of :func:`~deploybench.stats.bench_stats` as a rich table.

    Args:
        stats: The bench's statistics.

    Returns:
        A :class:`rich.table.Table`.
    """
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"scoreboard over {len(stats.cells)} (problem, budget) cells: won = "
                        f"lowest mean regret, worse = significantly worse than the best other "
                        f"(Wilcoxon p < {stats.alpha:g})", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False,
                  show_edge=False)
    for i, head in enumerate(("sampler", "won", "worse", "regret rank", "wasted-s rank",
                              "med. TTFF", "disc.")):
        table.add_column(head, justify="left" if i == 0 else "right", no_wrap=True)

    def num(x: float | None, fmt: str) -> str:
        return "—" if x is None else f"{x:{fmt}}"

    for sc in stats.scoreboard:
        table.add_row(escape(sc.sampler), f"{sc.cells_won}/{sc.n_cells}",
                      str(sc.cells_significantly_worse), num(sc.regret_rank_mean, ".2f"),
                      num(sc.wasted_seconds_rank_mean, ".2f"), num(sc.ttff_median, ".1f"),
                      num(sc.discovery_rate, ".2f"))
    return table
