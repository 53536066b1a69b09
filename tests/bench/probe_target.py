"""A tiny real evaluation function for the boundary-probe tests.

It runs in the isolated evaluator's child processes (imported as
``tests.bench.probe_target:evaluate`` from the repository root). Each call:

* counts the calls of this interpreter (a fresh process always says 1);
* takes the next value of ``config["values"]`` as its p95: the index is the number of records
  already in ``config["dir"]`` (one per earlier run of the same case), so the statistics of a
  probe are known in advance although every run is a new process;
* sleeps a random-ish few milliseconds (a real, varying run time), and writes a record with its
  pid and call count to ``config["dir"]``;
* raises for ``config["crash"]``.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

CALLS = 0


def evaluate(config: dict[str, Any]) -> dict[str, float]:
    """See the module doc."""
    global CALLS
    CALLS += 1
    if config.get("crash"):
        raise RuntimeError("this configuration always crashes")
    folder = Path(config["dir"])
    index = len(list(folder.glob("run-*.json")))
    time.sleep(float(config.get("sleep_s", random.uniform(0.001, 0.02))))
    (folder / f"run-{index}.json").write_text(json.dumps({"pid": os.getpid(), "calls": CALLS,
                                                          "ppid": os.getppid()}))
    p95 = float(config["values"][index])
    return {"p95_ms": p95, "p50_ms": p95 / 2, "memory_mb": 10.0 + index}
