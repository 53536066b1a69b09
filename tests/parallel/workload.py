"""A worker process for the multi-worker tests: ``python -m tests.parallel.workload JSON``.

It joins (or creates) a study with :func:`deploytune.optimize` and evaluates the toy
deployment of :mod:`tests.toy`, sleeping ``sleep_s`` per evaluation. With ``tp`` in the space and
``resources`` given, an evaluation checks that it sees exactly ``tp`` devices (a GPU lease sets
``CUDA_VISIBLE_DEVICES``; no GPU exists here, so nothing else reads it) or, for CPU leases, that
its process is pinned to the leased cores; a mismatch raises, which the test would see as a
crashed trial.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import deploytune
from tests.toy import CONSTRAINTS, SPACE_DICT, toy_evaluate

TP_SPACE: dict[str, Any] = {**SPACE_DICT, "tp": {"type": "categorical", "choices": [1, 2, 4]}}


def evaluate(config: dict[str, Any], sleep_s: float, devices: str | None) -> dict[str, float]:
    """The toy's metrics after ``sleep_s`` seconds; with ``devices``, check the lease."""
    metrics = toy_evaluate(config)
    if devices == "gpu":
        seen = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if len(seen.split(",")) != config["tp"]:
            raise RuntimeError(f"lease mismatch: tp {config['tp']}, devices {seen!r}")
    elif devices == "cpu":
        metrics["cores"] = float(len(os.sched_getaffinity(0)))
    time.sleep(sleep_s)
    return metrics


def main(args: dict[str, Any]) -> None:
    """Run one worker with the settings in ``args``."""
    resources = args.get("resources")
    devices = None if resources is None else resources.get("kind", "gpu")
    space = TP_SPACE if devices == "gpu" else SPACE_DICT
    deploytune.optimize(
        lambda c: evaluate(c, args.get("sleep_s", 0.1), devices), space,
        objective="accuracy", constraints=CONSTRAINTS, budget=args["budget"],
        sampler=args.get("sampler", "random"), seed=args.get("seed", 0),
        storage=args["storage"], study_name=args.get("study", "workers"),
        heartbeat_s=args.get("heartbeat_s", 0.5), resources=resources)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
