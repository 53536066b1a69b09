"""A trial that leaves processes behind, for the process-lifetime tests.

Both an evaluation function (``tests.evaluators.lifetime_targets:tree``, for the isolated
evaluator) and a command (``python tests/evaluators/lifetime_targets.py PID_FILE SECONDS
STUBBORN``). Either way it forks a plain child (a worker) and a daemon (double fork + ``setsid``:
a new session, re-parented away from the trial), writes their pids to ``PID_FILE`` (``-``:
nowhere), touches the file named by ``DT_READY`` (if set), sleeps ``SECONDS`` and returns
``{"x": 1}``. With ``STUBBORN`` 1 the daemon ignores ``SIGTERM``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def spawn(pid_file: str | None, stubborn: bool) -> list[int]:
    """Fork a sleeping child and a sleeping daemon; their pids (also written to pid_file)."""
    child = os.fork()
    if child == 0:
        time.sleep(120)
        os._exit(0)
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            if stubborn:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.write(w, f"{os.getpid()}\n".encode())
            time.sleep(120)
            os._exit(0)
        os._exit(0)
    os.close(w)
    os.waitpid(middle, 0)
    daemon = int(os.read(r, 64).decode())
    os.close(r)
    pids = [child, daemon]
    if pid_file and pid_file != "-":
        Path(pid_file).write_text(" ".join(map(str, pids)))
    ready = os.environ.get("DT_READY")
    if ready:
        Path(ready).touch()
    return pids


def tree(config: dict[str, Any]) -> dict[str, Any]:
    """The evaluation function: :func:`spawn`, sleep ``config["seconds"]``, ``{"x": 1}``."""
    spawn(config.get("pid_file"), config.get("stubborn", 0) == 1)
    time.sleep(float(config.get("seconds", 0.0)))
    return {"x": 1}


if __name__ == "__main__":
    spawn(sys.argv[1], sys.argv[3] == "1")
    time.sleep(float(sys.argv[2]))
    print(json.dumps({"x": 1}), flush=True)
