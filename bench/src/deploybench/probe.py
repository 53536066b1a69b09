"""``deploytune bench probe``: how stochastic is feasibility near a latency limit on this CPU?

The second paper of the seed ("Hidden Device Heterogeneity") reports that dynamic INT8
quantization runs on the CPU and makes feasibility a coin flip near the limit: MobileNetV2 /
INT8 / batch 3 had a p95 of 19.70 ± 3.46 ms against a 20 ms limit and flipped between feasible
and infeasible in 39 % of its runs, and fixed safety margins did not help. This module measures
the same thing for the shipped real workloads on this machine.

Method:

* Every probed configuration (a :class:`ProbeCase`) is evaluated ``repeats`` times, each time
  in a **fresh process** by the project's
  :class:`~deploytune.evaluators.isolated.IsolatedEvaluator`, exactly as the tuner evaluates
  ``evaluator: python: deploytune.workloads.efficientnet:evaluate`` (same time limit and memory
  cap as the workload's recorded table). Nothing (warm caches of the allocator, thread pools,
  JIT state) carries over from one run to the next inside the measured process.
* Runs are **interleaved**: run 1 of every case, then run 2 of every case, ... so that a slow
  drift of the machine (another user's benchmark starting) hits every case alike instead of
  landing on whichever case happened to run at that time.
* Each run keeps its p95 and p50 latency (ms per batch) and peak memory (MB), the pid of the
  process that ran it, and the machine's **contention**: the 1-minute load average before and
  after, and ``foreign_cpu_s``, the CPU seconds the rest of the machine (not this process nor
  its evaluation) spent during the run, from ``/proc/stat``; divided by the run's wall time it
  is ``foreign_cores``, the mean number of cores other processes took. A run with
  ``foreign_cores`` above :data:`CONTENDED_CORES` is counted as *contended*. Nothing is
  filtered out: the statistics use every run that did not crash; contention is reported next
  to them.

Limits (what "flip" is measured against):

* The **flip rate** of a case against a limit is the fraction of its runs on the minority side
  of the limit: ``min(k, n - k) / n`` where ``k`` of the ``n`` runs have a p95 above the limit.
  0 means every run agrees on feasibility; 0.5 is a coin flip.
* By default each case gets its **own boundary limit**, placed so that the case's median p95
  sits :data:`PAPER_HEADROOM` (1.5 %) below it: ``limit = median / (1 - 0.015)``. That is the
  paper's worst case (19.70 ms against 20 ms) transposed to every configuration, so cases of
  very different speeds are compared at the same relative position. (A limit exactly at the
  median would give a flip rate near 0.5 for any noise level and measure nothing; the median
  rather than the mean is used so that one contended run does not move the limit.)
* ``limit_ms`` (``--limit``) replaces it with one absolute limit for every case.
* **Fixed safety margins**: for each margin ``m`` in :data:`MARGINS` the flip rate against
  ``median / (1 - m)`` is reported too: a tuner that keeps a margin ``m`` below the real limit
  picks configurations whose typical p95 is ``(1 - m) x limit``; the column says how often such
  a configuration still violates the real limit. The paper's 15 ms for a 20 ms limit is
  ``m = 0.25``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploybench._markdown import markdown_table

__all__ = [
    "CONTENDED_CORES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_REPEATS",
    "MARGINS",
    "PAPER_HEADROOM",
    "ProbeCase",
    "ProbeRun",
    "boundary_limit",
    "default_cases",
    "flip_rate",
    "probe_markdown",
    "probe_runs",
    "run_probe",
    "summarize_case",
]

DEFAULT_REPEATS = 10
"""Fresh-process runs per case by default."""

DEFAULT_BATCH_SIZE = 3
"""Batch size of the default cases (the paper's worst case ran batch 3)."""

PAPER_HEADROOM = 0.015
"""How far below its limit the median p95 of a case sits by default: the paper's worst case had
a mean p95 of 19.70 ms against a 20 ms limit, 1.5 % below."""

MARGINS: tuple[float, ...] = (0.05, 0.10, 0.25)
"""Fixed safety margins whose flip rates are reported (0.25: the paper's 15 ms for 20 ms)."""

CONTENDED_CORES = 0.25
"""A run during which other processes used more than this many cores on average is counted as
contended."""


@dataclass(frozen=True)
class ProbeCase:
    """One configuration to probe and how to evaluate it.

    Attributes:
        label: Short name for the tables, e.g. ``effnet lite0 eager int8 b3 t1``.
        target: ``module:function`` evaluated in a fresh process per run.
        config: The configuration passed to the function.
        timeout_s: Time limit of one run (a slower run is a failed run).
        memory_mb: Address-space cap of one run (``None``: none).
        env: Environment variables added for the child.
        sys_path: Directories put in front of the child's ``sys.path``.
    """

    label: str
    target: str
    config: Mapping[str, Any]
    timeout_s: float | None = None
    memory_mb: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    sys_path: tuple[str, ...] = ()


@dataclass
class ProbeRun:
    """The facts of one fresh-process run of a case.

    Attributes:
        case: The case's label.
        index: Which run of the case (0-based).
        pid: The pid of the run's child process, the isolated evaluator's process-group
            leader in whose process tree the function ran (``None`` if it did not start).
        p95_ms: p95 latency per batch (``None`` for a failed run); ``p50_ms`` likewise.
        memory_mb: Peak resident memory of the run's process (``None`` when not reported).
        seconds: Wall-clock seconds of the whole run (process start to exit).
        load1_before: 1-minute load average just before the run; ``load1_after`` just after.
        foreign_cpu_s: CPU seconds other processes used during the run (``/proc/stat`` busy
            time minus this process's and its children's).
        foreign_cores: ``foreign_cpu_s / seconds``.
        error: Why the run failed, ``None`` when it produced metrics.
    """

    case: str
    index: int
    pid: int | None
    p95_ms: float | None
    p50_ms: float | None
    memory_mb: float | None
    seconds: float
    load1_before: float
    load1_after: float
    foreign_cpu_s: float
    foreign_cores: float
    error: str | None = None


def default_cases(batch_size: int = DEFAULT_BATCH_SIZE) -> list[ProbeCase]:
    """EfficientNet-Lite0 in torch eager and ONNX Runtime, fp32 and int8 (dynamic quantization),
    with 1 and 2 threads, at ``batch_size``; evaluated like the tuner does (the ``effnet``
    workload's target, time limit and memory cap)."""
    from deploybench.real import get_workload

    workload = get_workload("effnet")
    cases = []
    for backend in ("eager", "onnxruntime"):
        for precision in ("fp32", "int8"):
            for threads in (1, 2):
                config = {"variant": "lite0", "backend": backend, "precision": precision,
                          "batch_size": batch_size, "threads": threads}
                cases.append(ProbeCase(
                    label=f"effnet lite0 {backend} {precision} b{batch_size} t{threads}",
                    target=workload.target, config=config, timeout_s=workload.timeout_s,
                    memory_mb=workload.memory_mb))
    return cases


def _number(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        return None
    return float(value)


def _run_once(case: ProbeCase, index: int) -> ProbeRun:
    """Evaluate ``case`` once in a fresh isolated process and record the machine's load."""
    from deploybench.recording import _busy_cpu_s, _own_cpu_s
    from deploytune.evaluators.base import Monitor
    from deploytune.evaluators.isolated import IsolatedEvaluator

    evaluator = IsolatedEvaluator(case.target, timeout_s=case.timeout_s,
                                  memory_mb=case.memory_mb, env=dict(case.env),
                                  sys_path=case.sys_path)
    load_before = os.getloadavg()[0]
    busy_before, own_before = _busy_cpu_s(), _own_cpu_s()
    started = time.perf_counter()
    try:
        evaluation = evaluator.evaluate(dict(case.config), Monitor())
    finally:
        evaluator.close()
    seconds = time.perf_counter() - started
    foreign = max(0.0, (_busy_cpu_s() - busy_before) - (_own_cpu_s() - own_before))
    metrics = evaluation.metrics
    p95 = _number(metrics, "p95_ms")
    error = evaluation.error or evaluation.aborted
    if error is None and p95 is None:
        error = "the run reported no finite p95_ms"
    pid = evaluation.info.get("pid")
    return ProbeRun(case=case.label, index=index, pid=pid if isinstance(pid, int) else None,
                    p95_ms=None if error else p95,
                    p50_ms=None if error else _number(metrics, "p50_ms"),
                    memory_mb=_number(metrics, "memory_mb"), seconds=seconds,
                    load1_before=load_before, load1_after=os.getloadavg()[0],
                    foreign_cpu_s=foreign, foreign_cores=foreign / seconds if seconds else 0.0,
                    error=error[-500:] if error else None)


def probe_runs(cases: Sequence[ProbeCase], repeats: int,
               on_run: Callable[[ProbeRun, int, int], None] | None = None) -> list[ProbeRun]:
    """Run every case ``repeats`` times, interleaved (round ``r`` runs every case once), each
    run in a fresh process.

    Args:
        cases: The cases.
        repeats: Runs per case.
        on_run: Called after every run with the run, its number (1-based) and the total.

    Returns:
        The runs in the order they ran.

    Raises:
        ValueError: For ``repeats < 1`` or no cases, or two cases with the same label.
    """
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1 (got {repeats!r})")
    if not cases:
        raise ValueError("no cases to probe")
    labels = [c.label for c in cases]
    if len(set(labels)) != len(labels):
        raise ValueError(f"case labels must be unique (got {labels})")
    runs: list[ProbeRun] = []
    total = repeats * len(cases)
    for index in range(repeats):
        for case in cases:
            run = _run_once(case, index)
            runs.append(run)
            if on_run is not None:
                on_run(run, len(runs), total)
    return runs


def flip_rate(values: Sequence[float], limit: float) -> float:
    """The fraction of ``values`` on the minority side of ``limit``: ``min(k, n - k) / n``
    where ``k`` values are above it (a value equal to the limit is feasible).

    Returns:
        0 when all values agree; 0.5 at most; NaN for no values.
    """
    if not values:
        return math.nan
    above = sum(1 for v in values if v > limit)
    return min(above, len(values) - above) / len(values)


def boundary_limit(values: Sequence[float], headroom: float = PAPER_HEADROOM) -> float:
    """The limit that puts the median of ``values`` ``headroom`` below it:
    ``median / (1 - headroom)`` (NaN for no values).

    Raises:
        ValueError: For a headroom outside ``[0, 1)``.
    """
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom: must be in [0, 1) (got {headroom!r})")
    if not values:
        return math.nan
    return statistics.median(values) / (1 - headroom)


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, "cv": None, "median": None, "min": None,
                "max": None}
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "cv": std / mean if mean else None,
            "median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize_case(label: str, runs: Sequence[ProbeRun],
                   limit_ms: float | None = None) -> dict[str, Any]:
    """Statistics of one case's runs.

    Args:
        label: The case's label (runs of other cases are ignored).
        runs: Runs (of any cases).
        limit_ms: An absolute limit; ``None``: the case's own :func:`boundary_limit`.

    Returns:
        ``case``, ``runs`` (that produced a p95), ``failed``, ``errors`` (up to 3 distinct
        messages of the failed runs), ``distinct_pids``, ``p95`` and ``p50`` and
        ``memory_mb`` (each ``mean``, ``std``, ``cv`` (std / mean, sample std), ``median``,
        ``min``, ``max``), ``limit_ms``, ``limit_rule`` (``boundary`` or ``absolute``),
        ``above_limit`` (runs over it), ``flip_rate``, ``margins`` (``{margin: flip rate against
        median / (1 - margin)}``), ``load1_mean``, ``foreign_cores_mean``,
        ``foreign_cores_max`` and ``contended`` (runs over :data:`CONTENDED_CORES`).
    """
    own = [r for r in runs if r.case == label]
    ok = [r for r in own if r.error is None and r.p95_ms is not None]
    p95 = [r.p95_ms for r in ok if r.p95_ms is not None]
    p50 = [r.p50_ms for r in ok if r.p50_ms is not None]
    memory = [r.memory_mb for r in ok if r.memory_mb is not None]
    limit = boundary_limit(p95) if limit_ms is None else float(limit_ms)
    median = statistics.median(p95) if p95 else math.nan
    return {
        "case": label,
        "runs": len(ok),
        "failed": len(own) - len(ok),
        "errors": sorted({r.error for r in own if r.error})[:3],
        "distinct_pids": len({r.pid for r in own if r.pid is not None}),
        "p95": _stats(p95),
        "p50": _stats(p50),
        "memory_mb": _stats(memory),
        "limit_ms": limit if p95 else None,
        "limit_rule": "boundary" if limit_ms is None else "absolute",
        "above_limit": sum(1 for v in p95 if v > limit),
        "flip_rate": flip_rate(p95, limit) if p95 else None,
        "margins": {f"{m:g}": (flip_rate(p95, median / (1 - m)) if p95 else None)
                    for m in MARGINS},
        "load1_mean": statistics.fmean(r.load1_before for r in own) if own else None,
        "foreign_cores_mean": statistics.fmean(r.foreign_cores for r in own) if own else None,
        "foreign_cores_max": max((r.foreign_cores for r in own), default=None),
        "contended": sum(1 for r in own if r.foreign_cores > CONTENDED_CORES),
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def probe_markdown(result: Mapping[str, Any]) -> str:
    """The report of :func:`run_probe`'s result as markdown: command, date, machine, method,
    the table (one row per case) and the failed runs."""
    rule = ("one absolute limit for every case" if result["limit_ms"] is not None else
            f"per case, its median p95 / (1 - {PAPER_HEADROOM:g}): the median sits "
            f"{PAPER_HEADROOM:.1%} below the limit, like the paper's 19.70 ms against 20 ms")
    machine = result["machine"]
    lines = [
        "# Boundary probe: feasibility flips near a latency limit", "",
        f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; packages "
        f"{', '.join(f'{k} {v}' for k, v in machine.get('packages', {}).items())}  ",
        f"Runs: {result['repeats']} per case, each in a fresh process (isolated evaluator), "
        f"cases interleaved; {result['seconds']:.0f} s in all.  ",
        f"Limit: {rule}.  ",
        "Flip rate: fraction of runs on the minority side of the limit (0.5: a coin flip). "
        "Margin m: flip rate against median / (1 - m), i.e. for a tuner that keeps m below "
        "the real limit.  ",
        f"Contention: load = mean 1-minute load average before the runs (includes the run "
        f"itself); foreign = mean / max cores used by other processes during a run "
        f"(`/proc/stat`); contended = runs with foreign > {CONTENDED_CORES:g}.", "",
    ]
    head = ["case", "runs", "p95 mean ± std (ms)", "CV", "p95 min-max", "limit (ms)",
            "over", "flip", *[f"m={m:g}" for m in MARGINS], "memory MB", "load",
            "foreign mean/max", "contended"]
    rows = []
    for s in result["cases"]:
        p95 = s["p95"]
        rows.append([
            s["case"], f"{s['runs']}" + (f" ({s['failed']} failed)" if s["failed"] else ""),
            f"{_fmt(p95['mean'])} ± {_fmt(p95['std'])}", _fmt(p95["cv"], 3),
            f"{_fmt(p95['min'])}-{_fmt(p95['max'])}", _fmt(s["limit_ms"]),
            f"{s['above_limit']}/{s['runs']}", _fmt(s["flip_rate"], 2),
            *[_fmt(v, 2) for v in s["margins"].values()],
            _fmt(s["memory_mb"]["mean"], 0), _fmt(s["load1_mean"], 2),
            f"{_fmt(s['foreign_cores_mean'], 2)}/{_fmt(s['foreign_cores_max'], 2)}",
            str(s["contended"])])
    lines += markdown_table(head, rows)
    failed = [s for s in result["cases"] if s["failed"]]
    if failed:
        lines += ["", "Failed runs:"]
        lines += [f"- {s['case']}: {s['failed']} ({'; '.join(s['errors'])})" for s in failed]
    return "\n".join(lines) + "\n"


def run_probe(cases: Sequence[ProbeCase] | None = None, repeats: int = DEFAULT_REPEATS,
              limit_ms: float | None = None, out_dir: str | Path | None = None,
              command: str = "",
              on_run: Callable[[ProbeRun, int, int], None] | None = None) -> dict[str, Any]:
    """Probe ``cases`` (default: :func:`default_cases`) and summarize them.

    Args:
        cases: The configurations.
        repeats: Fresh-process runs per case.
        limit_ms: One absolute latency limit for every case; ``None``: each case's own
            :func:`boundary_limit`.
        out_dir: If given, ``probe.md`` and ``probe.json`` are written there.
        command: The command line that reproduces the probe, for the report.
        on_run: Progress callback, see :func:`probe_runs`.

    Returns:
        ``command``, ``date``, ``machine``, ``repeats``, ``limit_ms``, ``seconds``, ``cases``
        (one :func:`summarize_case` per case) and ``runs`` (every :class:`ProbeRun` as a dict).

    Raises:
        ValueError: For ``repeats < 1``, no cases or a limit that is not positive.
    """
    from deploybench.recording import _machine
    from deploybench.runs import dumps_strict, write_text

    if limit_ms is not None and not (math.isfinite(limit_ms) and limit_ms > 0):
        raise ValueError(f"limit_ms: must be a positive number of ms (got {limit_ms!r})")
    chosen = list(cases) if cases is not None else default_cases()
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.perf_counter()
    runs = probe_runs(chosen, repeats, on_run)
    result: dict[str, Any] = {
        "command": command, "date": date, "machine": _machine(), "repeats": repeats,
        "limit_ms": limit_ms, "headroom": PAPER_HEADROOM, "margins": list(MARGINS),
        "contended_cores": CONTENDED_CORES, "seconds": time.perf_counter() - started,
        "cases": [summarize_case(c.label, runs, limit_ms) for c in chosen],
        "configs": {c.label: dict(c.config) for c in chosen},
        "runs": [asdict(r) for r in runs],
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_text(out / "probe.md", probe_markdown(result))
        write_text(out / "probe.json", dumps_strict(result, indent=1) + "\n")
    return result
