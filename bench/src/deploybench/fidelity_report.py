"""The report of ``deploytune bench fidelity`` (:mod:`deploybench.fidelity_bench`): mean regret
per (problem, method) at every time budget, the lowest per column, what the rungs saved, the
goals' paired tests, and regret-against-seconds curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploybench._markdown import markdown_table
from deploybench.fidelity_bench import FRACTIONS, METHODS, regret_at
from deploybench.runs import resolve_problem
from deploybench.stats import wilcoxon_p

__all__ = ["fidelity_figure", "fidelity_markdown", "summarise"]

_CURVE_POINTS = 40


def _regret_fn(problem: str) -> tuple[Any, bool]:
    p = resolve_problem(problem)
    return p.regret, p.objective.direction == "maximize"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per problem: per method its mean regret at each budget fraction (and per seed), its
    trials, the share stopped at a rung; the goal's paired test (``cabo-rungs`` at half the
    seconds against ``cabo`` at all of them) and the lowest method per budget."""
    out: dict[str, Any] = {"problems": {}}
    for problem, cap in results["caps"].items():
        regret, maximize = _regret_fn(problem)
        methods: dict[str, Any] = {}
        for m in dict.fromkeys(r["method"] for r in results["runs"]):
            runs = sorted((r for r in results["runs"]
                           if r["problem"] == problem and r["method"] == m),
                          key=lambda r: r["seed"])
            if not runs:
                continue
            per_seed = {f: [regret_at(r, f * cap, regret, maximize) for r in runs]
                        for f in FRACTIONS}
            rows = [row for r in runs for row in r["rows"]]
            methods[m] = {
                "seeds": [r["seed"] for r in runs],
                "regret": {str(f): _mean(v) for f, v in per_seed.items()},
                "per_seed": {str(f): v for f, v in per_seed.items()},
                "trials": _mean([len(r["rows"]) for r in runs]),
                "stopped_at_rung": sum(bool(row["rungs"]) and row["status"] == "aborted"
                                       for row in rows) / max(1, len(rows)),
                "wall_s": _mean([r["wall_s"] for r in runs]),
            }
        lowest = {}
        for f in FRACTIONS:
            means = {m: v["regret"][str(f)] for m, v in methods.items()
                     if v["regret"][str(f)] is not None}
            best = min(means.values()) if means else None
            lowest[str(f)] = [m for m, v in means.items()
                              if best is not None and v <= best + 1e-12]
        goal = None
        if "cabo" in methods and "cabo-rungs" in methods:
            full = methods["cabo"]["per_seed"]["1.0"]
            half = methods["cabo-rungs"]["per_seed"]["0.5"]
            goal = {"cabo_full": _mean(full), "rungs_half": _mean(half),
                    "p": wilcoxon_p(half, full), "pairs": len(full),
                    "not_worse_in_mean": (_mean(half) or 0) <= (_mean(full) or 0) + 1e-12}
        out["problems"][problem] = {"cap_s": cap, "methods": methods, "lowest": lowest,
                                    "goal": goal}
    return out


def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def fidelity_markdown(results: Mapping[str, Any]) -> str:
    """The report: per problem a table of mean regret at each budget (the lowest in bold), the
    trials, the share stopped at a rung, and the goal's line."""
    s = results["settings"]
    lines = [f"`{results['command']}`", "",
             f"{s['seeds']} seeds; cap = the simulated seconds single-fidelity cabo spends on "
             f"{s['trials']} evaluations (mean over the seeds). Regret: normalised, of the best "
             f"measured feasible value among the trials finished within the budget.", ""]
    for problem, cell in results["summary"]["problems"].items():
        lines += [f"**{problem}** (cap {cell['cap_s']:.0f} s)", ""]
        head = ["method", *[f"regret at {f:g} x cap" for f in FRACTIONS], "trials",
                "stopped at a rung", "wall s"]
        rows = []
        for m, v in cell["methods"].items():
            rows.append([f"`{m}`", *[
                (f"**{_num(v['regret'][str(f)])}**" if m in cell["lowest"][str(f)]
                 else _num(v["regret"][str(f)])) for f in FRACTIONS],
                _num(v["trials"], 1), f"{100 * v['stopped_at_rung']:.0f} %",
                _num(v["wall_s"], 1)])
        lines += [*markdown_table(head, rows), ""]
        g = cell["goal"]
        if g is not None:
            verdict = ("met" if g["not_worse_in_mean"] else
                       ("not significantly worse" if (g["p"] or 1) >= 0.05 else "**missed**"))
            lines += [f"Goal (cabo-rungs at 0.5 x cap against cabo at the cap, {g['pairs']} "
                      f"paired seeds): {_num(g['rungs_half'])} against {_num(g['cabo_full'])}, "
                      f"Wilcoxon p = {_num(g['p'])}: {verdict}.", ""]
    return "\n".join(lines).rstrip()


def fidelity_figure(results: Mapping[str, Any], path: Path) -> None:
    """Mean regret against simulated seconds, one panel per problem, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(results["caps"])
    fig, axes = plt.subplots(1, len(problems), figsize=(5.5 * len(problems), 4), squeeze=False)
    for ax, problem in zip(axes[0], problems, strict=True):
        cap = results["caps"][problem]
        regret, maximize = _regret_fn(problem)
        xs = [cap * (i + 1) / _CURVE_POINTS for i in range(_CURVE_POINTS)]
        for m in METHODS:
            runs = [r for r in results["runs"] if r["problem"] == problem and r["method"] == m]
            if runs:
                ys = [_mean([regret_at(r, x, regret, maximize) for r in runs]) for x in xs]
                ax.plot(xs, ys, label=m)
        ax.set_title(problem)
        ax.set_xlabel("simulated seconds")
        ax.set_ylabel("mean regret")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
