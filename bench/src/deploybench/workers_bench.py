"""``deploytune bench workers``: several worker processes on one study.

For every seed and every worker count (default 1, 2 and 4) it starts that many real worker
processes (:mod:`deploybench.workers_worker`, ``python -m deploybench.workers_worker``) on a
fresh study of one DeployBench problem whose evaluations sleep (default 2 s), waits for them
and reads the study back. Each run records its wall-clock seconds (the first worker started to
the last one exited), its evaluations (finished trials, neither interrupted nor validation
re-runs), the duplicate configurations among them, the trials left ``RUNNING`` or ``WAITING``,
the normalised regret of the best feasible value among the first ``budget`` evaluations
(ordered by trial number) and, from the workers' reports, the seconds the sampler took per ask.
The runs are interleaved (seed 0 with 1, 2, 4 workers, then seed 1, ...) so that a change in
the machine's load falls on every worker count alike. :mod:`deploybench.workers_report` turns
the runs into the summary and the markdown report.

By default every run gets its own SQLite file, ``OUT/runs/w{workers}-seed{seed}/study.db``;
with ``storage`` every run is a new study (a name of its own) in that storage.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deploybench.metrics import run_metrics
from deploybench.problem import Problem
from deploybench.runs import dumps_strict, resolve_problem, write_text
from deploybench.workers_report import summarise, workers_markdown

__all__ = ["WorkersSettings", "inspect_study", "run_study", "run_workers_bench"]

_LOG_TAIL_CHARS = 3000


@dataclass(frozen=True)
class WorkersSettings:
    """What ``deploytune bench workers`` runs.

    Attributes:
        problem: A simulated DeployBench problem (registry name or ``module:factory``).
        sampler: The sampler every worker uses.
        seeds: Number of seeds: seeds ``0 .. seeds - 1``.
        workers: The worker counts compared (the first is the reference, normally 1).
        budget: Evaluations per study.
        sleep_s: Seconds every evaluation sleeps.
        storage: A storage URL in which every run makes a new study; ``None``: a fresh SQLite
            file per run under the output folder.
        launch: ``"fork"``: one process imports what the workers need and forks them, as
            ``deploytune tune --workers N`` does; ``"exec"``: every worker is an interpreter
            of its own, as workers on separate machines (``deploytune worker``) start.
        timeout_s: Seconds a run may take before its workers are killed; ``None``: 120 s plus
            three times the budget's sleeping.
    """

    problem: str = "llm-sim-8b-24gb"
    sampler: str = "cabo"
    seeds: int = 5
    workers: tuple[int, ...] = (1, 2, 4)
    budget: int = 50
    sleep_s: float = 2.0
    storage: str | None = None
    launch: str = "fork"
    timeout_s: float | None = None

    def run_timeout_s(self) -> float:
        """The seconds a run may take (:attr:`timeout_s` or its default)."""
        if self.timeout_s is not None:
            return self.timeout_s
        return 120.0 + 3.0 * self.budget * self.sleep_s


def inspect_study(storage: str, study_name: str, problem: Problem, budget: int) -> dict[str, Any]:
    """Count what a run left in its study.

    Args:
        storage: The storage URL.
        study_name: The study.
        problem: The problem (space for duplicate keys, regret).
        budget: The run's budget: regret is that of the first ``budget`` evaluations.

    Returns:
        ``trials`` (all), ``evaluations``, ``duplicates`` (evaluations less distinct
        configurations), ``left_over`` (trials ``RUNNING`` or ``WAITING``), ``interrupted``,
        ``regret``, ``span_s`` (first trial's start to last trial's end) and
        ``trials_per_worker`` (evaluations per worker process, largest first).
    """
    import optuna
    from optuna.trial import TrialState

    from deploytune.history import ATTR_WORKER, TrialRecord, is_interrupted
    from deploytune.parallel.storage import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    records = [r for r in (TrialRecord.from_trial(t) for t in trials)
               if r is not None and not r.validation]
    evaluations = sorted(records, key=lambda r: r.number)
    keys = {problem.space.key(r.config) for r in evaluations}
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    owners = collections.Counter(
        str((by_number[r.number].user_attrs.get(ATTR_WORKER) or {}).get("pid"))
        for r in evaluations)
    return {
        "trials": len(trials),
        "evaluations": len(evaluations),
        "duplicates": len(evaluations) - len(keys),
        "left_over": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
        "interrupted": sum(is_interrupted(t) for t in trials),
        "regret": run_metrics(evaluations[:budget], problem).regret,
        "span_s": (max(ends) - min(starts)).total_seconds() if starts and ends else None,
        "trials_per_worker": sorted(owners.values(), reverse=True),
    }


def _worker_settings(settings: WorkersSettings, seed: int, storage: str, study: str,
                     report: Path) -> str:
    return json.dumps({"problem": settings.problem, "sampler": settings.sampler, "seed": seed,
                       "budget": settings.budget, "sleep_s": settings.sleep_s,
                       "storage": storage, "study": study, "report": str(report)})


def _launch_argvs(settings: WorkersSettings, seed: int, storage: str, study: str,
                  reports: Sequence[Path]) -> list[list[str]]:
    """The processes a run starts: one that forks a worker per report, or one per report."""
    runner = [sys.executable, "-m", "deploybench.workers_worker"]
    jsons = [_worker_settings(settings, seed, storage, study, r) for r in reports]
    if settings.launch == "fork":
        return [[*runner, "--fork", *jsons]]
    return [[*runner, j] for j in jsons]


def _run_processes(argvs: Sequence[list[str]], logs: Sequence[Path],
                   timeout_s: float) -> tuple[float, list[int | None]]:
    """Start every argv at once (output to its log), wait for all; (wall seconds, exit codes:
    ``None`` for a process killed at the time limit)."""
    start = time.perf_counter()
    procs = []
    for argv, log in zip(argvs, logs, strict=True):
        with log.open("wb") as out:
            procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))
    codes: list[int | None] = []
    for proc in procs:
        left = max(0.0, timeout_s - (time.perf_counter() - start))
        try:
            codes.append(proc.wait(timeout=left))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            codes.append(None)
    return time.perf_counter() - start, codes


def _worker_reports(reports: Sequence[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in reports if p.exists()]


def _log_tail(logs: Sequence[Path]) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-_LOG_TAIL_CHARS:]}"
                     for log in logs if log.exists())


def run_study(settings: WorkersSettings, problem: Problem, workers: int, seed: int,
              run_dir: Path) -> dict[str, Any]:
    """One run: ``workers`` worker processes on a fresh study, then its counts.

    Args:
        settings: The benchmark's settings.
        problem: The problem (already built, for reading the study back).
        workers: How many worker processes.
        seed: Seed of the sampler and of the problem's noise.
        run_dir: A folder of this run (emptied first): worker logs and reports and, without
            ``settings.storage``, the SQLite file.

    Returns:
        ``workers``, ``seed``, ``study``, ``wall_s``, ``exit_codes``, ``failed``, the counts of
        :func:`inspect_study`, ``sampler_s`` and ``ask_gap_s`` (every ask of every worker)
        and ``first_start_s`` (per worker); ``log_tail`` when a worker failed.
    """
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    if settings.storage is None:
        storage, study = f"sqlite:///{(run_dir / 'study.db').resolve()}", "workers"
    else:
        storage, study = settings.storage, f"workers-w{workers}-s{seed}-{uuid.uuid4().hex[:8]}"
    reports = [run_dir / f"worker_{i}.json" for i in range(workers)]
    argvs = _launch_argvs(settings, seed, storage, study, reports)
    logs = [run_dir / f"process_{i}.log" for i in range(len(argvs))]
    load_before = os.getloadavg()[0]
    wall_s, codes = _run_processes(argvs, logs, settings.run_timeout_s())
    done = _worker_reports(reports)
    run: dict[str, Any] = {
        "workers": workers, "seed": seed, "study": study, "wall_s": wall_s,
        "exit_codes": codes, "failed": any(c != 0 for c in codes),
        "load1_before": load_before, "load1_after": os.getloadavg()[0],
        "sampler_s": [s for w in done for s in w["sampler_s"]],
        "ask_gap_s": [s for w in done for s in w["ask_gap_s"]],
        "first_start_s": [w["first_start_s"] for w in done],
    }
    try:
        run.update(inspect_study(storage, study, problem, settings.budget))
    except Exception as exc:  # the study was never created: a worker failed at its start
        run.update(failed=True, inspect_error=f"{type(exc).__name__}: {exc}")
    if run["failed"]:
        run["log_tail"] = _log_tail(logs)
    return run


def run_workers_bench(settings: WorkersSettings, out_dir: Path, command: str,
                      on_run: Callable[[dict[str, Any]], None] | None = None
                      ) -> dict[str, Any]:
    """Run every (seed, worker count), then write ``OUT/workers.json`` and ``OUT/workers.md``.

    Args:
        settings: What to run.
        out_dir: The output folder.
        command: The command line, for the report.
        on_run: Called with each finished run.

    Returns:
        The results: ``settings``, ``command``, ``cpus``, ``runs`` (:func:`run_study`'s, in
        the order run) and ``summary`` (:func:`~deploybench.workers_report.summarise`).
    """
    problem = resolve_problem(settings.problem)
    if problem.live is not None:
        raise ValueError(f"problem {problem.name!r} runs real evaluations; choose a "
                         f"simulated one")
    runs = []
    for seed in range(settings.seeds):
        for workers in settings.workers:
            run = run_study(settings, problem, workers, seed,
                            out_dir / "runs" / f"w{workers}-seed{seed}")
            runs.append(run)
            if on_run is not None:
                on_run(run)
    results = {"settings": asdict(settings), "command": command, "cpus": os.cpu_count(),
               "runs": runs, "summary": summarise(runs, settings.workers, settings.budget)}
    write_text(out_dir / "workers.json", dumps_strict(results, indent=1) + "\n")
    write_text(out_dir / "workers.md", workers_markdown(results) + "\n")
    return results

