"""One worker process of ``deploytune bench workers``: ``python -m deploybench.workers_worker
JSON``.

It joins (or creates) the study named in the JSON settings with :func:`deploytune.optimize`
and evaluates a DeployBench problem the way ``deploytune bench`` does
(:meth:`~deploybench.problem.Problem.sim_evaluator`: the same noise, seeded by the run's seed,
and the cost model's seconds as each trial's cost), sleeping ``sleep_s`` seconds per
evaluation so that evaluations take real time. Every worker of a run uses the same sampler
seed: the samplers key their draws by the trial's position in the study, not by the process.

With ``--fork`` one process imports what the workers need and forks them, as ``deploytune tune
--workers N`` starts its workers; without, every worker is an interpreter of its own, as workers
on separate machines start.

When it is done it writes a small JSON report (:func:`run_worker`'s return value) to the
``report`` path: its process id, the trials it evaluated, the seconds its sampler spent per ask
and the seconds from each of its trials being recorded to its next evaluation starting (waiting
for the study lock, reading the study and asking).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploybench.problem import Problem
from deploybench.runs import resolve_problem
from deploytune.evaluators.base import Evaluation, Evaluator, Monitor
from deploytune.history import TrialRecord

__all__ = ["SleepingEvaluator", "run_worker", "time_sampler"]


class SleepingEvaluator(Evaluator):
    """A problem's simulated evaluation (:meth:`Problem.sim_evaluator`) that first sleeps.

    Args:
        problem: The simulated problem.
        seed: Seed of its noise.
        sleep_s: Seconds every evaluation sleeps.
    """

    def __init__(self, problem: Problem, seed: int, sleep_s: float) -> None:
        self._inner = problem.sim_evaluator(seed)
        self.sleep_s = sleep_s

    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Sleep ``sleep_s`` seconds, then evaluate ``config`` as the simulated problem does."""
        time.sleep(self.sleep_s)
        return self._inner.evaluate(config, monitor)

    def describe(self) -> str:
        """The simulated evaluator's description and the sleep."""
        return f"{self._inner.describe()}, sleeping {self.sleep_s:g} s"


def time_sampler(sampler: Any, seconds: dict[int, float]) -> None:
    """Make ``sampler`` add the seconds it spends proposing trial ``n`` to ``seconds[n]``.

    The sampler's own ``sample_relative`` and ``sample_independent`` are shadowed by timing
    wrappers on this instance only; what they return is unchanged.

    Args:
        sampler: An Optuna sampler instance.
        seconds: Trial number -> seconds, filled as the sampler is asked.
    """
    for name in ("sample_relative", "sample_independent"):
        setattr(sampler, name, _timed(getattr(sampler, name), seconds))


def _timed(method: Callable[..., Any], seconds: dict[int, float]) -> Callable[..., Any]:
    def timed(study: Any, trial: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(study, trial, *args)
        finally:
            seconds[trial.number] = seconds.get(trial.number, 0.0) + \
                time.perf_counter() - start
    return timed


def run_worker(settings: dict[str, Any]) -> dict[str, Any]:
    """Run one worker of a run with ``settings`` and return its report.

    Args:
        settings: ``problem``, ``seed``, ``budget``, ``sampler``, ``storage`` (a URL),
            ``study`` (the study name) and ``sleep_s``.

    Returns:
        ``pid``, ``trials`` (the numbers of the trials this worker recorded), ``sampler_s``
        (per trial it asked for, the seconds in the sampler), ``ask_gap_s`` (per trial after its
        first, the seconds from its previous trial being recorded to this one's evaluation
        starting) and ``first_start_s`` (from calling ``optimize`` to its first evaluation).
    """
    import deploytune
    from deploytune.samplers import make_sampler

    problem = resolve_problem(settings["problem"])
    if problem.live is not None:
        raise ValueError(f"problem {problem.name!r} runs real evaluations; choose a simulated one")
    seed = int(settings["seed"])
    sampler = make_sampler(settings["sampler"], space=problem.space, seed=seed,
                           budget=int(settings["budget"]))
    sampler_s: dict[int, float] = {}
    time_sampler(sampler, sampler_s)
    called = time.perf_counter()
    recorded: list[float] = []  # when each of this worker's trials was recorded
    trials: list[int] = []
    gaps: list[float] = []
    first: list[float] = []

    def on_start(_number: int, _config: dict[str, Any]) -> None:
        now = time.perf_counter()
        if recorded:
            gaps.append(now - recorded[-1])
        elif not first:
            first.append(now - called)

    def on_record(rec: TrialRecord) -> None:
        recorded.append(time.perf_counter())
        trials.append(rec.number)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature notes
        deploytune.optimize(
            SleepingEvaluator(problem, seed, float(settings["sleep_s"])), problem.space,
            objective=problem.objective.metric, direction=problem.objective.direction,
            constraints=[str(c) for c in problem.constraints], budget=int(settings["budget"]),
            sampler=sampler, seed=seed, storage=settings["storage"],
            study_name=settings["study"], callbacks=[on_record], on_trial_start=on_start)
    return {"pid": os.getpid(), "trials": trials,
            "sampler_s": [sampler_s[n] for n in sorted(sampler_s)], "ask_gap_s": gaps,
            "first_start_s": first[0] if first else None}


def _write_report(settings: dict[str, Any]) -> int:
    report = run_worker(settings)
    Path(settings["report"]).write_text(json.dumps(report) + "\n")
    return 0


def fork_run(settings: list[dict[str, Any]]) -> int:
    """Run one worker per settings as ``deploytune tune --workers N`` does: import what they
    need once here (the storage opened once), then fork them
    (:func:`deploytune.parallel.launch.fork_workers`); the largest exit status (1 for a worker
    killed by a signal)."""
    import deploytune.tuner  # noqa: F401
    from deploytune.parallel.launch import fork_workers
    from deploytune.parallel.storage import warm_storage
    from deploytune.samplers import SpaceSampler, make_sampler

    first = settings[0]
    warm_storage(first["storage"])
    sampler = make_sampler(first["sampler"], space=resolve_problem(first["problem"]).space,
                           seed=int(first["seed"]), budget=int(first["budget"]))
    if isinstance(sampler, SpaceSampler):
        sampler.warm_up()
    codes = fork_workers(lambda i: _write_report(settings[i]), len(settings), print)
    return max(c if c >= 0 else 1 for c in codes)


def main(argv: list[str]) -> None:
    """``python -m deploybench.workers_worker JSON``: run one worker, write its report;
    ``python -m deploybench.workers_worker --fork JSON JSON ...``: fork one worker per JSON
    (:func:`fork_run`)."""
    if argv and argv[0] == "--fork":
        sys.exit(fork_run([json.loads(a) for a in argv[1:]]))
    _write_report(json.loads(argv[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
