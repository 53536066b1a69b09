"""The summary and markdown report of ``deploytune bench workers``
(:mod:`deploybench.workers_bench`).

Per worker count: the mean wall-clock seconds, the speed-up against the reference count
(normally 1 worker: its mean wall seconds over this count's, on the seeds both ran without a
failure, and the worst seed's paired ratio), the same for the study's span (first trial
started to last trial finished, without the workers' start-up), the mean normalised regret and
the paired Wilcoxon p-value against the reference over seeds
(:func:`deploybench.stats.wilcoxon_p`), and the counts that must be exact: runs with exactly
``budget`` evaluations, duplicate configurations, trials left ``RUNNING`` or ``WAITING``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from deploybench._markdown import markdown_table
from deploybench.stats import wilcoxon_p

__all__ = ["SPEEDUP_GOAL", "summarise", "workers_markdown"]

SPEEDUP_GOAL = 3.5
"""The issue's goal: 4 workers finish at least this many times faster than 1."""

_GOAL_WORKERS = 4
_ALPHA = 0.05
_VERDICTS = {True: "met", False: "**missed**", None: "**inconclusive**"}


def _mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _ok(run: Mapping[str, Any]) -> bool:
    return not run.get("failed") and "regret" in run


def _by_seed(runs: Sequence[Mapping[str, Any]], workers: int) -> dict[int, Mapping[str, Any]]:
    return {r["seed"]: r for r in runs if r["workers"] == workers and _ok(r)}


def _paired(reference: Mapping[int, Mapping[str, Any]], mine: Mapping[int, Mapping[str, Any]],
            key: str) -> tuple[list[float], list[float]]:
    seeds = sorted(s for s in mine if s in reference
                   and reference[s].get(key) is not None and mine[s].get(key) is not None)
    return [float(reference[s][key]) for s in seeds], [float(mine[s][key]) for s in seeds]


def _speedup(reference: Sequence[float], mine: Sequence[float]) -> tuple[float | None,
                                                                      float | None]:
    """(mean reference seconds / mean seconds, the smallest per-seed ratio)."""
    if not mine or not min(mine) > 0:
        return None, None
    ratio = statistics.fmean(reference) / statistics.fmean(mine)
    return float(ratio), float(min(r / m for r, m in zip(reference, mine, strict=True)))


def _row(runs: Sequence[Mapping[str, Any]], workers: int, reference: int,
         budget: int) -> dict[str, Any]:
    mine = [r for r in runs if r["workers"] == workers]
    ok = _by_seed(runs, workers)
    ref = _by_seed(runs, reference)
    wall_ref, wall = _paired(ref, ok, "wall_s")
    span_ref, span = _paired(ref, ok, "span_s")
    regret_ref, regret = _paired(ref, ok, "regret")
    speedup, worst = _speedup(wall_ref, wall)
    span_speedup, _ = _speedup(span_ref, span)
    return {
        "workers": workers, "runs": len(mine), "failed": sum(not _ok(r) for r in mine),
        "wall_s_mean": _mean([r["wall_s"] for r in ok.values()]),
        "speedup": speedup, "speedup_worst_seed": worst,
        "span_s_mean": _mean([r["span_s"] for r in ok.values() if r["span_s"] is not None]),
        "span_speedup": span_speedup,
        "outside_span_s_mean": _mean([r["wall_s"] - r["span_s"] for r in ok.values()
                                      if r["span_s"] is not None]),
        "regret_mean": _mean([r["regret"] for r in ok.values()]),
        "regret_p": None if workers == reference else wilcoxon_p(regret, regret_ref),
        "regret_pairs": len(regret),
        "exact_budget": sum(r.get("evaluations") == budget for r in mine),
        "duplicates": sum(r.get("duplicates", 0) for r in mine),
        "left_over": sum(r.get("left_over", 0) for r in mine),
        "interrupted": sum(r.get("interrupted", 0) for r in mine),
        "sampler_s_per_ask": _mean([s for r in mine for s in r.get("sampler_s", [])]),
        "sampler_s_max": max((s for r in mine for s in r.get("sampler_s", [])), default=None),
        "ask_gap_s_mean": _mean([s for r in mine for s in r.get("ask_gap_s", [])]),
    }


def _goals(rows: Mapping[int, Mapping[str, Any]], reference: int, budget: int
           ) -> list[dict[str, Any]]:
    """The issue's goals for 4 workers against 1 (none when either count was not run)."""
    row = rows.get(_GOAL_WORKERS)
    if row is None or reference != 1:
        return []
    speedup, p = row["speedup"], row["regret_p"]
    worse = p is not None and p < _ALPHA and row["regret_mean"] > rows[reference]["regret_mean"]
    testable = p is not None and min(p, _min_p(row["regret_pairs"])) < _ALPHA
    clean = (row["exact_budget"] == row["runs"] and row["duplicates"] == 0
             and row["left_over"] == 0 and row["failed"] == 0)
    return [
        {"goal": f"{_GOAL_WORKERS} workers finish at least {SPEEDUP_GOAL:g}x faster than 1 "
                 f"(mean wall-clock)", "value": speedup,
         "met": speedup is not None and speedup >= SPEEDUP_GOAL},
        {"goal": f"regret at {budget} evaluations not significantly worse than 1 worker's "
                 f"(paired Wilcoxon over seeds: worse means p < {_ALPHA:g} and a higher mean; "
                 f"inconclusive when {row['regret_pairs']} seeds cannot reach p < {_ALPHA:g})",
         "value": p, "met": (not worse) if testable else None},
        {"goal": f"{_GOAL_WORKERS} workers, every seed: exactly {budget} evaluations, 0 "
                 f"duplicate configurations, 0 trials left RUNNING or WAITING",
         "value": f"{row['exact_budget']}/{row['runs']} exact, {row['duplicates']} "
                  f"duplicates, {row['left_over']} left over", "met": clean},
    ]


def summarise(runs: Sequence[Mapping[str, Any]], worker_counts: Sequence[int],
              budget: int) -> dict[str, Any]:
    """The per-worker-count summary of the runs and the issue's goals.

    Args:
        runs: The runs (:func:`deploybench.workers_bench.run_study`'s).
        worker_counts: The worker counts, the first being the reference.
        budget: The runs' budget.

    Returns:
        ``reference`` (the reference worker count), ``rows`` (one per worker count) and
        ``goals`` (each with ``goal``, ``value`` and ``met``).
    """
    reference = worker_counts[0]
    rows = {n: _row(runs, n, reference, budget) for n in worker_counts}
    return {"reference": reference, "rows": list(rows.values()),
            "goals": _goals(rows, reference, budget)}


def _num(value: float | None, digits: int, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def _summary_table(summary: Mapping[str, Any]) -> list[str]:
    head = ["workers", "wall s", f"speed-up vs {summary['reference']} (worst seed)",
            "study span s (speed-up)", "outside span s", "regret", "p vs 1", "exact budget",
            "duplicates", "left RUNNING/WAITING", "interrupted", "sampler s/ask (max)",
            "ask wait s"]
    rows = [[str(r["workers"]), _num(r["wall_s_mean"], 1),
             f"{_num(r['speedup'], 2, 'x')} ({_num(r['speedup_worst_seed'], 2, 'x')})",
             f"{_num(r['span_s_mean'], 1)} ({_num(r['span_speedup'], 2, 'x')})",
             _num(r["outside_span_s_mean"], 1),
             _num(r["regret_mean"], 3), _num(r["regret_p"], 3),
             f"{r['exact_budget']}/{r['runs']}", str(r["duplicates"]), str(r["left_over"]),
             str(r["interrupted"]),
             f"{_num(r['sampler_s_per_ask'], 3)} ({_num(r['sampler_s_max'], 2)})",
             _num(r["ask_gap_s_mean"], 3)] for r in summary["rows"]]
    return markdown_table(head, rows)


def _runs_table(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    head = ["seed", "workers", "wall s", "span s", "evaluations", "duplicates", "left over",
            "regret", "evaluations per worker", "load before"]
    rows = [[str(r["seed"]), str(r["workers"]), _num(r["wall_s"], 1),
             _num(r.get("span_s"), 1), str(r.get("evaluations", "–")),
             str(r.get("duplicates", "–")), str(r.get("left_over", "–")),
             _num(r.get("regret"), 3),
             "+".join(map(str, r.get("trials_per_worker", []))) or "–",
             _num(r.get("load1_before"), 2)]
            for r in sorted(runs, key=lambda r: (r["workers"], r["seed"]))]
    return markdown_table(head, rows)


def _min_p(pairs: int) -> float:
    """The smallest two-sided p an exact signed-rank test gives with ``pairs`` pairs."""
    return min(1.0, 2.0 / 2 ** pairs) if pairs else 1.0


def workers_markdown(results: Mapping[str, Any]) -> str:
    """The report: settings, the per-worker-count table, the goals, notes and every run.

    Args:
        results: :func:`deploybench.workers_bench.run_workers_bench`'s results.

    Returns:
        Markdown text.
    """
    s, summary = results["settings"], results["summary"]
    storage = s["storage"] or "a fresh SQLite file per run"
    lines = ["# Workers on one study", "", f"Command: `{results['command']}`", "",
             f"Problem {s['problem']}, sampler {s['sampler']}, budget {s['budget']} "
             f"evaluations, each sleeping {s['sleep_s']:g} s; seeds 0..{s['seeds'] - 1}; "
             f"storage: {storage}; {results['cpus']} CPUs.", "",
             *_summary_table(summary), ""]
    failed = [r for r in results["runs"] if r.get("failed")]
    if failed:
        lines += [f"**{len(failed)} run(s) failed**: "
                  + ", ".join(f"{r['workers']} workers seed {r['seed']}" for r in failed)
                  + " (their log tails are in workers.json).", ""]
    if summary["goals"]:
        lines += ["Goals:", ""]
        lines += [f"- {_VERDICTS[g['met']]}: {g['goal']}: "
                  f"{g['value'] if isinstance(g['value'], str) else _num(g['value'], 3)}"
                  for g in summary["goals"]]
        lines.append("")
    pairs = max((r["regret_pairs"] for r in summary["rows"]), default=0)
    lines += [
        "Wall s: the first worker process started to the last one exited (start-up, imports "
        "and the study's creation included); study span: the first trial started to the last "
        "one finished; outside span: wall less span. Speed-up: the reference's mean over "
        "this count's, on the seeds both ran; worst seed: the smallest paired ratio. Regret: "
        "normalised regret of the best feasible value among the first evaluations (by trial "
        "number), 0 = optimum. Sampler s/ask: seconds inside the sampler per trial (mean, and "
        "the longest); ask wait s: from a worker's trial being recorded to its next "
        "evaluation starting (waiting for the study lock, reading the study, asking).",
        "",
        f"With {pairs} paired seeds the smallest two-sided p an exact Wilcoxon signed-rank "
        f"test can give is {_min_p(pairs):.4f}: a p above {_ALPHA:g} is weak evidence of no "
        f"difference when that floor is near it (the test needs 6 seeds or more to reach "
        f"p < {_ALPHA:g}).", "",
        "Every run:", "", *_runs_table(results["runs"])]
    return "\n".join(lines)
