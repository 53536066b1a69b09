"""DeployBench figures (PNG, matplotlib's Agg backend: no display needed).

Per problem:

* ``{problem}_regret.png``: normalised regret of the best feasible value so far against the
  trial index, one line per sampler (mean over seeds) with a ±1 std band; the regret is 1.0
  before a run's first feasible trial.
* ``{problem}_waste.png``: per sampler, the mean fraction of trials that crashed, were
  infeasible or were aborted, as stacked bars.

Across problems, with several budgets (:func:`overview_figure`, ``overview.png``): per sampler,
the mean over problems of the mean normalised regret, and of the mean wasted simulated seconds
relative to the problem's best sampler, against the budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after matplotlib.use()
import numpy as np
from matplotlib.ticker import MaxNLocator

from deploybench.runs import safe_name

__all__ = ["make_figures", "overview_figure", "regret_figure", "waste_figure"]

_WASTE_PARTS = (("crashed", "#d62728"), ("infeasible", "#ff7f0e"), ("aborted", "#7f7f7f"))


def _runs_of(runs: Sequence[Mapping[str, Any]], problem: str,
             sampler: str) -> list[Mapping[str, Any]]:
    return [r for r in runs if r["problem"] == problem and r["sampler"] == sampler]


def _curves(runs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Regret curves as a (runs, trials) array; shorter runs are padded with their last value."""
    curves = [list(r["metrics"]["regret_curve"]) or [1.0] for r in runs]
    n = max(len(c) for c in curves)
    return np.array([c + [c[-1]] * (n - len(c)) for c in curves], dtype=float)


def regret_figure(runs: Sequence[Mapping[str, Any]], problem: str, samplers: Sequence[str],
                  path: str | Path) -> Path | None:
    """Draw the best-so-far regret curves of ``problem``.

    Args:
        runs: Run summaries (``problem``, ``sampler``, ``metrics.regret_curve``).
        problem: The problem to draw.
        samplers: Samplers, in legend order (those without runs are skipped).
        path: The PNG to write.

    Returns:
        ``path``, or ``None`` when no sampler has a run on ``problem``.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    for sampler in samplers:
        mine = _runs_of(runs, problem, sampler)
        if not mine:
            continue
        curves = _curves(mine)
        x = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        (line,) = ax.plot(x, mean, label=f"{sampler} (n={len(mine)})", linewidth=1.8)
        ax.fill_between(x, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1),
                        color=line.get_color(), alpha=0.12, linewidth=0)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_title(f"{problem}: best feasible so far (mean ± 1 std)")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("normalised regret (1 = nothing feasible / reference)")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def waste_figure(runs: Sequence[Mapping[str, Any]], problem: str, samplers: Sequence[str],
                 path: str | Path) -> Path | None:
    """Draw the stacked waste bars (crashed / infeasible / aborted fractions) of ``problem``.

    Args:
        runs: Run summaries (``problem``, ``sampler``, ``metrics.status_counts``,
            ``metrics.n_trials``).
        problem: The problem to draw.
        samplers: Samplers, in bar order (those without runs are skipped).
        path: The PNG to write.

    Returns:
        ``path``, or ``None`` when no sampler has a run on ``problem``.
    """
    names: list[str] = []
    fractions: dict[str, list[float]] = {part: [] for part, _ in _WASTE_PARTS}
    for sampler in samplers:
        mine = _runs_of(runs, problem, sampler)
        if not mine:
            continue
        names.append(sampler)
        for part, _ in _WASTE_PARTS:
            per_run = [r["metrics"]["status_counts"].get(part, 0) / r["metrics"]["n_trials"]
                       if r["metrics"]["n_trials"] else 0.0 for r in mine]
            fractions[part].append(float(np.mean(per_run)))
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2.0), 4.6))
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for part, color in _WASTE_PARTS:
        heights = np.array(fractions[part])
        ax.bar(x, heights, bottom=bottom, color=color, label=part, width=0.6)
        bottom += heights
    for xi, total in zip(x, bottom, strict=True):
        ax.text(float(xi), float(total) + 0.01, f"{100 * total:.0f}%", ha="center", va="bottom",
                fontsize="small")
    ax.set_xticks(x, names, rotation=20 if len(names) > 4 else 0)
    ax.set_xlim(-0.75, len(names) - 0.25)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction of trials (mean over seeds)")
    ax.set_title(f"{problem}: wasted trials")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3,
              frameon=False)
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def make_figures(runs: Sequence[Mapping[str, Any]], out_dir: str | Path,
                 problems: Sequence[str] | None = None,
                 samplers: Sequence[str] | None = None) -> list[Path]:
    """Draw every figure of a bench.

    Args:
        runs: Run summaries as produced by :func:`deploybench.runner.run_bench`.
        out_dir: Folder of the PNGs (created if needed).
        problems: Problems to draw (default: those in ``runs``, in order of appearance).
        samplers: Samplers to include (default: those in ``runs``, in order of appearance).

    Returns:
        The paths written.
    """
    problems = list(problems) if problems is not None else list(
        dict.fromkeys(r["problem"] for r in runs))
    samplers = list(samplers) if samplers is not None else list(
        dict.fromkeys(r["sampler"] for r in runs))
    out = Path(out_dir)
    written: list[Path] = []
    for p in problems:
        for draw, suffix in ((regret_figure, "regret"), (waste_figure, "waste")):
            path = draw(runs, p, samplers, out / f"{safe_name(p)}_{suffix}.png")
            if path is not None:
                written.append(path)
    return written


def overview_figure(runs: Sequence[Mapping[str, Any]], samplers: Sequence[str],
                    budgets: Sequence[int], path: str | Path) -> Path | None:
    """Two panels against the budget, one line per sampler: the mean over problems of the
    sampler's mean normalised regret, and the mean over problems of its mean wasted simulated
    seconds divided by the lowest such mean of any sampler on that (problem, budget) (1 = the
    least wasteful). Cells where a sampler has no runs are left out of its means.

    Args:
        runs: Run summaries with ``problem``, ``sampler``, ``budget`` and ``metrics``.
        samplers: Samplers to draw, in legend order.
        budgets: Budgets, the x axis.
        path: Where to write the PNG.

    Returns:
        ``path``, or ``None`` when there is nothing to draw.
    """
    cells: dict[tuple[str, int, str], list[Mapping[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["problem"], r["budget"], r["sampler"]), []).append(r["metrics"])
    problems = list(dict.fromkeys(r["problem"] for r in runs))
    if not problems or not budgets:
        return None
    regret: dict[str, list[float]] = {s: [] for s in samplers}
    seconds: dict[str, list[float]] = {s: [] for s in samplers}
    for b in budgets:
        per_sampler_r: dict[str, list[float]] = {s: [] for s in samplers}
        per_sampler_s: dict[str, list[float]] = {s: [] for s in samplers}
        for p in problems:
            means = {s: (float(np.mean([m["regret"] for m in ms])),
                         float(np.mean([m.get("wasted_seconds") or 0.0 for m in ms])))
                     for s in samplers if (ms := cells.get((p, b, s)))}
            if not means:
                continue
            floor = max(min(v[1] for v in means.values()), 1e-9)
            for s, (reg, sec) in means.items():
                per_sampler_r[s].append(reg)
                per_sampler_s[s].append(sec / floor)
        for s in samplers:
            regret[s].append(float(np.mean(per_sampler_r[s])) if per_sampler_r[s] else np.nan)
            seconds[s].append(float(np.mean(per_sampler_s[s])) if per_sampler_s[s] else np.nan)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s in samplers:
        ax1.plot(budgets, regret[s], marker="o", label=s)
        ax2.plot(budgets, seconds[s], marker="o", label=s)
    ax1.set(xlabel="budget (trials)", ylabel="mean normalised regret",
            title=f"Regret, mean over {len(problems)} problems")
    ax2.set(xlabel="budget (trials)", ylabel="wasted seconds / best sampler's",
            title="Wasted simulated seconds, relative")
    for ax in (ax1, ax2):
        ax.set_xticks(list(budgets))
        ax.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(fig, path)
