"""The report of ``deploytune bench fidelity`` (:mod:`deploybench.fidelity_bench`): mean regret
per (problem, method) at every time budget, the lowest per column, what the rungs saved, the
goals' paired tests, and regret-against-seconds curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploybench._markdown import markdown_table
from deploybench.fidelity_bench import FRACTIONS, regret_at
from deploybench.runs import resolve_problem
from deploybench.stats import wilcoxon_p

__all__ = ["fidelity_figure", "fidelity_markdown", "summarise"]

_CURVE_POINTS = 40
_PANELS = 4


def _regret_fn(problem: str) -> tuple[Any, bool]:
    p = resolve_problem(problem)
    return p.regret, p.objective.direction == "maximize"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per problem: per method its mean regret at each budget fraction (and per seed), its
    trials, the share stopped at a rung; per ``cabo-rungs`` and ``cabo-estimate`` variant the
    goal's paired test (at half the seconds against ``cabo`` at all of them); the lowest
    method per budget."""
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
                "crash_s_max": max((row["cost_s"] for row in rows
                                    if row["status"] == "crashed"), default=None),
                "wall_s": _mean([r["wall_s"] for r in runs]),
            }
        lowest = {}
        for f in FRACTIONS:
            means = {m: v["regret"][str(f)] for m, v in methods.items()
                     if v["regret"][str(f)] is not None}
            best = min(means.values()) if means else None
            lowest[str(f)] = [m for m, v in means.items()
                              if best is not None and v <= best + 1e-12]
        goals = {m: _goal(methods["cabo"]["per_seed"]["1.0"], methods[m]["per_seed"]["0.5"])
                 for m in methods if _judged(m) and "cabo" in methods}
        out["problems"][problem] = {"cap_s": cap, "methods": methods, "lowest": lowest,
                                    "goals": goals}
    out["pooled"] = _pooled(out["problems"])
    return out


def _judged(method: str) -> bool:
    """Whether the goal judges ``method``: a variant of cabo with rungs."""
    return method.startswith(("cabo-rungs", "cabo-estimate"))


def _goal(full: Sequence[float], half: Sequence[float]) -> dict[str, Any]:
    """The goal's paired test: regret at half the seconds (``half``) against single-fidelity
    cabo's at all of them (``full``), pair by pair."""
    return {"cabo_full": _mean(full), "rungs_half": _mean(half), "p": wilcoxon_p(half, full),
            "pairs": len(full),
            "not_worse_in_mean": (_mean(half) or 0) <= (_mean(full) or 0) + 1e-12}


def _goal_line(label: str, g: Mapping[str, Any]) -> str:
    verdict = ("met" if g["not_worse_in_mean"] else
               ("not significantly worse" if (g["p"] or 1) >= 0.05 else "**missed**"))
    return (f"{label} at 0.5 x cap against cabo at the cap, {g['pairs']} pairs: "
            f"{_num(g['rungs_half'])} against {_num(g['cabo_full'])}, Wilcoxon p = "
            f"{_num(g['p'])}: {verdict}.")


def _pooled(problems: Mapping[str, Any]) -> dict[str, Any]:
    """Over every (problem, seed): per method the mean regret at each budget fraction, and per
    ``cabo-rungs`` or ``cabo-estimate`` variant the goal's paired test."""
    cells = list(problems.values())
    names = [m for m in cells[0]["methods"] if all(m in c["methods"] for c in cells)] \
        if cells else []
    regret = {m: {str(f): _mean([v for c in cells for v in c["methods"][m]["per_seed"][str(f)]])
                  for f in FRACTIONS} for m in names}
    goals = {m: _goal([v for c in cells for v in c["methods"]["cabo"]["per_seed"]["1.0"]],
                      [v for c in cells for v in c["methods"][m]["per_seed"]["0.5"]])
             for m in names if _judged(m) and "cabo" in names}
    return {"problems": len(cells), "regret": regret, "goals": goals}


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
                "stopped at a rung", "longest crash s", "wall s"]
        rows = []
        for m, v in cell["methods"].items():
            rows.append([f"`{m}`", *[
                (f"**{_num(v['regret'][str(f)])}**" if m in cell["lowest"][str(f)]
                 else _num(v["regret"][str(f)])) for f in FRACTIONS],
                _num(v["trials"], 1), f"{100 * v['stopped_at_rung']:.0f} %",
                _num(v["crash_s_max"], 1), _num(v["wall_s"], 1)])
        lines += [*markdown_table(head, rows), ""]
        for m, g in cell["goals"].items():
            lines += [f"Goal: {_goal_line(m, g)}", ""]
    pooled = results["summary"]["pooled"]
    if pooled["problems"] > 1:
        lines += [f"**All {pooled['problems']} problems pooled** (mean over every problem and "
                  f"seed)", ""]
        best = {str(f): min(v[str(f)] for v in pooled["regret"].values())
                for f in FRACTIONS} if pooled["regret"] else {}
        rows = [[f"`{m}`", *[(f"**{_num(v[str(f)])}**" if v[str(f)] <= best[str(f)] + 1e-12
                              else _num(v[str(f)])) for f in FRACTIONS]]
                for m, v in pooled["regret"].items()]
        lines += [*markdown_table(["method", *[f"regret at {f:g} x cap" for f in FRACTIONS]],
                                  rows), ""]
        for m, g in pooled["goals"].items():
            lines += [f"Goal pooled: {_goal_line(m, g)}", ""]
    return "\n".join(lines).rstrip()


def fidelity_figure(results: Mapping[str, Any], path: Path) -> None:
    """Mean regret against simulated seconds (as a fraction of the problem's cap): a panel per
    problem (the first :data:`_PANELS`) and, with several problems, one pooled over all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(results["caps"])
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    fractions = [(i + 1) / _CURVE_POINTS for i in range(_CURVE_POINTS)]

    def curve(names: Sequence[str], method: str) -> list[float | None]:
        runs = [(r, *_regret_fn(r["problem"]), results["caps"][r["problem"]])
                for r in results["runs"] if r["problem"] in names and r["method"] == method]
        return [_mean([regret_at(r, f * cap, fn, mx) for r, fn, mx, cap in runs])
                for f in fractions]

    panels: list[tuple[str, list[str]]] = [(p, [p]) for p in problems[:_PANELS]]
    if len(problems) > 1:
        panels.append((f"pooled over {len(problems)} problems", problems))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
    for ax, (title, names) in zip(axes[0], panels, strict=True):
        ran = {(r["problem"], r["method"]) for r in results["runs"]}
        for m in methods:  # a method pooled only where it ran on every problem
            if all((p, m) in ran for p in names):
                ax.plot(fractions, curve(names, m), label=m)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("simulated seconds / cap")
        ax.set_ylabel("mean regret")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
