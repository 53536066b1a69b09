"""The importance rankings drawn as three horizontal bar panels (objective, crash,
infeasibility) into a PNG. matplotlib is imported only when drawing."""

from __future__ import annotations

from pathlib import Path

from deploytune.analysis.importance_report import ImportanceReport

__all__ = ["write_importance_figure"]


def write_importance_figure(report: ImportanceReport, path: Path) -> Path:
    """Draw the three rankings as horizontal bar panels into the PNG ``path``.

    A panel without a ranking shows why. The folder is created if needed; matplotlib is drawn
    through its Agg canvas, leaving the process's backend alone. Names are drawn as they are
    (a ``$`` in a parameter or metric name never starts mathtext).

    Returns:
        ``path``.
    """
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False}):
        return _draw_importance(report, path)


def _draw_importance(report: ImportanceReport, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deploytune.analysis.report import mpl_text

    rows = max(len(report.params), 3)
    fig = Figure(figsize=(13.0, 1.2 + 0.35 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    colors = ["#2ca02c", "#d62728", "#ff7f0e"]
    titles = [f"objective: {mpl_text(report.objective_metric)}\n(feasible trials)",
              "crash\n(crashed vs not)", "infeasibility\n(violated vs feasible)"]
    axes = fig.subplots(1, 3)
    for ax, ranking, color, title in zip(axes, report.rankings, colors, titles, strict=True):
        ax.set_title(f"{title}, {ranking.counts_text}", fontsize="medium")
        if not ranking.available:
            ax.text(0.5, 0.5, mpl_text("\n".join(_wrap(f"no ranking: {ranking.note}", 34))),
                    transform=ax.transAxes, ha="center", va="center", color="#555555")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        names = list(ranking.importances)[::-1]
        shares = [ranking.importances[n] for n in names]
        ax.barh(range(len(names)), shares, color=color)
        ax.set_yticks(range(len(names)), labels=[mpl_text(n) for n in names])
        ax.set_xlim(0, max(shares) * 1.25)
        ax.set_xlabel("share of importance")
        for y, share in enumerate(shares):
            ax.text(share, y, f" {share:.0%}", va="center", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
