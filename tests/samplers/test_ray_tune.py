"""Every registered sampler inside Ray Tune, as Ray Tune's users run Optuna samplers: through
``ray.tune.search.optuna.OptunaSearch(sampler=...)`` (issue 17).

Ray Tune pickles the search algorithm with its sampler, suggests through a define-by-run
function (the space's conditional parameters) and tells the results back to an Optuna study of
its own. One Ray instance (1 CPU, no dashboard) serves the module; each sampler runs one tuning
of 4 trials with actors reused, about 2 s each on 2 cores.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

import deploytune
from deploytune.samplers import make_sampler

ray = pytest.importorskip("ray", reason="needs Ray Tune: pip install 'deploytune[ray]'")
tune = pytest.importorskip("ray.tune")
OptunaSearch = pytest.importorskip("ray.tune.search.optuna").OptunaSearch

SPACE = deploytune.Space.from_dict({
    "backend": {"type": "categorical", "choices": ["eager", "compile"]},
    "batch": {"type": "int", "low": 1, "high": 64, "log": True},
    "frac": {"type": "float", "low": 0.5, "high": 0.95, "step": 0.05},
    "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager"]}},
})
TRIALS = 4


def define_by_run(trial: optuna.Trial) -> None:
    """Ray Tune's define-by-run search space: the space's active parameters."""
    SPACE.suggest(trial)


def trainable(config: dict[str, Any]) -> dict[str, float]:
    speed = 1.5 if config["backend"] == "compile" else 1.0 + 0.05 * config.get("threads", 0)
    return {"score": config["batch"] * config["frac"] * speed}


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/JSON/TensorBoard files
    # Ray's session files (logs, sockets) in a short private folder, removed afterwards
    # (tmp_path would make its socket paths longer than a Unix socket allows)
    temp_dir = tempfile.mkdtemp(prefix="dt-ray-")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _temp_dir=temp_dir)
    try:
        yield
    finally:
        ray.shutdown()
        mp.undo()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.parametrize("name", deploytune.available_samplers())
@pytest.mark.slow
def test_sampler_runs_in_ray_tune_optuna_search(name: str, ray_instance: None,
                                                tmp_path: Path) -> None:
    sampler = make_sampler(name, space=SPACE, seed=0, budget=TRIALS)
    search = OptunaSearch(space=define_by_run, sampler=sampler, metric="score", mode="max")
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=search, num_samples=TRIALS, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0))
    results = tuner.fit()
    assert len(results) == TRIALS and results.num_errors == 0
    configs = [r.config for r in results]
    for config in configs:
        assert SPACE.problems(config) == [], config
    assert results.get_best_result("score", "max").metrics["score"] == max(trainable(c)["score"]
                                                             for c in configs)
